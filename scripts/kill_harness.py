#!/usr/bin/env python3
"""Kills `chronos` with SIGKILL at random moments and checks that nothing is lost.

For each job — `pack` (with --strip-experts), `train pretrain` (its snapshots), `pipeline`
(pretrain then sft) and `compare` (two models through pretrain and sft) — three uninterrupted runs, which must agree, give the reference. Then, for
each trial, a fresh copy of the job's input is run and killed after a random delay drawn over the
longest of those runs, and:

  1. the directory either loads or refuses with the clear error a user can act on ("run
     `chronos pack`", "--resume" / "--overwrite"), never a crash or a garbled model;
  2. the rerun a user would make (pack again; `--resume`, or `--overwrite` when there is no
     snapshot yet; the same pipeline or compare command) completes;
  3. its result equals the reference: the same expert cache (every hash in the manifest) and
     the same stripped checkpoint, the same final weights, the same pipeline report metrics.

Usage: scripts/kill_harness.py [--trials 100] [--jobs pack,pretrain,pipeline] [--binary PATH]
Build first with `swift build -c release --product chronos`. Prints a table of trials,
interrupted runs, clear refusals and losses per job and exits non-zero on any loss.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = ["--hidden", "32", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "16", "--kv-latent", "16",
         "--rope-dim", "8", "--window", "16", "--experts", "4", "--top-k", "2", "--expert-width", "32", "--shared-width", "32",
         "--lookahead", "2", "--seq-len", "32", "--batch", "2", "--eval-sequences", "2", "--warmup", "1"]
CLEAR_REFUSALS = ("chronos pack", "--resume", "--overwrite", "no snapshot to resume from", "holds an earlier run")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Job:
    """One kind of work: how to set up its input, run it, check it and compare results."""

    def __init__(self, binary, work):
        self.binary, self.work = binary, work

    def chronos(self, args, **kwargs):
        return subprocess.run([self.binary] + args, capture_output=True, text=True, errors="replace", **kwargs)

    def start(self, args):
        return subprocess.Popen([self.binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def empty(self, name):
        """An empty directory `name` in the work directory."""
        target = os.path.join(self.work, name)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        return target


class Pack(Job):
    name = "pack"

    def prepare_source(self):
        source = os.path.join(self.work, "pack-source")
        if not os.path.exists(source):
            corpus = tiny_corpus(self.work)
            # Larger than the training jobs' model, so that packing takes long enough for the
            # kills to land while files are written.
            shape = shape_with(hidden="128", layers="4", experts="16", expert_width="256")
            run = self.chronos(["train", "pretrain", "--data", corpus, "--out", source, "--steps", "1", "--backend", "swift",
                                "--vocab-size", "300", "--eval-every", "0", "--checkpoint-every", "0"] + shape)
            assert run.returncode == 0, run.stderr
            shutil.rmtree(os.path.join(source, "checkpoints"))
        return source

    def fresh(self, name):
        target = os.path.join(self.work, name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.prepare_source(), target)
        return target

    def args(self, directory):
        return ["pack", directory, "--strip-experts"]

    def rerun(self, directory):
        return self.chronos(self.args(directory))

    def check(self, directory):
        """The directory loads, or refuses with a clear error."""
        run = self.chronos(["generate", "--model", directory, "--prompt-ids", "1,2,3", "--max-tokens", "2", "--temperature", "0",
                            "--expert-budget", "0.5", "--print-ids"])
        return run

    def result(self, directory):
        manifest = json.load(open(os.path.join(directory, "expert_cache", "cluster_manifest.json")))
        hashes = sorted((e["layer"], e["expert"], e["hash"]) for e in manifest["experts"])
        return hashes, digest(os.path.join(directory, "model.safetensors"))


class Pretrain(Job):
    name = "pretrain"

    def fresh(self, name):
        target = self.empty(name)
        shutil.copytree(os.path.join(self.tokenizer()), os.path.join(target, "tokenizer"))
        return target

    def tokenizer(self):
        directory = os.path.join(self.work, "tokenizer")
        if not os.path.exists(os.path.join(directory, "tokenizer.json")):
            run = self.chronos(["tokenizer", "train", "--data", tiny_corpus(self.work), "--vocab-size", "300", "--out", directory])
            assert run.returncode == 0, run.stderr
        return directory

    def args(self, directory, extra=()):
        return ["train", "pretrain", "--data", tiny_corpus(self.work), "--out", directory, "--tokenizer",
                os.path.join(directory, "tokenizer"), "--steps", "60", "--backend", "swift", "--eval-every", "10",
                "--checkpoint-every", "2"] + SHAPE + list(extra)

    def rerun(self, directory):
        run = self.chronos(self.args(directory, ["--resume"]))
        if run.returncode != 0 and "no snapshot to resume from" in run.stderr:
            run = self.chronos(self.args(directory, ["--overwrite"]))
        return run

    def check(self, directory):
        """The run directory's top-level model, once there is one, loads and generates."""
        if not os.path.exists(os.path.join(directory, "config.json")):
            return None
        return self.chronos(["generate", "--model", directory, "--prompt-ids", "1,2,3", "--max-tokens", "2", "--temperature", "0",
                             "--print-ids"])

    def result(self, directory):
        return digest(os.path.join(directory, "model.safetensors"))


