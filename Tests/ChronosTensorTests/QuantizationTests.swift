import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// GGML's block formats checked against GGML's own code: gguf-py's dequantisers and 32-value
/// quantisers, and llama.cpp's K quantisers, through the fixtures `scripts/make_quant_fixtures.py`
/// writes to `Tests/Fixtures/quant` (MXFP4's, and transformers' reading of gpt-oss's MXFP4
/// layout, from `scripts/make_mxfp4_fixtures.py`).
final class QuantizationTests: XCTestCase {
    static let simpleTypes: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .mxfp4]
    static let kTypes: [DType] = [.q2_k, .q3_k, .q4_k, .q5_k, .q6_k]

    /// `index.json`: what each fixture holds, and llama.cpp's round-trip errors.
    struct Index: Decodable {
        struct Dequant: Decodable { let blocks: Int }
        struct KRows: Decodable {
            let rows: Int
            let columns: Int
            /// Per K type, the RMS error of llama.cpp's bytes against the input, "plain" and "importance".
            let rms: [String: [String: Double]]
        }
        let dequant: [String: Dequant]
        let k: KRows
    }

    static func index() throws -> Index {
        try JSONDecoder().decode(Index.self, from: Data(contentsOf: Fixtures.url("quant/index.json")))
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Fixtures.url("quant/\(name)")))
    }

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: Fixtures.url("quant/\(name)"))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    static func quantize(_ type: DType, _ values: [Float], importance: [Float]? = nil) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: type.byteCount(values.count))
        out.withUnsafeMutableBytes { blocks in
            if let importance {
                importance.withUnsafeBufferPointer {
                    Quantization.quantize(type, values: values, into: blocks.baseAddress!, count: values.count, importance: $0.baseAddress)
                }
            } else {
                Quantization.quantize(type, values: values, into: blocks.baseAddress!, count: values.count)
            }
        }
        return out
    }

    static func dequantize(_ type: DType, _ blocks: [UInt8]) -> [Float] {
        let count = blocks.count / type.blockBytes * type.blockElements
        return [Float](unsafeUninitializedCapacity: count) { values, initialized in
            blocks.withUnsafeBytes { Quantization.dequantize(type, blocks: $0.baseAddress!, into: values.baseAddress!, count: count) }
            initialized = count
        }
    }

    static func rmsError(_ a: [Float], _ b: [Float]) -> Double {
        let sum = zip(a, b).reduce(0.0) { total, pair in total + pow(Double(pair.0) - Double(pair.1), 2) }
        return (sum / Double(a.count)).squareRoot()
    }

    func testDequantisationMatchesGGUFPyBitForBit() throws {
        let index = try Self.index()
        for type in Self.simpleTypes + Self.kTypes {
            let blocks = try Self.bytes("dequant_\(type.rawValue).bin")
            let expected = try Self.floats("dequant_\(type.rawValue).f32")
            XCTAssertEqual(blocks.count, index.dequant[type.rawValue].map { $0.blocks * type.blockBytes }, "\(type)")
            let values = Self.dequantize(type, blocks)
            XCTAssertEqual(values.count, expected.count, "\(type)")
            let differing = zip(values, expected).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            XCTAssertEqual(differing, 0, "\(type): \(differing) of \(expected.count) values differ from gguf-py's")
        }
    }

    func testSimpleQuantisersGiveGGUFPyBytes() throws {
        let input = try Self.floats("simple_input.f32")
        for type in Self.simpleTypes {
            let expected = try Self.bytes("simple_\(type.rawValue).bin")
            let ours = Self.quantize(type, input)
            XCTAssertEqual(ours.count, expected.count, "\(type)")
            let differing = (0..<(expected.count / type.blockBytes)).filter { block in
                let range = (block * type.blockBytes)..<((block + 1) * type.blockBytes)
                return ours[range] != expected[range]
            }
            XCTAssertEqual(differing, [], "\(type): blocks that differ from gguf-py's")
        }
    }

    func testHuggingFaceMXFP4BlocksGiveTransformersValues() throws {
        // The fixture's 64 blocks: 64·16 code bytes, then 64 exponents.
        let bytes = try Self.bytes("mxfp4_hf.bin"), expected = try Self.floats("mxfp4_hf.f32")
        let blocks = Tensor(shape: [2, 32, 16], values: bytes.prefix(64 * 16).map(Float.init), dtype: .u8)
        let scales = Tensor(shape: [2, 32], values: bytes.suffix(64).map(Float.init), dtype: .u8)
        let tensor = HuggingFaceMXFP4.tensor(blocks: blocks, scales: scales)
        XCTAssertEqual(tensor.shape, [2, 32 * 32])
        // Equal as numbers: transformers' table gives code 8 the value −0, GGML's +0.
        XCTAssertEqual(tensor.floats, expected)
        // The same blocks in GGML's order, as gguf-py's fixture has them.
        let ggml = try Self.bytes("dequant_mxfp4.bin")
        XCTAssertEqual([UInt8](UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount)), ggml)
    }

    func testKQuantisersMatchLlamaCpp() throws {
        let index = try Self.index()
        let input = try Self.floats("k_input.f32")
        // llama.cpp's importance matrix has one weight per column, the same for every row.
        let columnImportance = try Self.floats("k_importance.f32")
        XCTAssertEqual(input.count, index.k.rows * index.k.columns)
        let importance = (0..<input.count).map { columnImportance[$0 % index.k.columns] }
        for type in Self.kTypes {
            for (variant, weights) in [("plain", nil), ("importance", importance)] {
                let suffix = variant == "plain" ? "" : "_importance"
                let expected = try Self.bytes("k_\(type.rawValue)\(suffix).bin")
                let ours = Self.quantize(type, input, importance: weights)
                XCTAssertEqual(ours.count, expected.count, "\(type) \(variant)")
                let blocks = expected.count / type.blockBytes
                let identical = (0..<blocks).filter { block in
                    let range = (block * type.blockBytes)..<((block + 1) * type.blockBytes)
                    return ours[range] == expected[range]
                }.count
                XCTAssertEqual(identical, blocks, "\(type) \(variant): \(identical) of \(blocks) blocks identical to llama.cpp's")
                let error = Self.rmsError(Self.dequantize(type, ours), input)
                let reference = try XCTUnwrap(index.k.rms[type.rawValue]?[variant])
                XCTAssertLessThanOrEqual(error, reference * 1.001, "\(type) \(variant): RMS error against llama.cpp's \(reference)")
            }
        }
    }

    func testTensorsRoundTripEveryTypeWithinItsError() {
        // The largest RMS error each type may leave on values uniform in [-1, 1): about a third
        // above what GGML's quantisers leave on them.
        let bounds: [DType: Double] = [
            .q8_0: 0.003, .q4_0: 0.05, .q4_1: 0.045, .q5_0: 0.024, .q5_1: 0.022,
            .q2_k: 0.18, .q3_k: 0.095, .q4_k: 0.042, .q5_k: 0.021, .q6_k: 0.01,
            // gguf-py leaves 0.085: values above 0.75 in a block whose largest is below 1 clip to it.
            .mxfp4: 0.11
        ]
        var random = TestRandom(seed: 41)
        let values = random.values(4 * 512)
        for type in Self.simpleTypes + Self.kTypes {
            let tensor = Tensor(shape: [4, 512], values: values, dtype: type)
            XCTAssertEqual(tensor.byteCount, type.byteCount(values.count), "\(type)")
            let restored = tensor.floats
            XCTAssertEqual(restored.count, values.count, "\(type)")
            let error = Self.rmsError(restored, values)
            XCTAssertLessThanOrEqual(error, bounds[type]!, "\(type)")
        }
    }

    func testOddSizesQuantiseWholeBlocksOnly() {
        var random = TestRandom(seed: 43)
        for type in Self.simpleTypes + Self.kTypes {
            // Three rows of three blocks: an odd count of each, and the bytes around them untouched.
            let count = 9 * type.blockElements
            let values = random.values(count)
            let sentinel: UInt8 = 0xA5
            var blocks = [UInt8](repeating: sentinel, count: type.byteCount(count) + 16)
            blocks.withUnsafeMutableBytes { Quantization.quantize(type, values: values, into: $0.baseAddress!, count: count) }
            XCTAssertEqual(blocks.suffix(16), ArraySlice(repeating: sentinel, count: 16), "\(type) wrote past its blocks")
            var restored = [Float](repeating: .nan, count: count + 4)
            blocks.withUnsafeBytes { raw in
                restored.withUnsafeMutableBufferPointer {
                    Quantization.dequantize(type, blocks: raw.baseAddress!, into: $0.baseAddress!, count: count)
                }
            }
            XCTAssertTrue(restored.suffix(4).allSatisfy(\.isNaN), "\(type) wrote past its values")
            let tensor = Tensor(shape: [3, 3 * type.blockElements], values: values, dtype: type)
            XCTAssertEqual(tensor.floats, Array(restored.prefix(count)), "\(type)")
        }
    }
}
