"""Perplexity of one GGUF file under Chronos and under llama.cpp's llama-perplexity, on Austen's held-out text.

    python3 scripts/compare_perplexity.py [--steps 120] [--ctx 256] [--chunks 24] [--types f32,q8_0,q4_k_m]

Needs a release build (`swift build -c release --product chronos`), torch, transformers, tokenizers, numpy, cmake and a
C++ compiler. What it does, with a progress line per step:

1. Trains a small Mixtral (transformers' MixtralForCausalLM: vocab 6400, the shipped model's tokenizer, hidden 128,
   4 layers, 4 heads / 2 kv heads, 8 experts top-2, expert width 256) on data/austen/train.jsonl for --steps steps of
   8 sequences of 256 tokens (AdamW, learning rate 3e-3 with a cosine decay), once, under --work.
2. Converts it with llama.cpp's own convert_hf_to_gguf.py (f32; the tokenizer's pre-tokeniser is GPT-2's, which the
   converter is told, since it recognises only hub tokenizers by their hash) and quantises the other --types with
   llama-quantize (built from the llama.cpp source vendored in the llama-cpp-python source distribution).
3. Writes the held-out documents as one text file (joined by blank lines) and runs `chronos eval --text` and
   `llama-perplexity` on each file with the same context, chunks and threads, and prints both perplexities and their
   ratio.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from compare_llama_cpp import build_llama_cpp, llama_cpp_source, log, run  # noqa: E402

CONVERT = """
import sys
sys.path.insert(0, {tree!r})
sys.path.insert(1, {tree!r} + "/gguf-py")
import convert_hf_to_gguf
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = ["convert_hf_to_gguf.py", {model!r}, "--outtype", "f32", "--outfile", {out!r}]
convert_hf_to_gguf.main()
"""


def train(directory: Path, steps: int):
    import torch
    from tokenizers import Tokenizer
    from transformers import MixtralConfig, MixtralForCausalLM
    tokenizer = Tokenizer.from_file(str(ROOT / "models" / "austen-moe" / "tokenizer.json"))
    texts = [json.loads(line)["text"] for line in (ROOT / "data" / "austen" / "train.jsonl").read_text().splitlines()]
    ids = [i for text in texts for i in tokenizer.encode(text).ids + [tokenizer.token_to_id("<|endoftext|>")]]
    data = torch.tensor(ids)
    config = MixtralConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=128, intermediate_size=256,
                           num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, num_local_experts=8,
                           num_experts_per_tok=2, max_position_embeddings=1024, tie_word_embeddings=False,
                           bos_token_id=tokenizer.token_to_id("<|endoftext|>"),
                           eos_token_id=tokenizer.token_to_id("<|endoftext|>"))
    torch.manual_seed(0)
    model = MixtralForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(data) - 257, (8,), generator=generator)
        batch = torch.stack([data[s:s + 257] for s in starts])
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0 or step == steps:
            log(f"training step {step}/{steps}: loss {loss.item():.3f}")
    model.save_pretrained(directory, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ROOT / "models" / "austen-moe" / name, directory / name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--ctx", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=24)
    parser.add_argument("--types", default="f32,q8_0,q4_k_m")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", default="/tmp/chronos-llama-cpp")
    parser.add_argument("--llama-cpp-python", default="0.3.36")
    parser.add_argument("--chronos", default=str(ROOT / ".build" / "release" / "chronos"))
    args = parser.parse_args()
    if min(args.steps, args.ctx, args.chunks, args.threads) < 1:
        parser.error("--steps, --ctx, --chunks and --threads must be positive")
    chronos = Path(args.chronos)
    if not chronos.exists():
        parser.error(f"{chronos} does not exist: run `swift build -c release --product chronos` first")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tree = llama_cpp_source(work, args.llama_cpp_python)
    _, quantize = build_llama_cpp(tree)
    perplexity = tree / "build" / "bin" / "llama-perplexity"
    if not perplexity.exists():
        log("building llama-perplexity")
        run(["cmake", "--build", "build", "-j", str(os.cpu_count()), "--target", "llama-perplexity"], cwd=tree,
            stdout=subprocess.DEVNULL)

    model = work / f"austen-mixtral-{args.steps}"
    if not (model / "model.safetensors").exists():
        log(f"training a small Mixtral on Austen for {args.steps} steps into {model}")
        train(model, args.steps)
    files = {"f32": work / f"austen-mixtral-{args.steps}-f32.gguf"}
    if not files["f32"].exists():
        log("converting it with llama.cpp's convert_hf_to_gguf.py")
        run([sys.executable, "-c", CONVERT.format(tree=str(tree), model=str(model), out=str(files["f32"]))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for kind in args.types.split(","):
        if kind == "f32":
            continue
        files[kind] = work / f"austen-mixtral-{args.steps}-{kind}.gguf"
        if not files[kind].exists():
            log(f"quantising to {kind} with llama-quantize")
            run([str(quantize), str(files["f32"]), str(files[kind]), kind.upper()], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)

    text = work / "austen-heldout.txt"
    documents = [json.loads(line)["text"] for line in (ROOT / "data" / "austen" / "heldout.jsonl").read_text().splitlines()]
    text.write_text("\n\n".join(documents))

    print(f"perplexity of Austen's held-out text, {args.chunks} chunks of {args.ctx} tokens, {args.threads} threads:")
    for kind in args.types.split(","):
        gguf_file = files[kind]
        log(f"{kind}: chronos eval --text")
        env = dict(os.environ, CHRONOS_THREADS=str(args.threads))
        # Chronos puts BOS first where the file says llama.cpp does.
        sys.path.insert(0, str(tree / "gguf-py"))
        import gguf
        field = gguf.GGUFReader(str(gguf_file)).fields.get("tokenizer.ggml.add_bos_token")
        bos = ["--bos"] if field is not None and bool(field.contents()) else []
        ours = json.loads(run([str(chronos), "eval", "--model", str(gguf_file), "--text", str(text), "--ctx", str(args.ctx),
                               "--chunks", str(args.chunks), "--json"] + bos, stdout=subprocess.PIPE, env=env).stdout)
        log(f"{kind}: llama-perplexity")
        # llama.cpp logs from a thread of its own and sometimes exits before the last lines are
        # out; such a run is repeated.
        for _ in range(5):
            output = run([str(perplexity), "-m", str(gguf_file), "-f", str(text), "-c", str(args.ctx), "-b", str(args.ctx),
                          "--chunks", str(args.chunks), "-t", str(args.threads)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
            match = re.search(r"Final estimate: PPL = ([0-9.]+)", output)
            if match:
                break
        else:
            sys.exit(f"llama-perplexity printed no final estimate in 5 runs:\n{output[-2000:]}")
        theirs = float(match.group(1))
        print(f"  {kind:7} chronos {ours['perplexity']:9.4f}   llama.cpp {theirs:9.4f}   ratio {ours['perplexity'] / theirs:.4f}"
              f"   ({ours['scored_tokens']:.0f} tokens scored)", flush=True)


if __name__ == "__main__":
    main()
