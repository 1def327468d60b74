#!/usr/bin/env python3
"""Aggregate decode throughput of chronos-server with N concurrent streams against one stream,
with continuous batching and without (--no-batching), in interleaved rounds on one model.

    python3 Server/scripts/bench_parallel.py --model DIR_OR_GGUF [--streams 8] [--rounds 3] [--tokens 64] \
        [--llama-server PATH] [-- SERVER OPTIONS ...]

Two servers run side by side on loopback (release build), one batching and one not, both with
--parallel N. Each round sends, to each server in turn, one greedy streamed completion of
`--tokens` tokens (ignore_eos), then N at once (different prompts). A run's throughput is its
completion tokens over the wall time from sending the requests to the last token, prefill
included, so one stream and N streams are measured alike. Each round prints every rate and
the ratio N streams / one stream; the summary gives the median of the per-round ratios.
Options after `--` go to both servers (for example `--experts lru --expert-budget 0.3`). With
`--llama-server` (and a GGUF file as the model), llama.cpp's server runs as a third, with
`--parallel N`, continuous batching and 2 threads, measured the same way in the same rounds.
Each round also runs `chronos generate` (.build/release/chronos, the same options after `--`)
on the first prompt, whose rate, taken from its own report the same way (tokens over time to
first token plus decode time, the model's loading left out), is one stream without the server.
"""
import argparse
import concurrent.futures
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(ROOT, "Server", ".build", "release", "chronos-server")
CHRONOS = os.path.join(ROOT, ".build", "release", "chronos")
PROMPTS = [
    "It is a truth universally acknowledged", "Emma Woodhouse, handsome, clever, and rich",
    "The family of Dashwood had long been settled", "Sir Walter Elliot, of Kellynch Hall",
    "No one who had ever seen Catherine Morland", "About thirty years ago Miss Maria Ward",
    "Mr. Bennet was among the earliest of those", "The day was cold and the road was long",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model, extra, kind):
    port = free_port()
    if kind == "llama-server":
        arguments = [options.llama_server, "--port", str(port), "-m", model, "--parallel", str(options.streams), "-c",
                     str(options.streams * 512), "-t", "2", "--cont-batching"]
    else:
        arguments = [SERVER, "--port", str(port), "--model", model, "--parallel", str(options.streams)] + extra
        if kind == "no batching":
            arguments.append("--no-batching")
    process = subprocess.Popen(arguments, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if urllib.request.urlopen(base + "/health", timeout=5).status == 200:
                return process, base
        except OSError:
            time.sleep(0.1)
    process.terminate()
    sys.exit("a server did not become healthy")


def stream(base, model_id, prompt, tokens):
    """Streams one greedy completion; returns (completion tokens, time of its last token)."""
    body = json.dumps({"model": model_id, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    generated, chunks, last = 0, 0, None
    with urllib.request.urlopen(request, timeout=600) as response:
        for line in response:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                generated = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                chunks += 1
                last = time.perf_counter()
    return generated or chunks, last


def passes(base):
    """The server's forward passes and the generations they ran so far (0, 0 for llama-server)."""
    counts = {}
    try:
        for line in urllib.request.urlopen(base + "/metrics", timeout=30).read().decode().splitlines():
            for name in ("chronos_forward_passes_total", "chronos_forward_pass_sequences_total"):
                if line.startswith(name + " "):
                    counts[name] = float(line.split()[1])
    except OSError:
        pass
    return counts.get("chronos_forward_passes_total", 0), counts.get("chronos_forward_pass_sequences_total", 0)


def throughput(base, model_id, count, tokens):
    """Completion tokens per second of `count` streams sent at once."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        sent = time.perf_counter()
        results = list(pool.map(lambda i: stream(base, model_id, PROMPTS[i % len(PROMPTS)], tokens), range(count)))
    generated = sum(r[0] for r in results)
    if generated != count * tokens:
        sys.exit(f"{count} streams produced {generated} tokens, not {count * tokens}")
    return generated / (max(r[1] for r in results) - sent)


def generate(model, extra, tokens):
    """Tokens per second of `chronos generate` on the first prompt: its generated tokens over its
    reported time to first token plus decode time."""
    result = subprocess.run([CHRONOS, "generate", "--model", model, "--max-tokens", str(tokens), "--temperature", "0",
                             "--ignore-eos"] + extra + [PROMPTS[0]], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        sys.exit(f"chronos generate failed: {result.stderr[-2000:]}")
    match = re.search(r"generated (\d+) tokens, time to first token ([\d.]+) ms, ([\d.]+) tokens/s", result.stderr + result.stdout)
    if not match:
        sys.exit(f"chronos generate printed no rate: {result.stderr[-2000:]}")
    generated, first, rate = int(match[1]), float(match[2]) / 1000, float(match[3])
    return generated / (first + generated / rate)


def main():
    global options
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--llama-server", help="llama.cpp's llama-server, run on the same GGUF file")
    parser.add_argument("extra", nargs="*")
    options = parser.parse_args()
    kinds = ["batching", "no batching"] + (["llama-server"] if options.llama_server else [])
    servers = {kind: start(options.model, options.extra, kind) for kind in kinds}
    try:
        model_id = json.load(urllib.request.urlopen(servers["batching"][1] + "/v1/models"))["data"][0]["id"]
        ratios = {label: [] for label in servers}
        rates = {label: [] for label in servers}
        n = options.streams
        print(f"model {options.model}, {n} streams of {options.tokens} tokens; aggregate tokens/s")
        print(f"round  server         1 stream  {n} streams  ratio  generations a pass ({n} streams)")
        alone = []
        for round in range(1, options.rounds + 1):
            alone.append(generate(options.model, options.extra, options.tokens))
            print(f"{round:5d}  {'generate':13s}  {alone[-1]:8.1f}")
            for label, (_, base) in servers.items():
                one = throughput(base, model_id, 1, options.tokens)
                before = passes(base)
                many = throughput(base, model_id, n, options.tokens)
                after = passes(base)
                ratios[label].append(many / one)
                rates[label].append((one, many))
                batch = f"  {(after[1] - before[1]) / (after[0] - before[0]):5.2f}" if after[0] > before[0] else ""
                print(f"{round:5d}  {label:13s}  {one:8.1f}  {many:10.1f}  {many / one:5.2f}{batch}")
        for label, values in ratios.items():
            print(f"{label}: median {n}-stream/1-stream ratio {statistics.median(values):.2f} "
                  f"(range {min(values):.2f} to {max(values):.2f})")
        per_round = [ours[0] / theirs for ours, theirs in zip(rates["batching"], alone)]
        print(f"chronos-server 1 stream / chronos generate: median ratio {statistics.median(per_round):.2f} "
              f"(range {min(per_round):.2f} to {max(per_round):.2f})")
        if "llama-server" in rates:
            for index, streams in ((0, 1), (1, n)):
                per_round = [ours[index] / theirs[index] for ours, theirs in zip(rates["batching"], rates["llama-server"])]
                print(f"chronos-server / llama-server, {streams} stream(s): median ratio {statistics.median(per_round):.2f} "
                      f"(range {min(per_round):.2f} to {max(per_round):.2f})")
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
