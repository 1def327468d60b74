#!/usr/bin/env python3
"""Writes Tests/Fixtures/quant: what GGML's own code makes of seeded data in its block formats,
for QuantizationTests to compare Chronos's quantisers and dequantisers with.

- dequant_<type>.bin / .f32: random blocks of each of the ten formats (random bytes, each
  half-precision scale set to a finite random value, subnormals included) and the floats
  gguf-py's `gguf.quants.dequantize` gives for them.
- simple_input.f32, simple_<type>.bin: seeded floats (gaussian blocks plus awkward ones: all
  zeros, one huge outlier, constant, negative-only, tiny) and gguf-py's `gguf.quants.quantize`
  bytes for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1.
- k_input.f32, k_importance.f32, k_<type>.bin, k_<type>_importance.bin: rows of 512 floats
  (gaussian and heavy-tailed) quantised to each K format by llama.cpp's own C quantisers
  (`quantize_qN_K` from ggml-quants.c, compiled here with a small driver), without and with
  an importance vector (one weight per column, as llama.cpp's imatrix), and in index.json
  the RMS round-trip error of each.

Needs numpy, gguf (pip install gguf) and a C compiler (`cc`), and llama.cpp's ggml sources:
the llama-cpp-python sdist carries them,

    pip download llama-cpp-python --no-binary :all: --no-deps -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-*.tar.gz -C /tmp/lcp
    python3 scripts/make_quant_fixtures.py /tmp/lcp/llama_cpp_python-*/vendor/llama.cpp

(`pip download` builds the sdist's metadata, which needs its build tools; the tarball it
fetched is all this script uses.)
"""
import importlib.metadata
import json
import pathlib
import subprocess
import sys
import tempfile

import gguf
import numpy as np
from gguf.quants import GGMLQuantizationType as Q

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "quant"
SIMPLE = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q5_0": Q.Q5_0, "q5_1": Q.Q5_1}
K = {"q2_k": Q.Q2_K, "q3_k": Q.Q3_K, "q4_k": Q.Q4_K, "q5_k": Q.Q5_K, "q6_k": Q.Q6_K}
# Byte offsets of each format's half-precision scale fields within a block.
SCALE_FIELDS = {
    "q8_0": [0], "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2],
    "q2_k": [80, 82], "q3_k": [108], "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208],
}
DEQUANT_BLOCKS = {32: 64, 256: 8}
K_ROWS, K_COLUMNS = 16, 512

DRIVER = r"""
// Quantises rows of floats with ggml-quants.c's quantize_qN_K: driver TYPE NROW NCOL IN IMPORTANCE|- OUT
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"
#include "ggml-quants.h"

static const int BYTES[] = {[GGML_TYPE_Q2_K] = 84, [GGML_TYPE_Q3_K] = 110, [GGML_TYPE_Q4_K] = 144,
                            [GGML_TYPE_Q5_K] = 176, [GGML_TYPE_Q6_K] = 210};

// The few ggml.c symbols ggml-quants.c links against.
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: ", file, line);
    va_list args; va_start(args, fmt); vfprintf(stderr, fmt, args); va_end(args);
    abort();
}
size_t ggml_type_size(enum ggml_type type) { return BYTES[type]; }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { return BYTES[type] * (ne / 256); }
const char *ggml_type_name(enum ggml_type type) { (void)type; return "k"; }

static void *slurp(const char *path, size_t bytes) {
    void *data = malloc(bytes);
    FILE *f = fopen(path, "rb");
    if (!f || fread(data, 1, bytes, f) != bytes) { perror(path); exit(1); }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 7) return 2;
    enum ggml_type type = (enum ggml_type)atoi(argv[1]);
    int64_t nrow = atoll(argv[2]), ncol = atoll(argv[3]);
    float *x = slurp(argv[4], sizeof(float) * nrow * ncol);
    float *importance = argv[5][0] == '-' ? NULL : slurp(argv[5], sizeof(float) * ncol);
    size_t bytes = ggml_row_size(type, ncol) * nrow;
    void *out = calloc(1, bytes);
    size_t written = 0;
    switch (type) {
    case GGML_TYPE_Q2_K: written = quantize_q2_K(x, out, nrow, ncol, importance); break;
    case GGML_TYPE_Q3_K: written = quantize_q3_K(x, out, nrow, ncol, importance); break;
    case GGML_TYPE_Q4_K: written = quantize_q4_K(x, out, nrow, ncol, importance); break;
    case GGML_TYPE_Q5_K: written = quantize_q5_K(x, out, nrow, ncol, importance); break;
    case GGML_TYPE_Q6_K: written = quantize_q6_K(x, out, nrow, ncol, importance); break;
    default: return 2;
    }
    if (written != bytes) return 3;
    FILE *f = fopen(argv[6], "wb");
    fwrite(out, 1, bytes, f);
    fclose(f);
    return 0;
}
"""


def build_driver(llama_cpp: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    """Compiles the driver with ggml-quants.c alone (no cmake build of llama.cpp); contraction
    of multiply-adds is off so the floats are those of plain C arithmetic."""
    ggml = llama_cpp / "ggml"
    source = work / "driver.c"
    source.write_text(DRIVER)
    binary = work / "driver"
    subprocess.run(
        ["cc", "-O2", "-std=gnu11", "-ffp-contract=off", "-DNDEBUG", f"-I{ggml / 'include'}", f"-I{ggml / 'src'}",
         str(source), str(ggml / "src" / "ggml-quants.c"), "-lm", "-o", str(binary)],
        check=True)
    return binary


def random_blocks(rng: np.random.Generator, name: str, qtype: Q, count: int) -> np.ndarray:
    """Random bytes with every half-precision scale set to ±2^e, e uniform in [-20, 1]: finite,
    and from fp16's subnormals up to 2, so products stay finite."""
    block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, size=(count, block_bytes), dtype=np.uint8)
    for offset in SCALE_FIELDS[name]:
        scale = rng.choice([-1.0, 1.0], size=count) * np.exp2(rng.uniform(-20, 1, size=count))
        blocks[:, offset:offset + 2] = scale.astype(np.float16).view(np.uint8).reshape(count, 2)
    return blocks


