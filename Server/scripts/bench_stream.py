#!/usr/bin/env python3
"""One stream through chronos-server against `chronos generate`, decode tokens/s, in
interleaved rounds on the shipped model (release builds of both, as openai_client_test.py
needs). Each round runs `chronos generate --temperature 0 --ignore-eos` and then the same
greedy request streamed from the running server (`ignore_eos`, so that both decode every token
asked for), and prints both rates and their ratio.

    python3 Server/scripts/bench_stream.py [--rounds 5] [--tokens 256]

The server's rate is measured by the client, from its first streamed token to its last, with
the same definition as `chronos generate`'s: (tokens − 1) / decode seconds.
"""
import argparse
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
PROMPT = "It is a truth universally acknowledged"


def generate_rate(tokens):
    result = subprocess.run(
        [CHRONOS, "generate", "--temperature", "0", "--ignore-eos", "--max-tokens", str(tokens), PROMPT],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    match = re.search(r"generated (\d+) tokens, .*?, ([\d.]+) tokens/s", result.stderr)
    return int(match.group(1)), float(match.group(2))


def server_rate(base, tokens):
    body = json.dumps({"model": "austen-moe", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    first = last = None
    generated = 0
    with urllib.request.urlopen(request, timeout=300) as response:
        for line in response:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                generated = chunk["usage"]["completion_tokens"]
            if chunk["choices"] and chunk["choices"][0]["text"]:
                now = time.perf_counter()
                first = first or now
                last = now
    return generated, (generated - 1) / (last - first)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=256)
    options = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([SERVER, "--port", str(port)], cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(base + "/health", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("the server did not become healthy")
        ratios = []
        print("round  generate tok/s  server tok/s  server/generate  tokens (generate, server)")
        for round in range(1, options.rounds + 1):
            generated, direct = generate_rate(options.tokens)
            streamed, served = server_rate(base, options.tokens)
            ratios.append(served / direct)
            print(f"{round:5d}  {direct:14.1f}  {served:12.1f}  {served / direct:15.3f}  ({generated}, {streamed})")
        print(f"median ratio {statistics.median(ratios):.3f}, range {min(ratios):.3f} to {max(ratios):.3f}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
