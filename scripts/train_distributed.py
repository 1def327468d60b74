#!/usr/bin/env python3
"""Trains a Chronos model exported for transformers with the Chronos loss mix on several processes.

    torchrun --nproc_per_node N scripts/train_distributed.py --model EXPORTED --data TRAIN.jsonl --out OUT \\
        [--steps 50] [--batch 8] [--seq-len 64] [--lr 3e-3] [--warmup 10] [--weight-decay 0.1] [--clip 1.0] \\
        [--seed 0] [--strategy ddp|fsdp] [--backend gloo|nccl] [--save-every N] [--log-every 1] \\
        [--lambda-balance X] [--lambda-temporal X] [--lambda-lookahead X] [--fallback-mask-prob X]
    python3 scripts/train_distributed.py …                    # one process, no torchrun
    torchrun --nproc_per_node 2 scripts/train_distributed.py --model EXPORTED --data TRAIN.jsonl --check-gradients

EXPORTED is what `chronos export DIR --to transformers --out EXPORTED` writes (config.json with its `auto_map`,
model.safetensors, modeling_chronos.py, tokenizer.json). Needs torch, transformers>=5 and tokenizers.

What one run does, following `chronos train pretrain`:

- Data: every `{"text": …}` line of the JSONL (empty texts left out, blank lines passed over, any other malformed
  line an error naming file and line) is tokenised with EXPORTED/tokenizer.json (no added special tokens, and a
  special token's spelling inside a text is ordinary text), each document followed by `<|endoftext|>`, all
  concatenated. Window i covers ids i·L ..< i·L + L + 1 (L = --seq-len). Each epoch visits the windows in the order
  of Chronos's PretrainingBatches (SplitMix64 and Fisher–Yates seeded by --seed and the epoch; a batch left over
  at an epoch's end is not used); every rank computes the same order and rank r takes the r-th contiguous share of
  each step's --batch windows.
- Loss: the model's own `forward(window, labels=window)`. The model shifts the labels inside, so the cross-entropy
  is the mean over the L next-token targets of every window; the routing terms (balance, temporal, lookahead, each
  per sequence and averaged over the batch) cover the L + 1 positions run. Both are means over equal-sized
  sequences, so averaging the ranks' gradients gives exactly the gradient of the whole batch. The anchor term needs
  reference router probabilities, which this script does not compute: it is 0 (a warning says so when the config's
  lambda_anchor is not).
- Optimiser: AdamW (β 0.9 / 0.95, ε 1e-8; weight decay on every parameter except norms, biases and the embedding,
  which the LM head shares, as Chronos's AdamW), linear warmup to --lr then a cosine to 10 % of it at --steps,
  global gradient-norm clipping (--clip 0: off). Training runs in float32.
- Strategies: `ddp` (DistributedDataParallel with find_unused_parameters, as a rank whose tokens skip an expert has
  no gradient for it) and `fsdp` (torch.distributed.fsdp.fully_shard per decoder layer and once over the whole
  model, unused parameters reduce-scattered as zeros so the ranks' collectives match). The backend is gloo on the
  CPU, or nccl on one GPU per rank (--backend nccl, when CUDA is available).
- Output: rank 0 prints one line per --log-every steps (loss, each term, learning rate, gradient norm, tokens/s;
  the values are means over all ranks) and a final JSON line {"steps", "first_loss", "last_loss", "world_size",
  "strategy", "out"}. OUT (which must not exist) then holds the model in the transformers layout: save_pretrained
  (safetensors, float32; the tied LM head left to the embedding), config.json with `auto_map`, `layer_types` in
  transformers' spelling (which Chronos reads) and any λ or fallback probability given on the command line, modeling_chronos.py, the
  tokenizer files and any lookahead.safetensors / intent.safetensors copied from EXPORTED unchanged, and
  trainer_state.json (step, losses, settings). Every save is written to a folder beside OUT and renamed into place,
  so OUT is always a whole checkpoint; --save-every N saves every N steps as well as at the end.

--check-gradients trains nothing: with fallback masking off, each rank runs forward and backward on its share of
the first step's batch through the chosen strategy and, beside it, a plain copy of the model on the whole batch, and
compares every parameter's gradient. It prints the largest absolute difference and a JSON line, and exits 1 when it
is above the tolerance (1e-5 × max(1, largest |gradient|)).

Checked on 2 CPU cores (torch 2.13, transformers 5.25, gloo, 2 processes; nccl not run) with a 2-layer model
(hidden 64, 4 experts top-2 and one shared, models/austen-moe's tokenizer of 6400 tokens) on the first 400 lines
of data/austen/train.jsonl:
- 50 steps of 8 × 64 tokens take the loss from 8.944 to 6.652 under ddp (21 s in all, 7 s of it training) and to
  6.652 under fsdp (28 s, 13 s training);
- --check-gradients passes under both strategies, the largest difference 7.8e-9 (gradients up to 5.8e-2); with
  16 experts and 2 × 4 tokens, where each rank leaves experts unused, 2.2e-7 (ddp) and 1.3e-7 (fsdp); it fails,
  at 4.7e-2, when one rank is given other windows. Without find_unused_parameters ddp stops at the second step,
  and without the unused parameters' reduce-scatter fsdp's collectives break;
- OUT, saved under either strategy, loads with AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True),
  its LM head tied, and gives exactly the logits of the model as trained.
"""
import argparse
import copy
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

