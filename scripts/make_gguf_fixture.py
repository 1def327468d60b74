"""Writes Tests/Fixtures/gguf/tiny.gguf with llama.cpp's own gguf-py, and tiny.json, what it holds;
and two micro Mixtral-style models of the same weights, tiny-moe-stacked.gguf (experts stacked per
layer, `blk.N.ffn_gate_exps.weight`, as llama.cpp's converter writes them now) and
tiny-moe-per-expert.gguf (one tensor per expert, `blk.N.ffn_gate.E.weight`, the older layout),
with a byte-level tokenizer of 260 tokens (the 256 bytes and 4 merges).

    python3 scripts/make_gguf_fixture.py      # needs `pip install gguf numpy`

The file has metadata of every GGUF value type (arrays of integers and of strings included) and
four tensors: f32 [3, 4], f16 [2, 32], q8_0 [2, 64] and q4_k [1, 256] (shapes outermost first),
the last two quantised by gguf-py (q8_0) and given as random blocks (q4_k). tiny.json lists each
tensor's type, shape and the floats gguf-py dequantises it to, and the metadata as JSON.
"""
import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType, quants

OUT = Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "gguf"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(OUT / "tiny.gguf"), "llama")
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -7)
    writer.add_uint16("test.u16", 65000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_float32("test.f32", 0.25)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo")
    writer.add_uint64("test.u64", 2**40)
    writer.add_int64("test.i64", -(2**40))
    writer.add_float64("test.f64", 1.5)
    writer.add_array("test.ints", [1, 2, 3])
    writer.add_array("test.strings", ["a", "bc"])

    tensors = {}
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    writer.add_tensor("t.f32", f32)
    tensors["t.f32"] = ("f32", [3, 4], f32)
    f16 = rng.standard_normal((2, 32)).astype(np.float16)
    writer.add_tensor("t.f16", f16)
    tensors["t.f16"] = ("f16", [2, 32], f16.astype(np.float32))
    q8 = quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), GGMLQuantizationType.Q8_0)
    writer.add_tensor("t.q8_0", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    tensors["t.q8_0"] = ("q8_0", [2, 64], quants.dequantize(q8, GGMLQuantizationType.Q8_0))
    q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
    q4k[0, 0:4] = np.frombuffer(np.array([0.01, 0.002], dtype=np.float16).tobytes(), dtype=np.uint8)
    writer.add_tensor("t.q4_k", q4k, raw_dtype=GGMLQuantizationType.Q4_K)
    tensors["t.q4_k"] = ("q4_k", [1, 256], quants.dequantize(q4k, GGMLQuantizationType.Q4_K))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    expected = {
        "metadata": {"test.u8": 200, "test.i8": -7, "test.u16": 65000, "test.i16": -30000, "test.u32": 4000000000,
                     "test.i32": -2000000000, "test.f32": 0.25, "test.bool": True, "test.string": "héllo",
                     "test.u64": 2**40, "test.i64": -(2**40), "test.f64": 1.5, "test.ints": [1, 2, 3],
                     "test.strings": ["a", "bc"], "general.architecture": "llama"},
        "tensors": {name: {"dtype": t, "shape": shape, "values": [float(v) for v in np.asarray(values).flatten()]}
                    for name, (t, shape, values) in tensors.items()},
    }
    (OUT / "tiny.json").write_text(json.dumps(expected, indent=1) + "\n")
    micro_models(np.random.default_rng(11))


def byte_alphabet():
    """GPT-2's printable stand-in for each byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = [b for b in range(256) if b not in printable]
    mapping = {b: chr(b) for b in printable}
    mapping.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return [mapping[b] for b in range(256)]


def micro_models(rng):
    """A 2-layer Mixtral-style model (vocab 260, hidden 8, 2 heads / 1 KV head, 2 experts top-1, width 8)
    in both expert layouts."""
    alphabet = byte_alphabet()
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")]
    tokens = alphabet + [a + b for a, b in merges]
    vocab, hidden, width, experts, layers = len(tokens), 8, 8, 2, 2
    weights = {"token_embd.weight": rng.standard_normal((vocab, hidden)), "output_norm.weight": 1 + 0.1 * rng.standard_normal(hidden),
               "output.weight": rng.standard_normal((vocab, hidden))}
    for layer in range(layers):
        p = f"blk.{layer}."
        weights[p + "attn_norm.weight"] = 1 + 0.1 * rng.standard_normal(hidden)
        weights[p + "ffn_norm.weight"] = 1 + 0.1 * rng.standard_normal(hidden)
        weights[p + "attn_q.weight"] = rng.standard_normal((hidden, hidden))
        weights[p + "attn_k.weight"] = rng.standard_normal((4, hidden))
        weights[p + "attn_v.weight"] = rng.standard_normal((4, hidden))
        weights[p + "attn_output.weight"] = rng.standard_normal((hidden, hidden))
        weights[p + "ffn_gate_inp.weight"] = rng.standard_normal((experts, hidden))
        weights[p + "ffn_gate_exps.weight"] = rng.standard_normal((experts, width, hidden))
        weights[p + "ffn_up_exps.weight"] = rng.standard_normal((experts, width, hidden))
        weights[p + "ffn_down_exps.weight"] = rng.standard_normal((experts, hidden, width))
    for layout in ("stacked", "per-expert"):
        writer = gguf.GGUFWriter(str(OUT / f"tiny-moe-{layout}.gguf"), "llama")
        writer.add_block_count(layers)
        writer.add_context_length(64)
        writer.add_embedding_length(hidden)
        writer.add_feed_forward_length(width)
        writer.add_head_count(2)
        writer.add_head_count_kv(1)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_rope_freq_base(10000.0)
        writer.add_expert_count(experts)
        writer.add_expert_used_count(1)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types([gguf.TokenType.NORMAL] * vocab)
        writer.add_token_merges([f"{a} {b}" for a, b in merges])
        writer.add_eos_token_id(vocab - 1)
        for name, value in weights.items():
            value = (0.3 * value if value.ndim > 1 else value).astype(np.float32)
            if layout == "per-expert" and name.endswith("_exps.weight"):
                stem = name.removesuffix("_exps.weight")
                for expert in range(experts):
                    writer.add_tensor(f"{stem}.{expert}.weight", value[expert])
            else:
                writer.add_tensor(name, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


if __name__ == "__main__":
    main()
