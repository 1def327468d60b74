"""Prompt processing and decode speed of Chronos beside llama.cpp on the same synthetic Mixtral.

    python3 scripts/compare_llama_cpp.py [--rounds 3] [--prompt 128] [--tokens 64] [--dtypes bf16,f32,q4_k_m,q8_0,q4_0]

Needs a release build (`swift build -c release --product chronos`), cmake (`pip install cmake`), a C++ compiler, torch
and numpy. What it does, with a progress line per step:

1. Builds `llama-bench` and `llama-quantize` from the llama.cpp source vendored in the llama-cpp-python source
   distribution on PyPI (version --llama-cpp-python), once, under --work (10-16 minutes on two cores).
2. Writes the synthetic Mixtral of `chronos bench decode` (vocab 32000, hidden 1024, 8 layers,
   8 experts top-2, width 2816) for each weight type and converts it with llama.cpp's own
   `convert_hf_to_gguf.py`. The model has no tokenizer, so the converter is given a placeholder
   SentencePiece vocabulary of the model's size (<unk>, <s>, </s>, the 256 byte tokens, then
   numbered tokens): speed does not depend on the tokens' text. A quantisation recipe among
   --dtypes (q4_k_m, q8_0, q4_0, …) quantises the bf16 model: `chronos quantize` for Chronos,
   llama.cpp's `llama-quantize` on its bf16 GGUF for llama.cpp (the same recipe on the same weights).
   With --same-file, Chronos runs the very GGUF file llama.cpp runs instead of its own directory.
3. Runs `chronos bench decode` and `llama-bench` on each model in alternation, round after round
   (the order flips every round), with the same threads, prompt length and decode length (llama.cpp
   decodes at a depth of the prompt's length, as Chronos does after its prompt), and prints each
   round's figures and Chronos / llama.cpp ratios, then the median ratio.

The full results go to --work/compare.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command, **kwargs):
    return subprocess.run(command, check=True, text=True, **kwargs)


def llama_cpp_source(work: Path, version: str) -> Path:
    """The vendored llama.cpp tree of llama-cpp-python `version`, downloaded with pip and unpacked once."""
    tree = work / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if tree.exists():
        return tree
    log(f"downloading the llama-cpp-python {version} source distribution")
    run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-binary", "llama-cpp-python", "--no-deps",
         "-d", str(work)], stdout=subprocess.DEVNULL)
    archive = work / f"llama_cpp_python-{version}.tar.gz"
    log(f"unpacking {archive}")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return tree


def build_llama_cpp(tree: Path) -> tuple[Path, Path]:
    """llama-bench and llama-quantize, built once."""
    bench, quantize = tree / "build" / "bin" / "llama-bench", tree / "build" / "bin" / "llama-quantize"
    if bench.exists() and quantize.exists():
        return bench, quantize
    log("configuring llama.cpp (native instruction sets)")
    run(["cmake", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"], cwd=tree, stdout=subprocess.DEVNULL)
    log(f"building llama-bench and llama-quantize with {os.cpu_count()} jobs (10-16 minutes on two cores)")
    run(["cmake", "--build", "build", "-j", str(os.cpu_count()), "--target", "llama-bench", "llama-quantize"], cwd=tree,
        stdout=subprocess.DEVNULL)
    return bench, quantize


CONVERT = """
import sys
sys.path.insert(0, {tree!r})
sys.path.insert(1, {tree!r} + "/gguf-py")
import gguf
from conversion.llama import LlamaModel