END_OF_TEXT = "<|endoftext|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
SIDE_FILES = ("lookahead.safetensors", "intent.safetensors")
AUTO_MAP = {
    "AutoConfig": "modeling_chronos.ChronosConfig",
    "AutoModelForCausalLM": "modeling_chronos.ChronosForCausalLM",
}
LOSS_TERMS = ("ce", "balance", "temporal", "lookahead", "anchor")
LOSS_SETTINGS = ("lambda_balance", "lambda_temporal", "lambda_lookahead", "lambda_anchor", "fallback_mask_prob")
GRADIENT_TOLERANCE = 1e-5
PROGRAM = "train_distributed.py"


class InputError(Exception):
    """A bad argument or input file, reported as one line without a traceback."""


class TrainingFailure(Exception):
    """A run that cannot go on (a loss that is not finite, OUT taken by someone else), reported as one line."""


# ---------------------------------------------------------------------------------------------------------------------
# Arguments


def parse_arguments(argv):
    """The command line, parsed but not yet checked against ranges."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Train an exported Chronos model with the Chronos loss mix under torchrun."
    )
    parser.add_argument("--model", required=True, help="exported Chronos model directory (transformers layout)")
    parser.add_argument("--data", required=True, help='training JSONL, one {"text": …} per line')
    parser.add_argument("--out", help="output directory (must not exist); required unless --check-gradients")
    parser.add_argument("--steps", type=int, default=50, help="optimiser steps (default 50)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step over all ranks (default 8)")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per sequence L (default 64)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--warmup", type=int, default=10, help="linear warmup steps (default 10)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)")
    parser.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip, 0 = off (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order and fallback masks (default 0)")
    parser.add_argument("--strategy", default="ddp", help="ddp or fsdp (default ddp)")
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (CUDA) (default gloo)")
    parser.add_argument("--save-every", type=int, default=0, help="also save every N steps (default 0: at the end)")
    parser.add_argument("--log-every", type=int, default=1, help="print a progress line every N steps (default 1)")
    parser.add_argument("--lambda-balance", type=float, help="weight of the load-balance term (default: config's)")
    parser.add_argument("--lambda-temporal", type=float, help="weight of the temporal term (default: config's)")
    parser.add_argument("--lambda-lookahead", type=float, help="weight of the lookahead term (default: config's)")
    parser.add_argument(
        "--fallback-mask-prob", type=float, help="probability of dropping a routed slot (default: config's)"
    )
    parser.add_argument(
        "--check-gradients", action="store_true", help="compare distributed and single-process gradients, then exit"
    )
    return parser.parse_args(argv)


def check_range(name, value, low, high=None):
    """Raises InputError unless low ≤ value (≤ high)."""
    if math.isnan(value) or value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"in {low}…{high}"
        raise InputError(f"{name} {value} is out of range: it must be {bound}")


def validate(args, world_size):
    """Checks every setting and path that can be checked before the processes meet."""
    check_range("--steps", args.steps, 1, 100_000_000)
    check_range("--batch", args.batch, 1, 65_536)
    if args.batch % world_size != 0:
        raise InputError(f"--batch {args.batch} does not split evenly over the world size {world_size}")
    check_range("--seq-len", args.seq_len, 1, 1_048_576)
    if not args.lr > 0 or args.lr > 10:
        raise InputError(f"--lr {args.lr} is out of range: it must be in (0, 10]")
    check_range("--warmup", args.warmup, 0, 100_000_000)
    check_range("--weight-decay", args.weight_decay, 0, 10)
    check_range("--clip", args.clip, 0)
    check_range("--seed", args.seed, 0, 2**64 - 1)
    check_range("--save-every", args.save_every, 0)
    check_range("--log-every", args.log_every, 1)
    for name in ("lambda_balance", "lambda_temporal", "lambda_lookahead"):
        value = getattr(args, name)
        if value is not None:
            check_range("--" + name.replace("_", "-"), value, 0, 1000)
    if args.fallback_mask_prob is not None:
        check_range("--fallback-mask-prob", args.fallback_mask_prob, 0, 1)
    if args.strategy not in ("ddp", "fsdp"):
        raise InputError(f"--strategy {args.strategy!r} is not one of: ddp, fsdp")
    if args.backend not in ("gloo", "nccl"):
        raise InputError(f"--backend {args.backend!r} is not one of: gloo, nccl")
    if args.backend == "nccl" and not torch.cuda.is_available():
        raise InputError("--backend nccl needs CUDA, which this torch does not see")
    if args.backend == "nccl" and world_size > torch.cuda.device_count():
        raise InputError(f"--backend nccl needs one GPU per rank: {world_size} ranks, {torch.cuda.device_count()} GPUs")
    model = Path(args.model)
    for name in ("config.json", "modeling_chronos.py", "tokenizer.json"):
        if not (model / name).is_file():
            raise InputError(f"--model {model}: no {name} (export it with `chronos export DIR --to transformers`)")
    try:
        config = json.loads((model / "config.json").read_text())
        model_type = config.get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(f"--model {model}: config.json is not a JSON object: {error}") from None
    if model_type != "chronos":
        raise InputError(f"--model {model}: config.json has model_type {model_type!r}, not 'chronos'")
    positions = config.get("max_position_embeddings", 4096)
    if isinstance(positions, int) and args.seq_len + 1 > positions:
        raise InputError(
            f"--seq-len {args.seq_len} is out of range: a window of L + 1 tokens must fit the model's "
            f"max_position_embeddings {positions}"
        )
    if not Path(args.data).is_file():
        raise InputError(f"--data {args.data}: no such file")
    if args.check_gradients:
        return
    if args.out is None:
        raise InputError("--out is required (unless --check-gradients)")
    if os.path.lexists(args.out):
        raise InputError(f"--out {args.out} already exists; give a new directory")


# ---------------------------------------------------------------------------------------------------------------------
# Data


class SplitMix64:
    """Chronos's SplitMix64 generator (ChronosTensor/Random.swift), so orders match the Swift trainer's."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def next(self):
        """The next 64 random bits."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)


def epoch_order(epoch, count, seed):
    """The order in which epoch `epoch` visits `count` windows: PretrainingBatches.order in Chronos."""
    mixer = SplitMix64(seed ^ ((epoch * 0xD1B54A32D192ED03) & SplitMix64.MASK))
    generator = SplitMix64(mixer.next())
    order = list(range(count))
    for i in range(count - 1, 0, -1):
        j = (generator.next() * (i + 1)) >> 64  # a uniform draw from 0…i: the high word of a 64×64-bit product
        order[i], order[j] = order[j], order[i]
    return order


def read_texts(path):
    """The non-empty `text` of every line of a JSONL file, erroring with file:line on a malformed line."""
    texts = []
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InputError(f"{path}:{number}: malformed line: not UTF-8 ({error.reason})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise InputError(f"{path}:{number}: malformed line: {error}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError(f'{path}:{number}: malformed line: not an object with a string "text"')
            if record["text"]:
                texts.append(record["text"])
    if not texts:
        raise InputError(f"{path}: no documents")
    return texts


def token_stream(data_path, tokenizer_path):
    """Every document's ids followed by the end-of-text id, concatenated, as a 1-D int64 tensor."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    end_of_text = tokenizer.token_to_id(END_OF_TEXT)
    if end_of_text is None:
        raise InputError(f"{tokenizer_path}: the tokenizer has no end-of-text token {END_OF_TEXT!r}")
    # Chronos reads a special token's spelling inside a document as ordinary text.
    tokenizer.encode_special_tokens = True
    ids = []
    for encoding in tokenizer.encode_batch(read_texts(data_path), add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(end_of_text)
    return torch.tensor(ids, dtype=torch.int64)


class Windows:
    """The stream cut into windows of L + 1 ids: window i covers ids i·L ..< i·L + L + 1 (PackedSequences)."""

    def __init__(self, stream, length):
        self.stream, self.length = stream, length
        self.count = max(len(stream) - 1, 0) // length

    def batch(self, indices):
        """The windows at `indices` as a [len(indices), L + 1] tensor."""
        return torch.stack([self.stream[i * self.length : i * self.length + self.length + 1] for i in indices])


class BatchOrder:
    """Each step's window indices: epoch after epoch of shuffled orders, a batch left over at an epoch's end unused."""

    def __init__(self, count, batch, seed):
        self.count, self.batch, self.seed = count, batch, seed
        self.epoch, self.index, self.order = 0, 0, epoch_order(0, count, seed)

    def next(self):
        """The next step's `batch` indices, the same on every rank."""
        if self.index + self.batch > self.count:
            self.epoch, self.index = self.epoch + 1, 0
            self.order = epoch_order(self.epoch, self.count, self.seed)
        drawn = self.order[self.index : self.index + self.batch]
        self.index += self.batch
        return drawn


# ---------------------------------------------------------------------------------------------------------------------
# Model, wrapping and optimiser


def load_chronos(model_dir, device):
    """modeling_chronos imported from the exported folder, and its ChronosForCausalLM loaded in float32 on `device`."""
    spec = importlib.util.spec_from_file_location("modeling_chronos", Path(model_dir) / "modeling_chronos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_chronos"] = module
    spec.loader.exec_module(module)
    config = module.ChronosConfig.from_pretrained(model_dir)
    model = module.ChronosForCausalLM.from_pretrained(model_dir, config=config, dtype=torch.float32)
    return module, model.to(device)


def learning_rate(step, peak, warmup, total, floor_fraction=0.1):
    """The rate of 0-based `step`: linear warmup to `peak`, then a cosine to floor_fraction·peak at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = peak * floor_fraction
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def decays(name):
    """Whether AdamW decays the parameter `name`: not norms, biases or embeddings (Chronos's AdamW.decays)."""
    lower = name.lower()
    return not ("norm" in lower or lower.endswith("bias") or "embed" in lower)


def make_optimizer(model, weight_decay, lr):
    """AdamW over the model's (deduplicated) parameters, weight decay only where `decays`."""
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if decays(n)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def wrap(model, strategy, device):
    """The model under DistributedDataParallel or fully_shard (the latter shards `model` in place)."""
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        # Experts that no token of a rank's share selects take no part in its backward pass.
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
    from torch.distributed.fsdp import fully_shard

    # The layers return routing views next to their outputs; nothing here modifies them in place.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    # A parameter unused on one rank still joins the reduce-scatter (as zeros), so every rank's buffers match.
    model.set_reduce_scatter_unused_params(True)
    return model


def unwrapped(wrapped):
    """The ChronosForCausalLM inside `wrapped`."""
    return wrapped.module if hasattr(wrapped, "module") else wrapped


def full_gradient(parameter):
    """A parameter's whole gradient (gathered when sharded), zeros where it has none."""
    gradient = parameter.grad
    if gradient is None:
        return torch.zeros(parameter.shape, dtype=parameter.dtype, device=parameter.device)
    if hasattr(gradient, "full_tensor"):
        gradient = gradient.full_tensor()
    return gradient


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints


def fsync_directory(directory):
    """Flushes a directory's entries to disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(directory):
    """Flushes every file under `directory` and the directory itself to disk."""
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())
    fsync_directory(directory)


def model_to_save(wrapped, module, strategy):
    """A ChronosForCausalLM holding the full trained weights on rank 0 (None elsewhere); a collective under fsdp."""
    if strategy == "ddp":
        return unwrapped(wrapped) if dist.get_rank() == 0 else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    config = copy.deepcopy(wrapped.config)
    with torch.device("meta"):
        model = module.ChronosForCausalLM(config)
    if config.tie_word_embeddings:
        head, embedding = state.get("lm_head.weight"), state["model.embed_tokens.weight"]
        if head is not None and not torch.equal(head, embedding):
            raise RuntimeError("the gathered LM head differs from the embedding it is tied to")
        state.pop("lm_head.weight", None)
    model.load_state_dict(state, assign=True, strict=not config.tie_word_embeddings)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    left_on_meta = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if left_on_meta:
        raise RuntimeError(f"the gathered state dict does not fill {left_on_meta}")
    return model


def check_saved_config(directory):
    """Raises unless the saved config.json has `layer_types` that Chronos reads and the `auto_map` entries."""
    saved = json.loads((Path(directory) / "config.json").read_text())
    kinds = saved.get("layer_types")
    if not isinstance(kinds, list) or any(kind not in ("full_attention", "sliding_attention") for kind in kinds):
        raise RuntimeError(f"the saved config.json has layer_types {kinds!r}, not 'full_attention' / 'sliding_attention'")
    missing = {k: v for k, v in AUTO_MAP.items() if saved.get("auto_map", {}).get(k) != v}
    if missing:
        raise RuntimeError(f"the saved config.json's auto_map lacks {missing}")


def save_checkpoint(wrapped, module, strategy, model_dir, out, state, replaces):
    """Writes OUT in the transformers layout on rank 0: into a folder beside OUT, then renamed over it.

    `replaces` says that OUT, where it exists, is this run's previous save; otherwise an OUT that appeared since the
    start is left alone and the checkpoint stays in its staging folder.
    """
    model = model_to_save(wrapped, module, strategy)
    if dist.get_rank() == 0:
        out = Path(out).absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; OUT is an ordinary one
            model.config.auto_map = {**(getattr(model.config, "auto_map", None) or {}), **AUTO_MAP}
            model.save_pretrained(staging)
            for name in ("modeling_chronos.py", *TOKENIZER_FILES, *SIDE_FILES):
                if (Path(model_dir) / name).is_file():
                    shutil.copyfile(Path(model_dir) / name, staging / name)
            (staging / "trainer_state.json").write_text(json.dumps(state) + "\n")
            check_saved_config(staging)
            fsync_tree(staging)
            previous = None
            if os.path.lexists(out) and not replaces:
                raise TrainingFailure(f"{out} appeared during the run; this checkpoint is in {staging}")
            if out.exists():
                previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".previous", dir=out.parent))
                out.rename(previous / "checkpoint")
            staging.rename(out)
            fsync_directory(out.parent)
            if previous is not None:
                shutil.rmtree(previous)
        except TrainingFailure:
            raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    dist.barrier()


# ---------------------------------------------------------------------------------------------------------------------
# Steps


def global_means(values, device):
    """The mean of each of `values` over all ranks."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).tolist()


def local_windows(windows, indices, rank, world_size, device):
    """Rank `rank`'s contiguous share of the step's windows."""
    share = len(indices) // world_size
    return windows.batch(indices[rank * share : (rank + 1) * share]).to(device)


def check_gradients(args, module, model, windows, device):
    """Compares the strategy's averaged gradients with one plain process's over the whole first batch; 0 or 1."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model.config.fallback_mask_prob = 0.0
    model.train()
    plain = copy.deepcopy(model)
    wrapped = wrap(model, args.strategy, device)
    indices = BatchOrder(windows.count, args.batch, args.seed).next()

    mine = local_windows(windows, indices, rank, world_size, device)
    local_loss = wrapped(mine, labels=mine).loss
    local_loss.backward()
    whole = windows.batch(indices).to(device)
    plain_loss = plain(whole, labels=whole).loss
    plain_loss.backward()

    distributed = dict(unwrapped(wrapped).named_parameters())
    differences, largest = {}, 0.0
    for name, parameter in plain.named_parameters():
        reference = full_gradient(parameter)
        differences[name] = (full_gradient(distributed[name]) - reference).abs().max().item()
        largest = max(largest, reference.abs().max().item())
    worst = max(differences, key=differences.get)
    summary = torch.tensor([differences[worst], largest], dtype=torch.float64, device=device)
    dist.all_reduce(summary, op=dist.ReduceOp.MAX)
    difference, largest = summary.tolist()
    (mean_loss,) = global_means([local_loss.item()], device)
    tolerance = GRADIENT_TOLERANCE * max(1.0, largest)
    passed = difference <= tolerance
    if rank == 0:
        print(
            f"gradient check ({args.strategy}, {world_size} ranks, {args.batch} × {args.seq_len} tokens, "
            f"{len(differences)} parameters): max |g_distributed − g_single| = {difference:.3e} (rank 0's largest "
            f"at {worst}), largest |g| {largest:.3e}, "
            f"tolerance {tolerance:.1e}; loss {mean_loss:.6f} (mean over ranks) vs {plain_loss.item():.6f} (one "
            f"process): {'pass' if passed else 'FAIL'}",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "check": "gradients",
                    "passed": passed,
                    "max_abs_difference": difference,
                    "largest_abs_gradient": largest,
                    "tolerance": tolerance,
                    "world_size": world_size,
                    "strategy": args.strategy,
                }
            ),
            flush=True,
        )
    return 0 if passed else 1


def train(args, module, model, windows, device):
    """Runs --steps optimiser steps, saving to --out; returns the exit status."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    # The fallback masks differ between ranks, as they differ between Chronos's sequences.
    torch.manual_seed(SplitMix64(args.seed ^ 0x5EED ^ (rank * 0x9E3779B97F4A7C15)).next())
    model.train()
    wrapped = wrap(model, args.strategy, device)
    optimizer = make_optimizer(wrapped, args.weight_decay, args.lr)
    parameters = [p for p in wrapped.parameters() if p.requires_grad]
    batches = BatchOrder(windows.count, args.batch, args.seed)
    tokens_per_step = args.batch * args.seq_len
    if rank == 0:
        print(
            f"{windows.count} windows of {args.seq_len} + 1 tokens; {args.steps} steps of {args.batch} sequences "
            f"over {world_size} rank(s), {args.strategy} on {args.backend}",
            flush=True,
        )
    losses, saved, started = [], False, time.perf_counter()

    def training_state(step):
        """trainer_state.json of a save after `step` steps."""
        return {
            "step": step,
            "losses": losses,
            "world_size": world_size,
            "strategy": args.strategy,
            "model": str(args.model),
            "data": str(args.data),
            "settings": {
                k: getattr(args, k)
                for k in ("steps", "batch", "seq_len", "lr", "warmup", "weight_decay", "clip", "seed")
            },
            "loss_settings": {k: getattr(model.config, k) for k in LOSS_SETTINGS},
        }

    for step in range(args.steps):
        step_started = time.perf_counter()
        ids = local_windows(windows, batches.next(), rank, world_size, device)
        rate = learning_rate(step, args.lr, args.warmup, args.steps)
        for group in optimizer.param_groups:
            group["lr"] = rate
        output = wrapped(ids, labels=ids)
        output.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, args.clip if args.clip > 0 else math.inf)
        norm = (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        means = global_means([output.loss.item()] + [output.loss_terms[t].item() for t in LOSS_TERMS], device)
        elapsed = time.perf_counter() - step_started
        if not all(math.isfinite(value) for value in means):
            raise TrainingFailure(f"step {step + 1}: the loss is not finite ({means[0]}); nothing saved at this step")
        losses.append(means[0])
        if rank == 0 and ((step + 1) % args.log_every == 0 or step == 0 or step + 1 == args.steps):
            terms = "  ".join(f"{t} {v:.4f}" for t, v in zip(LOSS_TERMS, means[1:]))
            print(
                f"step {step + 1}/{args.steps}  loss {means[0]:.4f}  {terms}  lr {rate:.3e}  "
                f"grad_norm {norm:.3f}  {tokens_per_step / elapsed:.0f} tokens/s",
                flush=True,
            )
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save_checkpoint(wrapped, module, args.strategy, args.model, args.out, training_state(step + 1), saved)
            saved = True
            if rank == 0:
                print(f"saved step {step + 1} to {args.out}", flush=True)
    trained = time.perf_counter() - started
    save_checkpoint(wrapped, module, args.strategy, args.model, args.out, training_state(args.steps), saved)
    if rank == 0:
        print(f"{args.steps} steps in {trained:.1f} s; saved to {args.out}", flush=True)
        summary = {
            "steps": args.steps,
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "world_size": world_size,
            "strategy": args.strategy,
            "out": str(Path(args.out).absolute()),
        }
        print(json.dumps(summary), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------------


def start_processes(backend):
    """Joins torchrun's process group, or makes a group of one when run without torchrun; the rank's device."""
    if "WORLD_SIZE" in os.environ:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    else:
        device = torch.device("cuda", 0) if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return device


def apply_loss_settings(args, config):
    """Puts the λ and fallback probability given on the command line into the model's config."""
    for name in ("lambda_balance", "lambda_temporal", "lambda_lookahead", "fallback_mask_prob"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if dist.get_rank() == 0 and config.lambda_anchor > 0:
        print(
            f"warning: the config's lambda_anchor is {config.lambda_anchor}, but this script passes no reference "
            "router probabilities, so the anchor term is 0",
            file=sys.stderr,
            flush=True,
        )


def main(argv=None):
    """Checks the inputs, joins the process group, then trains or checks gradients; the exit status."""
    args = parse_arguments(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    try:
        validate(args, world_size)
        # Every rank reads the same data; only rank 0 reports a problem with it.
        windows = Windows(token_stream(args.data, Path(args.model) / "tokenizer.json"), args.seq_len)
        if windows.count < args.batch:
            raise InputError(
                f"--data {args.data} packs into {windows.count} windows of {args.seq_len} + 1 tokens, "
                f"fewer than one batch of {args.batch}"
            )
    except InputError as error:
        if rank == 0:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = start_processes(args.backend)
    try:
        module, model = load_chronos(args.model, device)
        apply_loss_settings(args, model.config)
        if args.check_gradients:
            return check_gradients(args, module, model, windows, device)
        return train(args, module, model, windows, device)
    except TrainingFailure as error:
        print(f"{PROGRAM}: error (rank {dist.get_rank()}): {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