class Pipeline(Job):
    name = "pipeline"

    def fresh(self, name):
        target = self.empty(name)
        sft = self.sft(self.work)
        config = {"output": os.path.join(target, "run"), "vocab_size": 300,
                  "model": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                            "head_dim": 16, "kv_latent_dim": 16, "rope_dim": 8, "sliding_window": 16, "num_experts": 4,
                            "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32,
                            "lookahead_steps": 2},
                  "defaults": {"checkpoint_every": 2, "eval_every": 0, "batch_size": 2, "warmup_steps": 1},
                  "stages": [{"stage": "pretrain", "data": tiny_corpus(self.work), "steps": 20, "seq_len": 32, "eval_sequences": 2},
                             {"stage": "sft", "data": sft, "steps": 10, "max_length": 64, "eval_examples": 4,
                              "generation_examples": 2, "max_new_tokens": 8}]}
        with open(os.path.join(target, "pipeline.json"), "w") as f:
            json.dump(config, f)
        return target

    @staticmethod
    def sft(work):
        """The first 60 conversations of the WordNet SFT validation set."""
        path = os.path.join(work, "sft.jsonl")
        if not os.path.exists(path):
            with open(os.path.join(ROOT, "data", "wordnet", "sft_valid.jsonl")) as source, open(path, "w") as out:
                for _, line in zip(range(60), source):
                    out.write(line)
        return path

    def args(self, directory):
        return ["pipeline", "--config", os.path.join(directory, "pipeline.json"), "--backend", "swift"]

    def rerun(self, directory):
        return self.chronos(self.args(directory))

    def check(self, directory):
        """Each stage's model written so far loads and generates."""
        run = os.path.join(directory, "run")
        for stage in ("1-pretrain", "2-sft"):
            if os.path.exists(os.path.join(run, stage, "config.json")):
                checked = self.chronos(["generate", "--model", os.path.join(run, stage), "--prompt-ids", "1,2,3",
                                        "--max-tokens", "2", "--temperature", "0", "--print-ids"])
                if checked.returncode != 0:
                    return checked
        return None

    def result(self, directory):
        run = os.path.join(directory, "run")
        report = json.load(open(os.path.join(run, "report.json")))
        finals = [(s["stage"], s["steps"], sorted(s["evaluations"][-1]["metrics"].items())) for s in report["stages"]]
        return finals, digest(os.path.join(run, "2-sft", "model.safetensors"))


class Compare(Job):
    name = "compare"

    def fresh(self, name):
        target = self.empty(name)
        sft = Pipeline.sft(self.work)
        with open(os.path.join(target, "stages.json"), "w") as f:
            json.dump({"output": "unused",
                       "defaults": {"checkpoint_every": 2, "eval_every": 0, "batch_size": 2, "warmup_steps": 1},
                       "stages": [{"stage": "sft", "data": sft, "steps": 6, "max_length": 64, "eval_examples": 4,
                                   "generation_examples": 2, "max_new_tokens": 8}]}, f)
        with open(os.path.join(target, "prompts.txt"), "w") as f:
            f.write("It is a truth universally acknowledged\n")
        return target

    def args(self, directory):
        corpus = tiny_corpus(self.work)
        return ["compare", "--out", os.path.join(directory, "report"), "--runs", os.path.join(directory, "runs"), "--data", corpus,
                "--heldout", corpus, "--prompts", os.path.join(directory, "prompts.txt"), "--stages",
                os.path.join(directory, "stages.json"), "--vocab-size", "300", "--steps", "20", "--checkpoint-every", "2",
                "--eval-every", "10", "--param-tolerance", "0.05", "--decode-tokens", "4", "--offload-tokens", "4",
                "--budgets", "0.5", "--backend", "swift"] + SHAPE

    def rerun(self, directory):
        if os.path.exists(os.path.join(directory, "report", "report.json")):
            return subprocess.CompletedProcess([], 0, "the report was written before the kill", "")
        return self.chronos(self.args(directory))

    def check(self, directory):
        return None

    def result(self, directory):
        report = json.load(open(os.path.join(directory, "report", "report.json")))
        stages = [(m["name"], [(s["name"], s["steps"], round(s["held_out_cross_entropy"], 9)) for s in m["stages"]])
                  for m in report["models"]]
        weights = [digest(os.path.join(directory, "runs", name, "2-sft", "model.safetensors")) for name in ("conventional", "chronos")]
        return stages, weights