def simple_input(rng: np.random.Generator) -> np.ndarray:
    """Blocks of 32: gaussian at several scales, then the awkward cases."""
    gaussian = [rng.standard_normal(32) * s for s in np.exp2(rng.uniform(-8, 6, size=32))]
    outlier = rng.standard_normal(32)
    outlier[rng.integers(32)] = 1e4
    awkward = [
        np.zeros(32), outlier, np.full(32, 0.7), np.full(32, -3.2), -np.abs(rng.standard_normal(32)),
        np.abs(rng.standard_normal(32)) + 5, np.arange(-16, 16) * 0.25, rng.standard_normal(32) * 1e-30,
        np.where(rng.random(32) < 0.5, 0.0, rng.standard_normal(32)), rng.standard_normal(32) * 6e4,
    ]
    return np.concatenate(gaussian + awkward).astype(np.float32)


def k_input(rng: np.random.Generator) -> np.ndarray:
    """Rows of 512: gaussian at several scales and offsets, heavy-tailed rows, and one whose
    sub-blocks are zero, constant or one-signed."""
    rows = [rng.standard_normal(K_COLUMNS) * s + m for s, m in [(1, 0), (0.02, 0), (3, 0), (0.1, 0.05), (1, -0.5),
                                                                (5e-3, 0), (40, 0), (1, 1), (0.3, 0), (2, 0)]]
    rows += [rng.standard_t(3, K_COLUMNS), rng.standard_t(1.5, K_COLUMNS) * 0.1, rng.laplace(size=K_COLUMNS)]
    spiky = rng.standard_normal(K_COLUMNS)
    spiky[rng.choice(K_COLUMNS, 6, replace=False)] *= 50
    rows.append(spiky)
    rows.append(rng.standard_normal(K_COLUMNS) * np.exp(rng.standard_normal(K_COLUMNS)))
    special = rng.standard_normal(K_COLUMNS)
    special[0:32] = 0
    special[32:48] = 1.5
    special[64:96] = -np.abs(special[64:96])
    special[128:160] = np.abs(special[128:160]) + 2
    special[256:272] = -0.25
    special[300:301] = 1e3
    rows.append(special)
    assert len(rows) == K_ROWS
    return np.stack(rows).astype(np.float32)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    llama_cpp = pathlib.Path(sys.argv[1])
    ROOT.mkdir(parents=True, exist_ok=True)
    for old in ROOT.iterdir():
        old.unlink()
    rng = np.random.default_rng(20240611)
    index: dict = {
        "gguf": importlib.metadata.version("gguf"),
        # The sdist the ggml sources came from, when they came from llama-cpp-python's.
        "llama_cpp": llama_cpp.resolve().parent.parent.name if llama_cpp.parent.name == "vendor" else llama_cpp.name,
        "dequant": {}, "simple": {}, "k": {},
    }

    for name, qtype in {**SIMPLE, **K}.items():
        block_elements = gguf.GGML_QUANT_SIZES[qtype][0]
        count = DEQUANT_BLOCKS[block_elements]
        blocks = random_blocks(rng, name, qtype, count)
        values = gguf.quants.dequantize(blocks.reshape(-1), qtype).astype(np.float32)
        assert np.isfinite(values).all(), name
        blocks.tofile(ROOT / f"dequant_{name}.bin")
        values.tofile(ROOT / f"dequant_{name}.f32")
        index["dequant"][name] = {"blocks": count}

    x = simple_input(rng)
    x.tofile(ROOT / "simple_input.f32")
    index["simple"]["values"] = int(x.size)
    for name, qtype in SIMPLE.items():
        gguf.quants.quantize(x.reshape(-1, 32), qtype).tofile(ROOT / f"simple_{name}.bin")

    x = k_input(rng)
    importance = np.exp(rng.standard_normal(K_COLUMNS) * 1.5).astype(np.float32)
    x.tofile(ROOT / "k_input.f32")
    importance.tofile(ROOT / "k_importance.f32")
    index["k"] = {"rows": K_ROWS, "columns": K_COLUMNS, "rms": {}}
    with tempfile.TemporaryDirectory() as scratch:
        work = pathlib.Path(scratch)
        driver = build_driver(llama_cpp, work)
        for name, qtype in K.items():
            index["k"]["rms"][name] = {}
            for variant, weights in [("plain", "-"), ("importance", str(ROOT / "k_importance.f32"))]:
                out = ROOT / (f"k_{name}.bin" if variant == "plain" else f"k_{name}_importance.bin")
                subprocess.run([str(driver), str(int(qtype)), str(K_ROWS), str(K_COLUMNS), str(ROOT / "k_input.f32"),
                                weights, str(out)], check=True)
                restored = gguf.quants.dequantize(np.fromfile(out, dtype=np.uint8), qtype)
                index["k"]["rms"][name][variant] = rms(restored.reshape(-1), x.reshape(-1))

    (ROOT / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in ROOT.iterdir())
    print(f"wrote {len(list(ROOT.iterdir()))} files, {total} bytes, to {ROOT}")
    for name, errors in index["k"]["rms"].items():
        print(f"{name}: llama.cpp RMS error {errors['plain']:.6g} plain, {errors['importance']:.6g} with importance")


if __name__ == "__main__":
    main()
