#!/usr/bin/env python3
"""Load test of chronos-server on loopback: many concurrent streaming clients with malformed
requests interleaved, then the same with a tenth of the clients leaving mid-stream.

    python3 Server/scripts/load_test.py [--clients 64] [--seconds 120] [--parallel 8] [--model DIR]

Each client streams greedy completions of one of eight prompts over and over and checks every
answer against that prompt's greedy text, fetched alone before the load starts: a lost, cut or
mixed-up stream fails the run. A further thread sends malformed requests throughout (bad JSON,
wrong types, an unknown model, max_tokens out of range, a body over the limit) and checks each
gets its 4xx. Reported: answers, 5xx count (must be 0), mismatches (must be 0), p50/p99 time to
first token, aggregate tokens/s. In the second phase a tenth of the clients close their stream
after two chunks; afterwards the server's active generations must return to 0, and its
resident memory is reported before and after.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(ROOT, "Server", ".build", "release", "chronos-server")
PROMPTS = [
    "It is a truth universally acknowledged", "Emma Woodhouse, handsome, clever, and rich",
    "The family of Dashwood had long been settled", "Sir Walter Elliot, of Kellynch Hall",
    "No one who had ever seen Catherine Morland", "About thirty years ago Miss Maria Ward",
    "Mr. Bennet was among the earliest of those", "Elizabeth said",
]
TOKENS = 24
MALFORMED = [
    (b'{"model": "MODEL", "prompt": ', 400),
    (b'{"model": "MODEL", "prompt": "x", "max_tokens": "ten"}', 400),
    (b'{"model": "MODEL", "prompt": "x", "max_tokens": -5}', 400),
    (b'{"model": "MODEL", "prompt": "x", "temperature": 9}', 400),
    (b'{"model": "gpt-4", "prompt": "x"}', 404),
    (b'[1, 2, 3]', 400),
    (b"x" * (2 << 20), 413),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def stream(port, model, prompt, leave_after=None):
    """Streams a greedy completion: (status, text, seconds to first text, tokens); leaves after
    `leave_after` chunks when given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": TOKENS, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    sent = time.perf_counter()
    connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        response.read()
        connection.close()
        return response.status, "", None, 0
    text, first, tokens, chunks = "", None, 0, 0
    for line in response:
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if "error" in chunk:
            connection.close()
            return 500, text, first, tokens
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if chunk["choices"] and chunk["choices"][0]["text"]:
            first = first or time.perf_counter() - sent
            text += chunk["choices"][0]["text"]
            chunks += 1
            if leave_after is not None and chunks >= leave_after:
                connection.close()
                return 200, None, first, 0
    connection.close()
    return 200, text, first, tokens


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.answers = self.server_errors = self.mismatches = self.tokens = self.left = self.malformed = 0
        self.first_token = []
        self.problems = []

    def add(self, **counts):
        with self.lock:
            for key, value in counts.items():
                if key == "first_token":
                    self.first_token.append(value)
                elif key == "problem":
                    self.problems.append(value)
                else:
                    setattr(self, key, getattr(self, key) + value)


def phase(port, model, expected, clients, seconds, leaving):
    tally, stop_at = Tally(), time.time() + seconds

    def client(index):
        prompt = PROMPTS[index % len(PROMPTS)]
        leaves = index < leaving
        while time.time() < stop_at:
            status, text, first, tokens = stream(port, model, prompt, leave_after=2 if leaves else None)
            if status >= 500:
                tally.add(server_errors=1, problem=f"client {index}: status {status}")
            elif status != 200:
                tally.add(mismatches=1, problem=f"client {index}: status {status}")
            elif leaves:
                tally.add(left=1)
            elif text != expected[prompt]:
                tally.add(mismatches=1, problem=f"client {index}: {text!r} for {prompt!r}")
            else:
                tally.add(answers=1, tokens=tokens, first_token=first)

    def malformed():
        index = 0
        while time.time() < stop_at:
            body, want = MALFORMED[index % len(MALFORMED)]
            body = body.replace(b"MODEL", model.encode())
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (ConnectionError, http.client.HTTPException):
                status = want if want == 413 else 0  # a server may close an oversized upload early
            connection.close()
            if status >= 500:
                tally.add(server_errors=1, problem=f"malformed request {index}: status {status}")
            elif status != want:
                tally.add(mismatches=1, problem=f"malformed request {index}: status {status}, expected {want}")
            else:
                tally.add(malformed=1)
            index += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=malformed)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def report(label, tally, wall):
    ttft = sorted(tally.first_token)
    p = lambda q: ttft[min(len(ttft) - 1, int(q * len(ttft)))] if ttft else float("nan")
    print(f"{label}: {tally.answers} answers checked, {tally.left} streams left early, {tally.malformed} malformed requests "
          f"refused, {tally.server_errors} 5xx, {tally.mismatches} mismatches; time to first token p50 {p(0.5):.3f} s, "
          f"p99 {p(0.99):.3f} s; {tally.tokens / wall:.1f} tokens/s aggregate")
    for problem in tally.problems[:10]:
        print("  " + problem)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--model")
    options = parser.parse_args()
    port = free_port()
    arguments = [SERVER, "--port", str(port), "--parallel", str(options.parallel)]
    if options.model:
        arguments += ["--model", options.model]
    server = subprocess.Popen(arguments, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("the server did not become healthy")
        model = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models"))["data"][0]["id"]
        expected = {prompt: stream(port, model, prompt)[1] for prompt in PROMPTS}
        idle_rss = rss_kib(server.pid)
        tally, wall = phase(port, model, expected, options.clients, options.seconds, leaving=0)
        report(f"{options.clients} clients for {options.seconds:.0f} s", tally, wall)
        failed = tally.server_errors + tally.mismatches
        tally, wall = phase(port, model, expected, options.clients, options.seconds, leaving=options.clients // 10)
        report(f"the same with {options.clients // 10} clients leaving after two chunks", tally, wall)
        failed += tally.server_errors + tally.mismatches
        deadline = time.time() + 30
        while metric(port, "chronos_generations_active") != 0 or metric(port, "chronos_generations_waiting") != 0:
            if time.time() > deadline:
                sys.exit("active or waiting generations did not return to 0 after the load")
            time.sleep(0.1)
        print(f"afterwards: 0 generations active or waiting; server resident memory {idle_rss / 1024:.0f} MiB before the load, "
              f"{rss_kib(server.pid) / 1024:.0f} MiB after")
        if failed:
            sys.exit(f"load test failed: {failed} 5xx or mismatched answers")
        print("load test passed")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
