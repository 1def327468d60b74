#!/usr/bin/env python3
"""Checks chronos-server's web UI in headless Chromium, driven by Playwright for Python.

Starts the release server (Server/.build/release/chronos-server) on a free loopback port with the
shipped model, its experts offloaded as by default, and opens the UI in Debian's Chromium
(/usr/bin/chromium; Playwright's own browsers are not used). Checks that each tab in each
language renders with every string translated and no console error (a screenshot of each is
written to --screenshots), that the tabs work from the keyboard, that a chat streams an answer
into the page, that the expert heatmap changes while it decodes, that Stop aborts a long answer
(and its generation on the server), that a benchmark runs from its tab and fills its plots, that
a tiny pretraining run and a study of two trials start from the training tab and draw their loss
curves and trials (in a workspace folder made for the test, passed as --workspace), and that at a
phone's width (390 x 844) no tab scrolls sideways; then, against a server started with --api-key,
that the UI asks for the key. Build first:

    (cd Server && swift build -c release)

Bounded in time; the server is killed on exit.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(ROOT, "Server", ".build", "release", "chronos-server")
LANGUAGES = ["en", "zh-Hans", "zh-Hant", "ja"]
TABS = ["chat", "experts", "model", "benchmarks", "training"]
LIMIT_SECONDS = 420
TIMEOUT_MS = 30_000
with open(os.path.join(ROOT, "Server", "Sources", "ChronosServer", "Web", "i18n", "en.json"), encoding="utf-8") as file:
    ENGLISH = json.load(file)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(base, name):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def heatmap(page):
    """Each heatmap cell's state, whether a prediction names it and whether the last step used it."""
    return page.eval_on_selector_all(
        "#heatmap td", "cells => cells.map(c => `${c.dataset.state}/${c.dataset.predicted}/${c.dataset.used}`)")


def open_ui(context, base, errors):
    page = context.new_page()
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.goto(base + "/")
    page.wait_for_selector("#model-facts dd", state="attached", timeout=TIMEOUT_MS)
    page.wait_for_selector('#connection[data-state="live"]', state="attached", timeout=TIMEOUT_MS)
    page.wait_for_selector("#heatmap td", state="attached", timeout=TIMEOUT_MS)
    return page


def set_language(page, language):
    page.select_option("#language", language)
    page.wait_for_function("language => document.documentElement.lang === language", arg=language, timeout=TIMEOUT_MS)


def check_languages(page, screenshots):
    english = {}
    for language in LANGUAGES:
        set_language(page, language)
        for tab in TABS:
            page.click(f"#tab-{tab}")
            panel = page.locator(f"#panel-{tab}")
            assert panel.is_visible(), f"{language}: the {tab} panel is hidden after its tab was clicked"
            # A key missing from a table shows as the key itself.
            untranslated = page.eval_on_selector_all(
                "[data-i18n]", "elements => elements.filter(e => e.textContent === e.dataset.i18n).map(e => e.dataset.i18n)")
            assert not untranslated, f"{language}: untranslated {untranslated}"
            if tab == "chat" and language != "en":
                note = page.inner_text(".message[data-role=assistant] .meta")
                assert note and note != ENGLISH["chat.stopped"], f"{language}: the stopped answer's note reads {note!r}"
            label = page.inner_text(f"#tab-{tab}")
            if language == "en":
                english[tab] = label
            else:
                assert label != english[tab], f"{language}: the {tab} tab still reads {label!r}"
            page.screenshot(path=os.path.join(screenshots, f"{tab}-{language}.png"), full_page=True)
    set_language(page, "en")
    print(f"{len(TABS)} tabs in {len(LANGUAGES)} languages rendered, screenshots in {screenshots}")


def check_keyboard(page):
    page.focus("#tab-chat")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-experts"
    assert page.get_attribute("#tab-experts", "aria-selected") == "true" and page.is_visible("#panel-experts")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == "tab-training" and page.is_visible("#panel-training")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-chat" and page.is_visible("#panel-chat")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "language", "Tab leaves the tab list for the next control"
    print("tabs move with the arrow keys, Home and End; Tab leaves the tab list")


def ask(page, prompt, max_tokens, temperature):
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", str(temperature))
    page.fill("#prompt", prompt)
    page.click("#send")


def check_chat_and_heatmap(page):
    page.click("#tab-chat")
    page.click("#clear")
    page.wait_for_timeout(1600)  # the marks of the last step used fade
    before = heatmap(page)
    ask(page, "Who is Mr. Darcy?", 64, 0)
    page.wait_for_selector("#stop:enabled", timeout=TIMEOUT_MS)
    changed = False
    deadline = time.time() + 60
    while time.time() < deadline:
        decoding = page.is_enabled("#stop")
        if heatmap(page) != before and (decoding or page.inner_text(".message[data-role=assistant] .text")):
            changed = True
        if not decoding:
            break
        page.wait_for_timeout(10)
    page.wait_for_selector("#send:enabled", timeout=TIMEOUT_MS)
    answer = page.inner_text(".message[data-role=assistant] .text")
    assert answer.strip(), "no answer streamed into the page"
    assert page.inner_text(".message[data-role=assistant] .meta"), "the answer's token count is missing"
    assert changed, "the heatmap did not change while the answer decoded"
    tokens = page.inner_text("#stat-tokens")
    assert tokens != "0", "the monitor counted no decoded token"
    print(f"a chat streamed {answer!r}; the heatmap changed while it decoded")


