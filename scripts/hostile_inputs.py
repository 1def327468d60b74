#!/usr/bin/env python3
"""Runs `chronos` on hostile but ordinary input and classifies each outcome.

Every case must end in one of two ways: a clear error (a non-zero exit status and a message on
stderr, with no runtime trap) or, where the input is valid, success. The classes counted:

  crash   the process died on a signal or printed a Swift runtime trap ("Fatal error", ...)
  hang    it ran past the case's time limit
  silent  it exited 0 where the case expects an error (wrong output, accepted nonsense)
  unclear it failed with a message that names none of the words the case expects
  lost    earlier work was destroyed (a check after the run failed)
  ok      the expected outcome

Usage: scripts/hostile_inputs.py [--binary .build/release/chronos] [--only WORD] [--verbose]
Build first with `swift build -c release --product chronos`. Cases work on copies of the
shipped model and a tiny corpus in a temporary directory; nothing in the checkout is changed.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "austen-moe")
TRAP_MARKERS = ("Fatal error", "Illegal instruction", "Segmentation fault", "Trace/breakpoint trap",
                "Assertion failed", "Precondition failed", "Stack dump", "💣")


class Case:
    """One hostile input: the arguments, what a clear error must mention, and checks after."""

    def __init__(self, group, name, args, expect="error", words=(), env=None, setup=None, after=None, timeout=60,
                 dangerous=False):
        self.group, self.name, self.args, self.expect, self.dangerous = group, name, args, expect, dangerous
        self.words, self.env, self.setup, self.after, self.timeout = words, env or {}, setup, after, timeout


def copy_model(work, name):
    target = os.path.join(work, name)
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(MODEL, target)
    return target


def corrupt_expert_cache(model_dir):
    cache = os.path.join(model_dir, "expert_cache")
    manifest = json.load(open(os.path.join(cache, "cluster_manifest.json")))
    entry = manifest["experts"][0]
    path = os.path.join(cache, manifest["files"][entry["file"]]["name"])
    with open(path, "r+b") as f:
        f.seek(entry["offset"] + entry["length"] // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def edit_config(model_dir, **changes):
    path = os.path.join(model_dir, "config.json")
    config = json.load(open(path))
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def reformat_config(model_dir):
    path = os.path.join(model_dir, "config.json")
    config = json.load(open(path))
    with open(path, "w") as f:
        json.dump(config, f, indent=4, sort_keys=True)


def damage_dense(model_dir):
    path = os.path.join(model_dir, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)


def drop_byte_from_vocab(model_dir):
    """A vocabulary that never saw the byte "z": no token and no merge holds it."""
    path = os.path.join(model_dir, "tokenizer.json")
    tokenizer = json.load(open(path))
    model = tokenizer["model"]
    model["vocab"] = {token: id for token, id in model["vocab"].items() if "z" not in token}
    model["merges"] = [merge for merge in model["merges"] if not any("z" in part for part in merge)]
    with open(path, "w") as f:
        json.dump(tokenizer, f)


def config_as_directory(model_dir):
    path = os.path.join(model_dir, "config.json")
    os.remove(path)
    os.mkdir(path)


def tiny_corpus(work):
    path = os.path.join(work, "tiny.jsonl")
    if not os.path.exists(path):
        with open(os.path.join(ROOT, "data", "austen", "train.jsonl")) as source, open(path, "w") as out:
            for _, line in zip(range(40), source):
                out.write(line)
    return path


TINY_SHAPE = ["--hidden", "32", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "16", "--kv-latent",
              "16", "--rope-dim", "8", "--window", "16", "--experts", "4", "--top-k", "2", "--expert-width", "32",
              "--shared-width", "32", "--lookahead", "2", "--vocab-size", "300", "--seq-len", "32", "--batch", "2",
              "--eval-every", "2", "--eval-sequences", "2", "--checkpoint-every", "2", "--warmup", "1"]


def pretrain_args(work, run, steps=4, extra=()):
    return ["train", "pretrain", "--data", tiny_corpus(work), "--out", os.path.join(work, run), "--steps", str(steps),
            "--backend", "swift"] + TINY_SHAPE + list(extra)


def trained_run(binary, work, run):
    """A finished tiny pretraining run in work/run (made once)."""
    path = os.path.join(work, run)
    if not os.path.exists(os.path.join(path, "config.json")):
        subprocess.run([binary] + pretrain_args(work, run), capture_output=True, timeout=600, check=True)
    return path


def snapshot_names(run_dir):
    directory = os.path.join(run_dir, "checkpoints")
    return sorted(n for n in os.listdir(directory) if not n.startswith(".")) if os.path.isdir(directory) else []


def cases(binary, work):
    shipped = ["generate", "--model", MODEL, "--max-tokens", "4", "--temperature", "0"]
    offloaded = shipped + ["--expert-budget", "0.5"]
    prompt = ["It is a truth"]
    out = []
    add = out.append

    # Numbers that would trap when converted to integers, or that make no sense.
    for option, value, words in [
        ("--expert-budget", "inf", ("--expert-budget",)), ("--expert-budget", "1e19", ("--expert-budget",)),
        ("--expert-budget", "nan", ("--expert-budget",)), ("--expert-budget", "-0.5", ("--expert-budget",)),
        ("--expert-budget", "0", ("--expert-budget",)),
        ("--staging", "nan", ("--staging",)), ("--staging", "2", ("--staging",)), ("--staging", "-1", ("--staging",)),
        ("--ssd-ms", "inf", ("--ssd-ms",)), ("--ssd-ms", "-1", ("--ssd-ms",)), ("--ssd-ms", "nan", ("--ssd-ms",)),
        ("--ssd-mbps", "0", ("--ssd-mbps",)), ("--ssd-mbps", "-5", ("--ssd-mbps",)), ("--ssd-mbps", "nan", ("--ssd-mbps",)),
        ("--io-threads", "0", ("--io-threads",)), ("--io-threads", "100000", ("--io-threads",)),
        ("--lookahead-chance", "nan", ("--lookahead-chance",)), ("--lookahead-chance", "1.5", ("--lookahead-chance",)),
        ("--prefetch-threshold", "-1", ("--prefetch-threshold",)), ("--preview-threshold", "inf", ("--preview-threshold",)),
        ("--lookahead-experts", "-3", ("--lookahead-experts",)), ("--lookahead-experts", "1000000", ("--lookahead-experts",)),
    ]:
        base = [a for a in offloaded if a not in ("--expert-budget", "0.5")] if option == "--expert-budget" else offloaded
        add(Case("options", f"generate {option} {value}", base + [f"{option}={value}"] + prompt, words=words, timeout=30,
                 dangerous=value == "100000"))
    for option, value in [("--temperature", "-1"), ("--temperature", "nan"), ("--top-p", "2"), ("--top-p", "-0.1"),
                          ("--min-p", "1.5"), ("--repetition-penalty", "0"), ("--repetition-penalty", "nan"),
                          ("--top-k", "-1"), ("--max-tokens", "-5"), ("--max-tokens", "0")]:
        add(Case("options", f"generate {option} {value}", shipped + [f"{option}={value}"] + prompt, words=(option,)))
    add(Case("options", "generate --experts bogus", shipped + ["--experts", "bogus"] + prompt,
             words=("chronos", "lru", "mmap", "resident")))
    add(Case("options", "generate --policy bogus", offloaded + ["--policy", "bogus"] + prompt, words=("wait", "fallback", "sync")))
    add(Case("options", "generate --fault bogus", offloaded + ["--fault", "bogus"] + prompt, words=("--fault",)))
    add(Case("options", "generate --prompt-ids 1,x", shipped + ["--prompt-ids", "1,x"], words=("token id",)))
    add(Case("options", "generate --prompt-ids 99999", shipped + ["--prompt-ids", "99999"], words=("99999", "vocab")))
    add(Case("options", "generate --prompt-ids -1", shipped + ["--prompt-ids=-1"], words=("-1",)))
    add(Case("options", "generate prompt longer than context", shipped + ["--prompt-ids", ",".join(["5"] * 5000)],
             words=("context", "4096")))
    add(Case("environment", "CHRONOS_BACKEND=bogus backends", ["backends"], env={"CHRONOS_BACKEND": "bogus"},
             words=("CHRONOS_BACKEND", "bogus")))
    add(Case("environment", "CHRONOS_BACKEND=bogus generate", shipped + prompt, env={"CHRONOS_BACKEND": "bogus"},
             words=("CHRONOS_BACKEND", "bogus")))
    add(Case("environment", "--backend bogus", ["backends", "--backend", "bogus"], words=("bogus",)))
    add(Case("environment", "CHRONOS_THREADS=100000", shipped + prompt, env={"CHRONOS_THREADS": "100000"},
             words=("CHRONOS_THREADS",), dangerous=True))
    add(Case("environment", "CHRONOS_THREADS=abc", shipped + prompt, env={"CHRONOS_THREADS": "abc"},
             words=("CHRONOS_THREADS",)))
    add(Case("environment", "CHRONOS_SIM_SSD_MBPS=0", offloaded + prompt, env={"CHRONOS_SIM_SSD_MBPS": "0"},
             words=("CHRONOS_SIM_SSD_MBPS",), timeout=30))

    # Training shapes and settings.
    for option, value in [("--seq-len", "0"), ("--batch", "0"), ("--hidden", "-1"), ("--hidden", "1000000000"),
                          ("--layers", "0"), ("--experts", "0"), ("--top-k", "9"), ("--kv-heads", "3"), ("--steps", "-1"),
                          ("--accumulate", "0"), ("--lr", "nan"), ("--lr", "-1"), ("--clip", "-1"), ("--vocab-size", "10"),
                          ("--window", "0"), ("--lookahead", "-2"), ("--checkpoint-every", "-1"), ("--eval-every", "-1"),
                          ("--max-minutes", "nan"), ("--fallback-mask-prob", "2"), ("--warmup", "-1")]:
        run = f"bad-{option.strip('-')}-{value}"
        args = [a for a in pretrain_args(work, run)]
        if option in args:
            index = args.index(option)
            del args[index:index + 2]
        add(Case("training", f"pretrain {option} {value}", args + [f"{option}={value}"], words=(option,), timeout=60))

    def pipeline_case(name, section, key, value):
        def setup():
            config = {"output": os.path.join(work, f"pipeline-run-{name}"), "vocab_size": 300,
                      "model": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                                "head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2},
                      "stages": [{"stage": "pretrain", "data": tiny_corpus(work), "steps": 2, "seq_len": 32, "batch_size": 2}]}
            (config["model"] if section == "model" else config["stages"][0])[key] = value
            with open(os.path.join(work, f"pipeline-{name}.json"), "w") as f:
                json.dump(config, f)
        add(Case("training", f"pipeline {section}.{key} = {value}", ["pipeline", "--config", os.path.join(work, f"pipeline-{name}.json")],
                 words=(key,), setup=setup, timeout=60))
    pipeline_case("seqlen", "stage", "seq_len", 0)
    pipeline_case("batch", "stage", "batch_size", 0)
    pipeline_case("lr", "stage", "learning_rate", -1)
    pipeline_case("steps", "stage", "steps", 1e30)
    pipeline_case("hidden", "model", "hidden_size", -1)
    pipeline_case("experts", "model", "num_experts", 1000000000)

    # Model configs.
    def config_case(name, changes, words, expect="error", memory_limited=False):
        model = os.path.join(work, f"config-{name}")
        add(Case("config", f"config.json {name}", ["generate", "--model", model, "--max-tokens", "2", "--temperature", "0"] + prompt,
                 words=words, expect=expect, setup=lambda: edit_config(copy_model(work, f"config-{name}"), **changes),
                 timeout=60))
    config_case("num_experts 1e9", {"num_experts": 1000000000}, ("num_experts",))
    config_case("num_experts 0", {"num_experts": 0}, ("num_experts",))
    config_case("hidden_size -1", {"hidden_size": -1}, ("hidden_size",))
    config_case("num_experts_per_tok 9", {"num_experts_per_tok": 9}, ("num_experts_per_tok",))
    config_case("num_experts 8.5", {"num_experts": 8.5}, ("num_experts",))
    config_case("num_shared_experts 0", {"num_shared_experts": 0}, ("num_shared_experts", "shared"))
    config_case("rms_norm_eps nan-string", {"rms_norm_eps": "nan"}, ("rms_norm_eps",))
    config_case("vocab_size 10", {"vocab_size": 10}, ("vocab_size", "embed"))

    # Damaged files.
    def damaged(name, mutate, args, words, text=prompt):
        model = os.path.join(work, f"damaged-{name}")
        add(Case("files", name, ["generate", "--model", model, "--max-tokens", "4", "--temperature", "0"] + args + text,
                 words=words, setup=lambda: mutate(copy_model(work, f"damaged-{name}")), timeout=60))
    damaged("corrupt expert, resident", corrupt_expert_cache, [], ("corrupt", "hash"))
    damaged("corrupt expert, --experts mmap", corrupt_expert_cache, ["--expert-budget", "1.0", "--experts", "mmap"], ("corrupt", "hash"))
    damaged("corrupt expert, --experts resident", corrupt_expert_cache, ["--expert-budget", "0.5", "--experts", "resident"], ("corrupt", "hash"))
    damaged("corrupt expert, budget 0.5", corrupt_expert_cache, ["--expert-budget", "0.5"], ("corrupt", "hash"))
    damaged("truncated model.safetensors", damage_dense, [], ("model.safetensors",))
    damaged("truncated model.safetensors, budget 0.5", damage_dense, ["--expert-budget", "0.5"], ("model.safetensors",))
    damaged("vocabulary missing a byte", drop_byte_from_vocab, [], ("0x7A", "no token"), text=["It is a lazy truth"])
    damaged("config.json is a directory", config_as_directory, [], ("config.json", "directory"))
    model = os.path.join(work, "reformatted")
    add(Case("files", "reformatted config.json", ["generate", "--model", model, "--max-tokens", "4", "--temperature", "0",
                                                  "--expert-budget", "0.5"] + prompt,
             expect="success", setup=lambda: reformat_config(copy_model(work, "reformatted"))))
    add(Case("files", "persistent io fault under wait", offloaded + ["--fault", "io-error:L0/E0x1000"] + prompt,
             words=("io", "fault", "read"), timeout=60))

    def file_in_the_way():
        with open(os.path.join(work, "not-a-directory"), "w") as f:
            f.write("earlier work")

    def file_intact():
        return open(os.path.join(work, "not-a-directory")).read() == "earlier work"
    add(Case("runs", "--out is a file", pretrain_args(work, "not-a-directory"), words=("--out", "not-a-directory"),
             setup=file_in_the_way, after=file_intact, timeout=60))

    # Runs that must not lose work.
    def rerun_without_resume():
        trained_run(binary, work, "run-a")

    def run_a_intact():
        run = os.path.join(work, "run-a")
        return os.path.exists(os.path.join(run, "config.json")) and snapshot_names(run) != []

    add(Case("runs", "pretrain into an existing run without --resume", pretrain_args(work, "run-a"),
             words=("--resume", "--overwrite"), setup=rerun_without_resume, after=run_a_intact, timeout=300))

    def drop_latest():
        run = trained_run(binary, work, "run-b")
        latest = os.path.join(run, "checkpoints", "latest")
        if os.path.lexists(latest):
            os.remove(latest)
    add(Case("runs", "--resume with no latest snapshot", pretrain_args(work, "run-b", steps=6) + ["--resume"],
             words=("snapshot", "resume"), setup=drop_latest, expect="success-or-error-not-from-zero", timeout=300))

    def outside_latest():
        run = trained_run(binary, work, "run-c")
        latest = os.path.join(run, "checkpoints", "latest")
        if os.path.lexists(latest):
            os.remove(latest)
        os.symlink("/etc", latest)
    add(Case("runs", "latest pointing outside the run", pretrain_args(work, "run-c", steps=6) + ["--resume"],
             words=("snapshot",), setup=outside_latest, expect="success-or-error-not-from-zero", timeout=300))
    return out


def limit_memory():
    """Caps a case's address space at 12 GiB, so a runaway allocation fails instead of the machine."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))