def shape_with(**changes):
    """SHAPE with the options named (underscores for dashes) changed."""
    shape = list(SHAPE)
    for name, value in changes.items():
        shape[shape.index("--" + name.replace("_", "-")) + 1] = value
    return shape


def tiny_corpus(work):
    path = os.path.join(work, "tiny.jsonl")
    if not os.path.exists(path):
        with open(os.path.join(ROOT, "data", "austen", "train.jsonl")) as source, open(path, "w") as out:
            for _, line in zip(range(40), source):
                out.write(line)
    return path


def trial(job, reference, duration, rng, index):
    directory = job.fresh(f"{job.name}-trial")
    process = job.start(job.args(directory))
    time.sleep(rng.uniform(0, duration))
    interrupted = process.poll() is None
    if interrupted:
        process.send_signal(signal.SIGKILL)
    process.wait()
    outcome = {"interrupted": interrupted, "refused": False, "resumed": False, "lost": None}
    checked = job.check(directory)
    if checked is not None:
        crashed = checked.returncode < 0 or "Fatal error" in checked.stderr
        if crashed:
            outcome["lost"] = f"check crashed: {checked.stderr.strip()[-300:]}"
            return outcome
        if checked.returncode != 0:
            if not any(words in checked.stderr for words in CLEAR_REFUSALS):
                outcome["lost"] = f"unclear refusal: {checked.stderr.strip()[-300:]}"
                return outcome
            outcome["refused"] = True
    rerun = job.rerun(directory)
    if rerun.returncode != 0:
        outcome["lost"] = f"rerun failed: {rerun.stderr.strip()[-300:]}"
        return outcome
    outcome["resumed"] = "resuming" in rerun.stdout
    if job.result(directory) != reference:
        outcome["lost"] = "the rerun's result differs from the uninterrupted run's"
    return outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "chronos"))
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", default="pack,pretrain,pipeline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="chronos-kill-")
    jobs = {"pack": Pack, "pretrain": Pretrain, "pipeline": Pipeline, "compare": Compare}
    rows, losses = [], 0
    try:
        for name in args.jobs.split(","):
            job = jobs[name](args.binary, work)
            # The kill moments are drawn over the longest of three uninterrupted runs, so that a
            # quick first run (a machine less busy than during the trials) does not leave the end
            # of the job untried; a trial that finished before its kill counts as not interrupted.
            durations, results = [], []
            for attempt in range(3):
                directory = job.fresh(f"{name}-reference")
                started = time.monotonic()
                run = job.chronos(job.args(directory))
                durations.append(time.monotonic() - started)
                assert run.returncode == 0, run.stderr
                results.append(job.result(directory))
            assert all(result == results[0] for result in results), f"{name}: uninterrupted runs differ"
            reference, duration = results[0], max(durations)
            counts = {"interrupted": 0, "refused": 0, "resumed": 0, "lost": 0}
            for index in range(args.trials):
                outcome = trial(job, reference, duration, rng, index)
                counts["interrupted"] += outcome["interrupted"]
                counts["refused"] += outcome["refused"]
                counts["resumed"] += outcome["resumed"]
                if outcome["lost"]:
                    counts["lost"] += 1
                    print(f"{name} trial {index}: {outcome['lost']}", flush=True)
                if (index + 1) % 10 == 0:
                    print(f"… {name}: {index + 1}/{args.trials} trials", file=sys.stderr, flush=True)
            rows.append((name, duration, counts))
            losses += counts["lost"]
        print("\n| job | uninterrupted run (longest of 3) | trials | killed mid-run | clear refusal before the rerun | rerun resumed a snapshot | lost or different |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, duration, counts in rows:
            print(f"| {name} | {duration:.1f} s | {args.trials} | {counts['interrupted']} | {counts['refused']} | {counts['resumed']} | {counts['lost']} |")
        print(f"{sum(args.trials for _ in rows) - losses} passed, {losses} failed")
        return 1 if losses else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
