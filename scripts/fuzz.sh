#!/usr/bin/env bash
# Fuzzes every file format Chronos reads with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz.sh [RUNS] [TARGET…]
#
# RUNS executions per target (default 1000000); targets default to all of: manifest safetensors
# gguf config tokenizer trace predictor jsonl pipeline. Builds `chronos` (release) to make a tiny
# packed model with a trace and predictor files, builds the fuzz driver into .build-fuzz with
# coverage and AddressSanitizer, seeds each target's corpus from the repository's fixtures and
# data, and runs the targets two at a time. Findings (crashes, timeouts, out-of-memory inputs)
# land in .build-fuzz/findings/TARGET/; each must become a regression test. Prints one line per
# target with its executions and findings, and exits non-zero if any target found something.
# Not part of the tests: the manifest target opens a model per input, so a full run takes well
# over an hour on two cores. To reproduce a finding with its allocation stacks:
#   CHRONOS_FUZZ_TARGET=T CHRONOS_FUZZ_MODEL=.build-fuzz/work/model .build-fuzz/release/chronos-fuzz FILE
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-1000000}
shift || true
TARGETS=("$@")
# The slowest (manifest: every input also opens the model's checkpoint) first, so the rest
# run beside it.
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(manifest safetensors gguf config tokenizer trace predictor jsonl pipeline)
WORK=.build-fuzz/work
FINDINGS=.build-fuzz/findings
CLANG_LIB=$(dirname "$(command -v swift)")/../lib/clang
FUZZER_LIB=$(ls "$CLANG_LIB"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -1)

echo "== building chronos and the fuzz driver"
swift build -c release --product chronos >/dev/null
CHRONOS=.build/release/chronos
# libFuzzer's driver without its main (SwiftPM links the executable's own entry point);
# coverage counters and comparison tracing in every module.
CHRONOS_FUZZ=1 swift build -c release --product chronos-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
    -Xlinker "$FUZZER_LIB" -Xlinker -lstdc++ >/dev/null
DRIVER=.build-fuzz/release/chronos-fuzz

echo "== a tiny packed model with a trace and predictor files"
MODEL=$WORK/model
if [ ! -f "$MODEL/intent.safetensors" ]; then
    rm -rf "$WORK" && mkdir -p "$WORK"
    head -40 data/austen/train.jsonl > "$WORK/tiny.jsonl"
    "$CHRONOS" train pretrain --data "$WORK/tiny.jsonl" --out "$MODEL" --steps 2 --backend swift --hidden 32 --layers 2 \
        --heads 2 --kv-heads 1 --head-dim 16 --kv-latent 16 --rope-dim 8 --window 16 --experts 4 --top-k 2 \
        --expert-width 32 --shared-width 32 --lookahead 2 --vocab-size 300 --seq-len 32 --batch 2 --eval-every 0 \
        --eval-sequences 2 --checkpoint-every 0 --warmup 1 >/dev/null
    "$CHRONOS" pack "$MODEL" >/dev/null
    "$CHRONOS" trace --model "$MODEL" --data "$WORK/tiny.jsonl" --out "$WORK/tiny.trace" --seq-len 32 --sequences 8 >/dev/null
    "$CHRONOS" train lookahead --model "$MODEL" --trace "$WORK/tiny.trace" --steps 5 --lookahead 2 >/dev/null
    "$CHRONOS" train intent --model "$MODEL" --trace "$WORK/tiny.trace" --steps 5 --horizon 8 >/dev/null
fi

seed() {  # seed TARGET FILE… — copies the files into the target's seed corpus
    local target=$1
    shift
    mkdir -p "$WORK/seeds/$target"
    for file in "$@"; do cp "$file" "$WORK/seeds/$target/$(echo "$file" | tr '/' '_')"; done
}
rm -rf "$WORK/seeds"
seed safetensors "$MODEL/model.safetensors" "$MODEL/lookahead.safetensors" "$MODEL/expert_cache/cluster_000.ctsr"
seed gguf Tests/Fixtures/gguf/tiny.gguf Tests/Fixtures/gguf/tiny-moe-stacked.gguf Tests/Fixtures/gguf/tiny-moe-per-expert.gguf
seed config "$MODEL/config.json" models/austen-moe/config.json Tests/Fixtures/hf-tiny/*/config.json
seed tokenizer "$MODEL/tokenizer.json"
seed manifest "$MODEL/expert_cache/cluster_manifest.json"
seed trace "$WORK/tiny.trace"
seed predictor "$MODEL/lookahead.safetensors" "$MODEL/intent.safetensors"
head -c 4000 data/wordnet/sft_valid.jsonl > "$WORK/sft.jsonl"
head -c 4000 data/austen/heldout.jsonl > "$WORK/austen.jsonl"
gzip -c "$WORK/sft.jsonl" > "$WORK/sft.jsonl.gz"
seed jsonl "$WORK/sft.jsonl" "$WORK/austen.jsonl" "$WORK/sft.jsonl.gz"
seed pipeline configs/wordnet-pipeline.json

run_target() {  # run_target TARGET — fuzzes it for RUNS executions, keeping findings
    local target=$1 corpus=$WORK/corpus/$1 found=$FINDINGS/$1
    mkdir -p "$corpus" "$found"
    # Leaks are not findings here (the Swift runtime keeps caches for the process's life), and
    # allocations keep no stack (a third of the time otherwise): rerun a finding for its report.
    SWIFT_BACKTRACE=enable=no CHRONOS_FUZZ_TARGET=$target CHRONOS_FUZZ_MODEL=$MODEL \
        ASAN_OPTIONS=detect_leaks=0:malloc_context_size=0 \
        "$DRIVER" -runs="$RUNS" -max_len=65536 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$found/" "$corpus" "$WORK/seeds/$target" >"$WORK/$target.log" 2>&1 || true
    local executions findings
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/$target.log" | grep -o '[0-9]*$' || echo 0)
    findings=$(find "$found" -type f | wc -l)
    echo "$target: $executions executions, $findings findings (log: $WORK/$target.log)"
}

echo "== fuzzing ${TARGETS[*]}, $RUNS executions each, two at a time"
export RUNS WORK FINDINGS MODEL DRIVER
export -f run_target
printf '%s\n' "${TARGETS[@]}" | xargs -P 2 -I '{}' bash -c 'run_target {}' | tee "$WORK/summary.txt"
! grep -qv ' 0 findings' "$WORK/summary.txt"