def run_case(binary, case, verbose):
    if case.setup:
        case.setup()
    env = dict(os.environ)
    env.update(case.env)
    try:
        proc = subprocess.run([binary] + case.args, capture_output=True, text=True, errors="replace", env=env,
                              timeout=case.timeout, start_new_session=True, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired as expired:
        return "hang", f"still running after {case.timeout} s"
    stderr = proc.stderr
    if proc.returncode < 0 or any(marker in stderr for marker in TRAP_MARKERS):
        sig = -proc.returncode if proc.returncode < 0 else None
        first = next((l for l in stderr.splitlines() if any(m in l for m in TRAP_MARKERS)), stderr.strip()[-200:])
        return "crash", f"{'signal ' + signal.Signals(sig).name if sig else 'trap'}: {first[:200]}"
    if case.after and not case.after():
        return "lost", "earlier work destroyed"
    message = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if case.expect == "success":
        return ("ok", "") if proc.returncode == 0 else ("unclear", message[:200])
    if case.expect == "success-or-error-not-from-zero":
        if proc.returncode == 0 and "resuming at step" not in proc.stdout:
            return "silent", "started again from step 0"
        return "ok", message[:200]
    if proc.returncode == 0:
        return "silent", "exit status 0"
    lowered = stderr.lower()
    if case.words and not any(word.lower() in lowered for word in case.words):
        return "unclear", message[:200]
    return "ok", message[:200] if verbose else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "chronos"))
    parser.add_argument("--only", help="run the cases whose group or name contains this")
    parser.add_argument("--verbose", action="store_true", help="print every case's message")
    parser.add_argument("--skip-dangerous", action="store_true",
                        help="skip the cases that ask for 100,000 threads (for a build that would start them)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="chronos-hostile-")
    try:
        selected = [c for c in cases(args.binary, work)
                    if (not args.only or args.only in c.group or args.only in c.name)
                    and not (args.skip_dangerous and c.dangerous)]
        tally = defaultdict(Counter)
        for index, case in enumerate(selected, 1):
            outcome, detail = run_case(args.binary, case, args.verbose)
            tally[case.group][outcome] += 1
            if outcome != "ok" or args.verbose:
                print(f"[{index}/{len(selected)}] {outcome:7} {case.group}: {case.name}  {detail}", flush=True)
        classes = ["ok", "crash", "hang", "silent", "unclear", "lost"]
        print("\n| input class | cases | " + " | ".join(classes) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in classes) + " |")
        for group, counts in tally.items():
            print(f"| {group} | {sum(counts.values())} | " + " | ".join(str(counts[c]) for c in classes) + " |")
        total = Counter()
        for counts in tally.values():
            total.update(counts)
        print(f"| all | {sum(total.values())} | " + " | ".join(str(total[c]) for c in classes) + " |")
        failed = sum(total.values()) - total["ok"]
        print(f"{total['ok']} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