def check_stop(page, base):
    before = metric(base, "chronos_generated_tokens_total")
    prompts = ["Tell me a long story about Emma.", "Describe Pemberley.", "Write a letter to Jane.",
               "Tell me about Mr. Knightley.", "What did Elizabeth say to Lady Catherine?"]
    for prompt in prompts:
        page.click("#clear")
        ask(page, prompt, 2000, 1)
        page.wait_for_function(
            "() => document.querySelector('.message[data-role=assistant] .text')?.textContent.length > 0", timeout=TIMEOUT_MS)
        # Press Stop in one step of the page's event loop, so the answer cannot end between the check and the press.
        pressed = page.evaluate("() => { const stop = document.querySelector('#stop'); if (stop.disabled) return false; stop.click(); return true; }")
        page.wait_for_selector("#send:enabled", timeout=TIMEOUT_MS)
        meta = page.inner_text(".message[data-role=assistant] .meta")
        if not pressed or meta != ENGLISH["chat.stopped"]:
            # The answer ended on its own (its last chunk had already arrived when Stop was pressed): it shows its count.
            assert "tokens" in meta, f"an answer that ended on its own says {meta!r}"
            continue
        length = len(page.inner_text(".message[data-role=assistant] .text"))
        page.wait_for_timeout(500)
        assert len(page.inner_text(".message[data-role=assistant] .text")) == length, "text kept arriving after Stop"
        deadline = time.time() + 10
        while metric(base, "chronos_generations_active") != 0:
            assert time.time() < deadline, "the stopped generation kept running on the server"
            time.sleep(0.05)
        made = metric(base, "chronos_generated_tokens_total") - before
        assert made < 2000, f"the stopped generation made {made} tokens"
        print(f"Stop aborted an answer of up to 2000 tokens ({meta!r}); the server stopped it")
        return
    raise AssertionError(f"{len(prompts)} answers ended before Stop could be pressed")


def check_benchmarks(page):
    """A sweep of two budgets runs from the benchmarks tab; its plots and table fill in."""
    page.click("#tab-benchmarks")
    for box in page.query_selector_all('#bench-form input[name="budget"]'):
        box.set_checked(box.get_attribute("value") in ("0.3", "1"))
    page.fill("#bench-tokens", "4")
    page.click("#bench-run")
    page.wait_for_function("() => document.querySelectorAll('#bench-table tbody tr').length > 0", timeout=120_000)
    assert page.is_disabled("#bench-run") or page.inner_text("#bench-status").startswith("Benchmark finished")
    page.wait_for_function("() => !document.querySelector('#bench-run').disabled", timeout=240_000)
    status = page.inner_text("#bench-status")
    assert status == ENGLISH["bench.status"].format(state="finished", done=2, total=2), status
    baselines = {row.split("\t")[1] for row in page.eval_on_selector_all("#bench-table tbody tr", "rows => rows.map(r => r.innerText)")}
    assert {"resident", "mmap", "lru/wait", "chronos/wait"} <= baselines, baselines
    lines = page.eval_on_selector_all("#sweep-speed polyline", "lines => lines.map(l => l.getAttribute('points').split(' ').length)")
    assert lines and max(lines) == 2, f"the speed plot's lines have {lines} points, not one per budget"
    print(f"a benchmark of 2 budgets ran from the UI: {len(baselines)} baselines, {len(lines)} lines a plot")


def make_workspace(directory):
    """A tiny corpus (data/train.jsonl) and a search space over the learning rate (space.json)."""
    os.makedirs(os.path.join(directory, "data"), exist_ok=True)
    with open(os.path.join(directory, "data", "train.jsonl"), "w", encoding="utf-8") as file:
        for i in range(60):
            text = f"It is a truth universally acknowledged, number {i}, that a single man in possession of a good fortune must be in want of a wife."
            file.write(json.dumps({"text": text}) + "\n")
    with open(os.path.join(directory, "space.json"), "w", encoding="utf-8") as file:
        json.dump({"parameters": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.01, "log": True}]}, file)


def fill_tiny(page, prefix, fields):
    page.select_option(f"#{prefix}-shape", "tiny")
    page.fill(f"#{prefix}-vocab", "300")
    for field, value in fields.items():
        page.fill(f"#{prefix}-{field}", value)


def start_job(page, prefix, fields):
    """Fills the `prefix` form of the training tab with a tiny job, starts it and waits until it is listed and has ended."""
    fill_tiny(page, prefix, fields)
    page.click(f"#{prefix}-start")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#{prefix}-jobs tbody tr')].some(r => r.innerText.includes('{fields['output']}'))",
        timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => !document.querySelector('#{prefix}-start').disabled", timeout=120_000)


