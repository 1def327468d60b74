#!/usr/bin/env python3
"""Adds MXFP4 to Tests/Fixtures/quant (see scripts/make_quant_fixtures.py for the other
formats) from gguf-py alone, GGML's MXFP4 (GGML_TYPE_MXFP4, 39) being Chronos's block layout:

- dequant_mxfp4.bin / .f32: 64 random blocks (random code bytes, each E8M0 exponent drawn from
  [100, 154] so every value is a normal float) and what `gguf.quants.dequantize` makes of them;
- simple_mxfp4.bin: `gguf.quants.quantize` of the existing simple_input.f32;
- mxfp4_hf.bin / mxfp4_hf.f32: the same 64 blocks in the layout of Hugging Face's gpt-oss
  checkpoints (`*_blocks` bytes, value 2j in the low nibble of byte j and 2j + 1 in the high,
  then the `*_scales` bytes) and the values transformers' `convert_moe_packed_tensors` gives;
- the block count in index.json under dequant.mxfp4.

    python3 scripts/make_mxfp4_fixtures.py

Needs numpy, gguf, torch and transformers (pip install gguf torch "transformers>=5").
"""
import json
import pathlib

import numpy as np
import torch
from gguf.quants import GGMLQuantizationType as Q, dequantize, quantize
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "quant"
BLOCKS = 64


def main() -> None:
    rng = np.random.default_rng(39)
    blocks = rng.integers(0, 256, size=(BLOCKS, 17), dtype=np.uint8)
    blocks[:, 0] = rng.integers(100, 155, size=BLOCKS, dtype=np.uint8)
    values = dequantize(blocks.reshape(-1), Q.MXFP4).astype(np.float32).reshape(-1)
    (ROOT / "dequant_mxfp4.bin").write_bytes(blocks.tobytes())
    (ROOT / "dequant_mxfp4.f32").write_bytes(values.tobytes())

    simple = np.frombuffer((ROOT / "simple_input.f32").read_bytes(), dtype=np.float32)
    (ROOT / "simple_mxfp4.bin").write_bytes(quantize(simple.reshape(-1, 32), Q.MXFP4).tobytes())

    # GGML: code i of a block in byte i % 16, low nibble for i < 16. Hugging Face: code i in
    # byte i // 2, low nibble for even i.
    codes = np.concatenate([blocks[:, 1:] & 0x0F, blocks[:, 1:] >> 4], axis=1)
    hf_blocks = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    scales = blocks[:, 0].copy()
    hf_values = convert_moe_packed_tensors(
        torch.from_numpy(hf_blocks.reshape(1, BLOCKS, 1, 16)), torch.from_numpy(scales.reshape(1, BLOCKS, 1)),
        dtype=torch.float32)
    # convert_moe_packed_tensors returns [experts, columns, rows] (transposed for x @ W): here one
    # row of 32 columns per block.
    hf_values = hf_values[0].T.reshape(-1).numpy()
    assert np.array_equal(hf_values, values), "transformers and gguf-py disagree on the blocks"
    (ROOT / "mxfp4_hf.bin").write_bytes(hf_blocks.tobytes() + scales.tobytes())
    (ROOT / "mxfp4_hf.f32").write_bytes(hf_values.astype(np.float32).tobytes())

    index_path = ROOT / "index.json"
    index = json.loads(index_path.read_text())
    index["dequant"]["mxfp4"] = {"blocks": BLOCKS}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
