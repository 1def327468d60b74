#!/usr/bin/env python3
"""Checks chronos-server with the official `openai` Python client, on loopback.

Starts the release server (Server/.build/release/chronos-server) on a free port with the shipped
model and an API key, then checks whole and streamed completions and chat completions, stop
texts, usage, seeded and greedy output (streamed equal to whole, greedy equal to
`chronos generate --temperature 0`, from .build/release/chronos), the errors the client raises
with the field named, requests decoding at once (--parallel 4), a client leaving mid-stream or
closing its connection before a whole answer,
/health, /metrics and /v1/chronos/experts.
Build both first:

    swift build -c release --product chronos
    (cd Server && swift build -c release)

Bounded in time; the server is killed on exit.
"""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(ROOT, "Server", ".build", "release", "chronos-server")
CHRONOS = os.path.join(ROOT, ".build", "release", "chronos")
MODEL = "austen-moe"
KEY = "chronos-test-key"
PROMPT = "It is a truth universally acknowledged"
TOKENS = 24
LIMIT_SECONDS = 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None):
    """(status, body text) of a raw request, for what the client cannot send."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def generate(*arguments):
    """What `chronos generate --temperature 0` prints on standard output."""
    result = subprocess.run(
        [CHRONOS, "generate", "--temperature", "0", "--max-tokens", str(TOKENS), *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def expect_error(kind, param, call):
    try:
        call()
    except kind as error:
        assert error.param == param, f"{kind.__name__} names {error.param!r}, not {param!r}: {error}"
        assert param is None or param in str(error), f"the message does not name {param}: {error}"
        return error
    raise AssertionError(f"expected {kind.__name__} naming {param}")


def streamed(chunks, chat):
    """The text, finish reason and usage of a stream of chunks."""
    text, finish, usage = "", None, None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            piece = choice.delta.content if chat else choice.text
            text += piece or ""
            finish = choice.finish_reason or finish
    return text, finish, usage


def metric(base, name):
    status, text = http("GET", base + "/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}:\n{text}")


def wait_until(condition, message, seconds=10):
    """Polls `condition` until it holds; fails with `message` after `seconds`."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, message
        time.sleep(0.02)


