import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Files written here are read by the Python `safetensors` library, and files it writes are
/// read here. Skipped when `python3` with `safetensors` and `numpy` is not installed.
final class SafetensorsPythonInteropTests: XCTestCase {
    override func setUpWithError() throws {
        guard Python.canImport("safetensors, numpy") else {
            throw XCTSkip("python3 with the safetensors and numpy packages is not installed")
        }
    }

    /// Prints, as JSON, the keys, metadata and every tensor (dtype, shape, values as strings) of
    /// the file named by argv[1], read with `safe_open` (numpy) and, for BF16, `deserialize`.
    private static let readerScript = #"""
        import json, sys
        import numpy as np
        from safetensors import safe_open, deserialize
        path = sys.argv[1]
        tensors = {}
        with safe_open(path, framework="np") as f:
            keys = list(f.keys())
            metadata = f.metadata()
            for name in keys:
                if f.get_slice(name).get_dtype() != "BF16":
                    array = f.get_tensor(name)
                    tensors[name] = {"shape": list(array.shape), "values": [repr(v) for v in array.flatten().tolist()]}
        for name, spec in deserialize(open(path, "rb").read()):
            if spec["dtype"] == "BF16":
                widened = (np.frombuffer(spec["data"], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
                tensors[name] = {"shape": spec["shape"], "values": [repr(v) for v in widened.tolist()]}
            tensors[name]["dtype"] = spec["dtype"]
        print(json.dumps({"keys": keys, "metadata": metadata, "tensors": tensors}))
        """#

    /// What the reader script reports.
    private struct PythonReport: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
            let values: [String]
        }
        let keys: [String]
        let metadata: [String: String]?
        let tensors: [String: Entry]
    }

    func testPythonReadsWrittenFile() throws {
        var tensors: [(name: String, tensor: Tensor)] = []
        for dtype in DType.allCases where !dtype.isQuantized {
            let sample = SafetensorsRoundTripTests.sample(dtype)
            tensors += [("\(dtype).contiguous", sample), ("\(dtype).transposed", sample.transposed())]
        }
        tensors.append(("scalar", Tensor(shape: [], values: [3.5])))
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("from-swift.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "producer": "chronos"], to: url)

        let (status, output) = try Python.run(Self.readerScript, [url.path])
        XCTAssertEqual(status, 0, "python could not read the file")
        let report = try JSONDecoder().decode(PythonReport.self, from: output)
        XCTAssertEqual(Set(report.keys), Set(tensors.map(\.name)))
        XCTAssertEqual(report.metadata, ["format": "pt", "producer": "chronos"])
        for (name, tensor) in tensors {
            let entry = try XCTUnwrap(report.tensors[name], name)
            XCTAssertEqual(entry.dtype, tensor.dtype.safetensorsName, name)
            XCTAssertEqual(entry.shape, tensor.shape, name)
            if tensor.dtype.isFloatingPoint {
                XCTAssertEqual(entry.values.map { Float(Double($0)!).bitPattern }, tensor.floats.map(\.bitPattern), name)
            } else {
                XCTAssertEqual(entry.values.map { Int64($0)! }, tensor.integers, name)
            }
        }
    }

    /// Writes one tensor of every supported dtype to argv[1] with the library's own writer
    /// (`serialize_file`, whose tensor description changed to `TensorSpec` in 0.8).
    private static let writerScript = #"""
        import sys
        import numpy as np
        import safetensors
        arrays = {
            "f32": ("F32", (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 4),
            "f16": ("F16", ((np.arange(6, dtype=np.float32) - 2.5) / 8).astype(np.float16).reshape(2, 3)),
            "bf16": ("BF16", np.array([0x3FC0, 0xC020, 0x7F80], dtype="<u2")),
            "i8": ("I8", np.array([-128, -1, 0, 127], dtype=np.int8)),
            "u8": ("U8", np.array([0, 255, 7], dtype=np.uint8)),
            "i32": ("I32", np.array([[-2147483648, 2147483647]], dtype=np.int32)),
            "i64": ("I64", np.array([-(2**63), 2**53 + 1, 2**63 - 1], dtype=np.int64)),
        }
        long_names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I8": "int8", "U8": "uint8",
                      "I32": "int32", "I64": "int64"}
        def spec(dtype, array):
            if hasattr(safetensors, "TensorSpec"):
                return safetensors.TensorSpec(dtype=long_names[dtype], shape=list(array.shape),
                                              data_ptr=array.ctypes.data, data_len=array.nbytes)
            return {"dtype": dtype, "shape": list(array.shape), "data": array.tobytes()}
        safetensors.serialize_file({name: spec(*entry) for name, entry in arrays.items()}, sys.argv[1],
                                   metadata={"source": "python"})
        """#

    /// Prints, as JSON, each tensor of argv[1] that `__metadata__` marks as a GGML block format,
    /// read as bytes by `safe_open` and dequantised by gguf-py, llama.cpp's own package.
    private static let blockReaderScript = #"""
        import json, sys
        import numpy as np
        from safetensors import safe_open
        from gguf import GGMLQuantizationType, quants
        out = {}
        with safe_open(sys.argv[1], framework="np") as f:
            for key, value in f.metadata().items():
                if key.startswith("chronos.dtype."):
                    name = key[len("chronos.dtype."):]
                    values = quants.dequantize(f.get_tensor(name), GGMLQuantizationType[value.upper()])
                    out[name] = {"dtype": "F32", "shape": list(values.shape), "values": [repr(float(v)) for v in values.flatten().tolist()]}
        print(json.dumps(out))
        """#

    func testGGUFPyDequantisesWrittenBlockFormats() throws {
        guard Python.canImport("gguf") else { throw XCTSkip("python3 with the gguf package is not installed") }
        let tensors = DType.allCases.filter(\.isQuantized).map { (name: "\($0).weight", tensor: SafetensorsRoundTripTests.blockSample($0)) }
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("blocks.safetensors")
        try SafetensorsWriter.write(tensors, to: url)

        let (status, output) = try Python.run(Self.blockReaderScript, [url.path])
        XCTAssertEqual(status, 0, "python could not read the file")
        let report = try JSONDecoder().decode([String: PythonReport.Entry].self, from: output)
        XCTAssertEqual(Set(report.keys), Set(tensors.map(\.name)))
        for (name, tensor) in tensors {
            let entry = try XCTUnwrap(report[name], name)
            XCTAssertEqual(entry.shape, tensor.shape, name)
            XCTAssertEqual(entry.values.map { Float(Double($0)!).bitPattern }, tensor.floats.map(\.bitPattern), name)
        }
    }

    func testReadsFileWrittenByPython() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("from-python.safetensors")
        XCTAssertEqual(try Python.run(Self.writerScript, [url.path]).status, 0, "python could not write the file")
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.metadata, ["source": "python"])
        XCTAssertEqual(Set(file.tensorNames), ["f32", "f16", "bf16", "i8", "u8", "i32", "i64"])

        let f32 = try file.tensor(named: "f32")
        XCTAssertEqual(f32.shape, [3, 4])
        XCTAssertEqual(f32.floats, (0..<12).map { (Float($0) - 5.5) / 4 })
        let f16 = try file.tensor(named: "f16")
        XCTAssertEqual(f16.dtype, .f16)
        XCTAssertEqual(f16.floats, (0..<6).map { (Float($0) - 2.5) / 8 })
        let bf16 = try file.tensor(named: "bf16")
        XCTAssertEqual(bf16.dtype, .bf16)
        XCTAssertEqual(bf16.floats, [1.5, -2.5, .infinity])
        XCTAssertEqual(try file.tensor(named: "i8").integers, [-128, -1, 0, 127])
        XCTAssertEqual(try file.tensor(named: "u8").integers, [0, 255, 7])
        XCTAssertEqual(try file.tensor(named: "i32").shape, [1, 2])
        XCTAssertEqual(try file.tensor(named: "i32").integers, [-2_147_483_648, 2_147_483_647])
        XCTAssertEqual(try file.tensor(named: "i64").integers, [.min, 1 << 53 + 1, .max])
    }
}
