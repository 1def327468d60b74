"""Writes Tests/Fixtures/gguf/tiny.gguf with llama.cpp's own gguf-py, and tiny.json, what it holds.

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


if __name__ == "__main__":
    main()