def check(base, client):
    # /health and the model list.
    status, body = http("GET", base + "/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"}), (status, body)
    assert [model.id for model in client.models.list().data] == [MODEL]

    # Completions: greedy, whole and streamed, equal to each other and to `chronos generate`.
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0)
    text = whole.choices[0].text
    assert whole.choices[0].finish_reason == "length", whole
    assert whole.usage.completion_tokens == TOKENS and whole.usage.prompt_tokens > 0, whole.usage
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + TOKENS
    stream = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0, stream=True, stream_options={"include_usage": True})
    streamed_text, finish, usage = streamed(stream, chat=False)
    assert streamed_text == text, (streamed_text, text)
    assert finish == "length" and usage.completion_tokens == TOKENS, (finish, usage)
    printed = generate(PROMPT)
    assert printed == PROMPT + text + "\n", f"chronos generate printed {printed!r}, the server answered {text!r}"
    print(f"greedy completion, whole = streamed = chronos generate: {text!r}")

    # Seeded sampling: the same seed gives the same text, streamed or whole.
    sampled = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0.9, top_p=0.95, seed=42)
    stream = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0.9, top_p=0.95, seed=42, stream=True)
    assert streamed(stream, chat=False)[0] == sampled.choices[0].text

    # Chat: whole and streamed, equal to `chronos generate --chat`.
    messages = [{"role": "user", "content": "Who is Mr. Darcy?"}]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0)
    answer = chat.choices[0].message.content
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens <= TOKENS, chat
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, stream=True, stream_options={"include_usage": True})
    streamed_answer, finish, usage = streamed(stream, chat=True)
    assert streamed_answer == answer and finish == chat.choices[0].finish_reason, (streamed_answer, answer)
    assert usage.prompt_tokens == chat.usage.prompt_tokens and usage.completion_tokens == chat.usage.completion_tokens
    printed = generate("--chat", messages[0]["content"])
    assert printed == answer + "\n", f"chronos generate --chat printed {printed!r}, the server answered {answer!r}"
    print(f"greedy chat, whole = streamed = chronos generate --chat: {answer!r}")

    # Stop texts end the answer before them, whole and streamed, and are never sent.
    words = text.split(" ")
    stops = [" " + words[3], "nothing like this"]
    cut = text[: text.index(stops[0])]
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0, stop=stops)
    assert (whole.choices[0].text, whole.choices[0].finish_reason) == (cut, "stop"), whole
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0, stop=stops[0], stream=True)
    pieces = [chunk.choices[0].text for chunk in stream if chunk.choices]
    assert "".join(pieces) == cut and all(stops[0] not in "".join(pieces[: i + 1]) for i in range(len(pieces))), pieces
    print(f"stop {stops[0]!r}: {cut!r}")

    # Log-probabilities: every token of the text listed, the greedy choice the most probable,
    # whole and streamed alike.
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=TOKENS, temperature=0, logprobs=3)
    logprobs = whole.choices[0].logprobs
    assert "".join(logprobs.tokens) == whole.choices[0].text == text, logprobs.tokens
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset) == TOKENS
    for chosen, top in zip(logprobs.token_logprobs, logprobs.top_logprobs):
        assert chosen <= 0 and 1 <= len(top) <= 3 and abs(max(top.values()) - chosen) < 1e-5, (chosen, top)
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, stream=True, logprobs=True, top_logprobs=2)
    content = [entry for chunk in stream if chunk.choices and chunk.choices[0].logprobs for entry in chunk.choices[0].logprobs.content]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, logprobs=True, top_logprobs=2)
    assert "".join(entry.token for entry in content) == answer, content
    assert [(e.token, e.logprob) for e in chat.choices[0].logprobs.content] == [(e.token, e.logprob) for e in content]
    assert all(len(entry.top_logprobs) == 2 and entry.top_logprobs[0].logprob == entry.logprob for entry in content)
    print(f"logprobs: {len(content)} chat tokens, greedy choices the most probable, whole = streamed")

    # Errors, as the client raises them, naming the field.
    expect_error(openai.BadRequestError, "max_tokens", lambda: client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=-1))
    expect_error(openai.BadRequestError, "max_tokens", lambda: client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10**9))
    expect_error(openai.BadRequestError, "temperature", lambda: client.completions.create(model=MODEL, prompt=PROMPT, temperature=7))
    expect_error(openai.BadRequestError, "n", lambda: client.completions.create(model=MODEL, prompt=PROMPT, n=2))
    expect_error(
        openai.BadRequestError, "top_p",
        lambda: client.chat.completions.create(model=MODEL, messages=messages, top_p=0))
    expect_error(
        openai.BadRequestError, "messages[0].role",
        lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "x"}]))
    long_prompt = "It is a truth universally acknowledged. " * 2000
    error = expect_error(openai.BadRequestError, "prompt", lambda: client.completions.create(model=MODEL, prompt=long_prompt))
    assert error.code == "context_length_exceeded", error
    expect_error(openai.NotFoundError, "model", lambda: client.completions.create(model="gpt-4", prompt=PROMPT))
    wrong = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
    expect_error(openai.AuthenticationError, None, lambda: wrong.models.list())
    status, body = http("GET", base + "/v1/models")
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key", (status, body)
    auth = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    status, body = http("POST", base + "/v1/completions", b'{"model": "austen-moe", "prompt": ', auth)
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]["message"], (status, body)
    status, body = http("POST", base + "/v1/completions", b'{"model": "austen-moe", "prompt": "x", "max_tokens": "ten"}', auth)
    assert status == 400 and json.loads(body)["error"]["param"] == "max_tokens", (status, body)
    status, body = http("POST", base + "/v1/completions", b"x" * (2 << 20), auth)
    assert status == 413 and "error" in json.loads(body), (status, body)
    print("errors: 400, 401, 404 and 413 with OpenAI's error object, the field named")

    # Generations decoding at once (--parallel 4) share the expert store and its forward passes,
    # and keep their own text.
    prompts = [PROMPT, "Mr. Darcy", "Emma Woodhouse, handsome", "Elizabeth said"] * 2

    def greedy(prompt):
        return client.completions.create(model=MODEL, prompt=prompt, max_tokens=TOKENS, temperature=0).choices[0].text

    alone = {prompt: greedy(prompt) for prompt in prompts[:4]}
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(greedy, prompts))
    passes, sequences = metric(base, "chronos_forward_passes_total"), metric(base, "chronos_forward_pass_sequences_total")
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(greedy, prompts))
    assert together == [alone[prompt] for prompt in prompts], (together, alone)
    passes = metric(base, "chronos_forward_passes_total") - passes
    batch = (metric(base, "chronos_forward_pass_sequences_total") - sequences) / passes
    assert batch > 1.5, f"requests decoding at once ran {batch:.2f} generations a pass"
    print(f"{len(prompts)} requests at once gave each its own greedy text, {batch:.2f} generations a forward pass")

    # A client that leaves mid-stream cancels its generation.
    before = metric(base, "chronos_generated_tokens_total")
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2000, temperature=0, stream=True)
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.response.close()
    wait_until(lambda: metric(base, "chronos_generations_active") == 0, "the abandoned generation kept running")
    left = metric(base, "chronos_generated_tokens_total") - before
    assert left < 2000, f"the abandoned generation made {left} tokens"
    print(f"a stream left after 3 chunks stopped after {left:.0f} tokens")

    # A client that asks for a whole answer and closes its connection before it comes cancels
    # the generation too: the server watches the connection, not only its writes.
    before = metric(base, "chronos_generated_tokens_total")
    cancelled = metric(base, "chronos_generations_cancelled_total")
    body = json.dumps({"model": MODEL, "prompt": PROMPT, "max_tokens": 2000, "temperature": 0}).encode()
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as connection:
        connection.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_until(lambda: metric(base, "chronos_generations_active") != 0, "the whole answer's generation did not start")
    wait_until(lambda: metric(base, "chronos_generations_active") == 0, "the generation of a closed connection kept running")
    left = metric(base, "chronos_generated_tokens_total") - before
    assert left < 2000, f"the abandoned whole answer made {left} tokens"
    assert metric(base, "chronos_generations_cancelled_total") == cancelled + 1
    print(f"a whole answer whose connection closed stopped after {left:.0f} tokens")

    # The metrics and the expert report.
    assert metric(base, "chronos_expert_hit_rate") > 0
    assert metric(base, "chronos_time_to_first_token_seconds_count") > 0
    assert metric(base, "chronos_expert_read_bytes_total") > 0
    status, text = http("GET", base + "/metrics")
    layers = [line for line in text.splitlines() if line.startswith("chronos_expert_layer_resident_experts{")]
    assert layers and any(float(line.split()[-1]) > 0 for line in layers if 'tier="hot"' in line), layers
    status, body = http("GET", base + "/v1/chronos/experts", headers={"Authorization": "Bearer " + KEY})
    report = json.loads(body)
    assert status == 200 and report["mode"] == "chronos" and report["layers"], report
    states = {state for layer in report["layers"] for state in layer["experts"]}
    assert states <= {"hot", "staging", "loading", "disk"} and "hot" in states, states
    print("/metrics and /v1/chronos/experts report the expert store")


def main():
    for path in (SERVER, CHRONOS):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: build it first (see this script's header)")
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"timed out after {LIMIT_SECONDS} s"))
    signal.alarm(LIMIT_SECONDS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([SERVER, "--port", str(port), "--api-key", KEY, "--parallel", "4"], cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, "the server exited"
            try:
                if http("GET", base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the server did not become healthy"
            time.sleep(0.1)
        check(base, openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=60))
        print("openai client test passed")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