def placeholder_vocab(self):
    n = self.hparams["vocab_size"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{{b:02X}}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    tokens += [f"<t{{i}}>" for i in range(len(tokens), n)]
    types += [gguf.TokenType.NORMAL] * (n - len(types))
    self.gguf_writer.add_tokenizer_model("llama")
    self.gguf_writer.add_tokenizer_pre("default")
    self.gguf_writer.add_token_list(tokens)
    self.gguf_writer.add_token_scores([0.0] * n)
    self.gguf_writer.add_token_types(types)
    self.gguf_writer.add_bos_token_id(1)
    self.gguf_writer.add_eos_token_id(2)

LlamaModel.set_vocab = placeholder_vocab
import convert_hf_to_gguf
sys.argv = ["convert_hf_to_gguf.py", {model!r}, "--outtype", {dtype!r}, "--outfile", {out!r}]
convert_hf_to_gguf.main()
"""


FLOAT_TYPES = ("bf16", "f16", "f32")


def prepare_model(chronos: Path, tree: Path, quantize: Path, work: Path, dtype: str) -> tuple[Path, Path]:
    """The synthetic Mixtral in `dtype` for each engine. A recipe (q4_k_m, q8_0, …) quantises the
    bf16 model: `chronos quantize` for Chronos, llama.cpp's own llama-quantize on its bf16 GGUF."""
    directory = work / f"mixtral-{dtype}"
    gguf_file = work / f"mixtral-{dtype}.gguf"
    if dtype not in FLOAT_TYPES:
        source, source_gguf = prepare_model(chronos, tree, quantize, work, "bf16")
        if not (directory / "model.safetensors").exists():
            log(f"quantising {source} to {dtype} with chronos quantize")
            run([str(chronos), "quantize", str(source), "--type", dtype, "--out", str(directory)], stdout=subprocess.DEVNULL)
        if not gguf_file.exists():
            log(f"quantising {source_gguf} to {dtype} with llama-quantize")
            run([str(quantize), str(source_gguf), str(gguf_file), dtype.upper()], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        return directory, gguf_file
    if not (directory / "model.safetensors").exists():
        log(f"writing the synthetic Mixtral in {dtype} to {directory}")
        run([str(chronos), "bench", "decode", "--synthetic-directory", str(directory), "--dtype", dtype,
             "--prompt-tokens", "1", "--tokens", "1", "--json"], stdout=subprocess.DEVNULL)
    if not gguf_file.exists():
        log(f"converting {directory} to {gguf_file} with llama.cpp's convert_hf_to_gguf.py")
        script = CONVERT.format(tree=str(tree), model=str(directory), dtype=dtype, out=str(gguf_file))
        run([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return directory, gguf_file


def chronos_round(chronos: Path, directory: Path, prompt: int, tokens: int) -> dict:
    out = run([str(chronos), "bench", "decode", "--model", str(directory), "--prompt-tokens", str(prompt),
               "--tokens", str(tokens), "--json"], stdout=subprocess.PIPE).stdout
    report = json.loads(out)
    values = {m["name"]: m["value"] for m in report["measurements"]}
    return {"prefill": values["prefill"], "decode": values["decode (all resident)"], "read GB/s": values["streaming read"],
            "isa": report["context"].get("isa", "haswell build")}


def llama_round(binary: Path, gguf_file: Path, prompt: int, tokens: int, threads: int) -> dict:
    """The prompt from an empty context, then decoding after `prompt` tokens of context (`-d`), as
    `chronos bench decode` decodes after its prompt."""
    def bench(arguments):
        out = run([str(binary), "-m", str(gguf_file), "-t", str(threads), "-r", "1", "-o", "json"] + arguments,
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        return json.loads(out)[0]
    prefill = bench(["-p", str(prompt), "-n", "0"])
    decode = bench(["-p", "0", "-n", str(tokens), "-d", str(prompt)])
    return {"prefill": prefill["avg_ts"], "decode": decode["avg_ts"], "build": prefill.get("build_commit"),
            "cpu": prefill.get("cpu_info")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--dtypes", default="bf16,f32")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", default="/tmp/chronos-llama-cpp")
    parser.add_argument("--llama-cpp-python", default="0.3.36")
    parser.add_argument("--chronos", default=str(ROOT / ".build" / "release" / "chronos"))
    parser.add_argument("--same-file", action="store_true", help="Chronos runs llama.cpp's GGUF file, not its own directory")
    args = parser.parse_args()
    if args.rounds < 1 or args.prompt < 1 or args.tokens < 1 or args.threads < 1:
        parser.error("--rounds, --prompt, --tokens and --threads must be positive")
    chronos = Path(args.chronos)
    if not chronos.exists():
        parser.error(f"{chronos} does not exist: run `swift build -c release --product chronos` first")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tree = llama_cpp_source(work, args.llama_cpp_python)
    binary, quantize = build_llama_cpp(tree)
    dtypes = args.dtypes.split(",")
    models = {dtype: prepare_model(chronos, tree, quantize, work, dtype) for dtype in dtypes}
    env_threads = os.environ.get("CHRONOS_THREADS")
    if env_threads and int(env_threads) != args.threads:
        parser.error(f"CHRONOS_THREADS={env_threads} differs from --threads {args.threads}")
    os.environ["CHRONOS_THREADS"] = str(args.threads)

    results = []
    for round_index in range(1, args.rounds + 1):
        for dtype in dtypes:
            directory, gguf_file = models[dtype]
            order = ["chronos", "llama.cpp"] if round_index % 2 == 1 else ["llama.cpp", "chronos"]
            row = {"round": round_index, "dtype": dtype}
            for engine in order:
                log(f"round {round_index}/{args.rounds}, {dtype}: {engine}")
                if engine == "chronos":
                    source = gguf_file if args.same_file else directory
                    row["chronos"] = chronos_round(chronos, source, args.prompt, args.tokens)
                else:
                    row["llama.cpp"] = llama_round(binary, gguf_file, args.prompt, args.tokens, args.threads)
            for phase in ("prefill", "decode"):
                row[f"{phase} ratio"] = row["chronos"][phase] / row["llama.cpp"][phase]
            results.append(row)
            print(f"round {round_index} {dtype:6}  prompt {args.prompt}: chronos {row['chronos']['prefill']:7.1f}  "
                  f"llama.cpp {row['llama.cpp']['prefill']:7.1f}  ratio {row['prefill ratio']:.2f}   "
                  f"decode: chronos {row['chronos']['decode']:6.1f}  llama.cpp {row['llama.cpp']['decode']:6.1f}  "
                  f"ratio {row['decode ratio']:.2f}   streaming read {row['chronos']['read GB/s']:.0f} GB/s", flush=True)

    print(f"\nmedian of per-round ratios (Chronos / llama.cpp{', both on the GGUF file' if args.same_file else ''}), "
          f"{args.threads} threads, "
          f"Chronos instruction set {results[0]['chronos']['isa']}, llama.cpp {results[0]['llama.cpp']['build']} "
          f"(llama-cpp-python {args.llama_cpp_python}):")
    summary = {}
    for dtype in dtypes:
        rows = [r for r in results if r["dtype"] == dtype]
        summary[dtype] = {phase: statistics.median(r[f"{phase} ratio"] for r in rows) for phase in ("prefill", "decode")}
        print(f"  {dtype:6} prompt of {args.prompt} tokens: {summary[dtype]['prefill']:.2f}   "
              f"decode of {args.tokens} tokens: {summary[dtype]['decode']:.2f}")
    (work / "compare.json").write_text(json.dumps({"arguments": vars(args), "rounds": results, "median ratios": summary},
                                                  indent=2))


if __name__ == "__main__":
    main()