def check_training(page):
    """A tiny run and a study of two trials start from the training tab; their curves and trials appear."""
    page.click("#tab-training")
    page.wait_for_function("() => document.querySelector('#train-workspace').textContent.length > 0", timeout=TIMEOUT_MS)
    start_job(page, "train", {"output": "runs/ui", "steps": "8", "batch": "2", "seq-len": "12"})
    status = page.inner_text("#train-status")
    assert status == ENGLISH["train.progress"].format(output="runs/ui", state="finished", step=8, steps=8), status
    lines = page.eval_on_selector_all("#train-curve polyline", "lines => lines.map(l => l.getAttribute('points').split(' ').length)")
    assert lines and max(lines) == 8, f"the loss curve's lines have {lines} points, not one per step"
    assert page.eval_on_selector_all("#train-curve .key li", "items => items.length") == 3, "the key names the loss, cross-entropy and held-out lines"

    page.set_checked("#tune-prune", False)
    start_job(page, "tune", {"output": "studies/ui", "trials": "2", "steps": "3"})
    status = page.inner_text("#tune-status")
    assert status == ENGLISH["tune.progress"].format(output="studies/ui", state="finished", done=2, wanted=2), status
    trials = page.eval_on_selector_all("#tune-trials-table tbody tr", "rows => rows.map(r => r.innerText)")
    assert len(trials) == 2 and all("lr=" in row for row in trials), trials
    best = page.eval_on_selector_all("#tune-best polyline", "lines => lines.map(l => l.getAttribute('points').split(' ').length)")
    assert best == [2], f"the best-so-far line has {best} points, not one per trial"
    print(f"a tiny run drew its loss curve ({max(lines)} steps) and a study of {len(trials)} trials ran from the training tab")


def check_phone(browser, base, errors, screenshots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = open_ui(context, base, errors)
    for tab in TABS:
        page.click(f"#tab-{tab}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"at 390 px the {tab} tab scrolls sideways by {overflow} px"
    page.click("#tab-chat")
    page.screenshot(path=os.path.join(screenshots, "chat-en-phone.png"), full_page=True)
    context.close()
    print("at 390 x 844 no tab scrolls sideways")


def start_server(arguments):
    """The release server on a free loopback port with `arguments`, once healthy, and its address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([SERVER, "--port", str(port), *arguments], cwd=ROOT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        if server.poll() is not None:
            raise AssertionError("the server exited")
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    return server, base
        except OSError:
            pass
        if time.time() > deadline:
            stop_server(server)
            raise AssertionError("the server did not become healthy")
        time.sleep(0.1)


def stop_server(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def check_api_key(browser):
    """A server started with --api-key: the UI asks for the key, refuses a wrong one, then works."""
    server, base = start_server(["--api-key", "chronos-test-key"])
    try:
        context = browser.new_context()
        page = context.new_page()
        failures = []
        page.on("pageerror", lambda error: failures.append(str(error)))
        page.goto(base + "/")
        page.wait_for_selector("#key-bar:not([hidden])", timeout=TIMEOUT_MS)
        assert page.inner_text("#status") == ENGLISH["status.needsKey"], page.inner_text("#status")
        page.fill("#api-key", "wrong")
        page.press("#api-key", "Enter")
        page.wait_for_function("text => document.querySelector('#status').textContent === text", arg=ENGLISH["status.wrongKey"])
        page.fill("#api-key", "chronos-test-key")
        page.press("#api-key", "Enter")
        page.wait_for_selector('#connection[data-state="live"]', state="attached", timeout=TIMEOUT_MS)
        ask(page, "Who is Emma?", 16, 0)
        page.wait_for_selector("#send:enabled", timeout=TIMEOUT_MS)
        assert page.inner_text(".message[data-role=assistant] .text").strip(), "no answer with the key"
        assert not failures, failures
        context.close()
        print("with --api-key the UI asks for the key, refuses a wrong one and chats with the right one")
    finally:
        stop_server(server)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", default=os.path.join(ROOT, "Server", ".build", "ui-screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    arguments = parser.parse_args()
    for path in (SERVER, arguments.chromium):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: build the server (see this script's header) and install Debian's chromium")
    os.makedirs(arguments.screenshots, exist_ok=True)
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"timed out after {LIMIT_SECONDS} s"))
    signal.alarm(LIMIT_SECONDS)
    workspace = tempfile.mkdtemp(prefix="chronos-ui-workspace-")
    make_workspace(workspace)
    server, base = start_server(["--workspace", workspace])
    try:
        errors = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=arguments.chromium, args=["--no-sandbox"])
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = open_ui(context, base, errors)
                check_keyboard(page)
                check_chat_and_heatmap(page)
                check_stop(page, base)
                check_benchmarks(page)
                check_training(page)
                check_languages(page, arguments.screenshots)
                context.close()
                check_phone(browser, base, errors, arguments.screenshots)
                check_api_key(browser)
            finally:
                browser.close()
        assert not errors, "\n".join(errors)
        print("ui browser test passed")
    finally:
        stop_server(server)
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
