import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Tensors written by `SafetensorsWriter` read back from `SafetensorsFile` unchanged.
final class SafetensorsRoundTripTests: XCTestCase {
    /// A [3, 4] tensor of `dtype` whose values exercise the type's range, including integers
    /// that f32 cannot hold exactly.
    static func sample(_ dtype: DType) -> Tensor {
        let values: [Float] =
            switch dtype {
            case .f32: [-1.5, 0, 3.25, 1e-3, 65504, -2, 7e30, 0.1, -0.0, 1, 2, 3]
            case .f16: [-1.5, 0, 3.25, 0.0009765625, 65504, -2, 6.1035156e-05, 0.099975586, -0.0, 1, 2, 3]
            case .bf16: [-1.5, 0, 3.25, 0.0009994507, 65536, -2, 7.0010977e30, 0.10009766, -0.0, 1, 2, 3]
            case .i8: [-128, -1, 0, 1, 127, 5, -7, 9, 11, -13, 15, 17]
            case .u8: [0, 1, 2, 127, 128, 255, 3, 4, 5, 6, 7, 8]
            case .i32, .i64: [-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8]
            default: preconditionFailure("block formats are sampled by blockSample")
            }
        let tensor = Tensor(shape: [3, 4], values: values, dtype: dtype)
        switch dtype {
        case .i32:
            tensor.rawPointer.storeBytes(of: Int32.max, toByteOffset: 0, as: Int32.self)
            tensor.rawPointer.storeBytes(of: Int32.min + 1, toByteOffset: 5 * 4, as: Int32.self)
        case .i64:
            tensor.rawPointer.storeBytes(of: Int64(1) << 53 + 1, toByteOffset: 0, as: Int64.self)
            tensor.rawPointer.storeBytes(of: Int64.min, toByteOffset: 5 * 8, as: Int64.self)
        default:
            break
        }
        return tensor
    }

    /// Asserts that `read` holds the same dtype, shape and elements (exactly) as `expected`.
    private func assertSameElements(
        _ read: Tensor, _ expected: Tensor, _ name: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(read.dtype, expected.dtype, name, file: file, line: line)
        XCTAssertEqual(read.shape, expected.shape, name, file: file, line: line)
        XCTAssertTrue(read.isContiguous, name, file: file, line: line)
        if expected.dtype.isFloatingPoint {
            XCTAssertEqual(read.floats.map(\.bitPattern), expected.floats.map(\.bitPattern), name, file: file, line: line)
        } else {
            XCTAssertEqual(read.integers, expected.integers, name, file: file, line: line)
        }
    }

    /// A `[3, 2 blocks]` tensor of a block format, quantised from a ramp.
    static func blockSample(_ dtype: DType) -> Tensor {
        let count = 3 * 2 * dtype.blockElements
        return Tensor(shape: [3, 2 * dtype.blockElements], values: (0..<count).map { Float($0 % 97) / 13 - 3 }, dtype: dtype)
    }

    func testEveryDTypeRoundTripsIncludingNonContiguousViews() throws {
        var tensors: [(name: String, tensor: Tensor)] = []
        for dtype in DType.allCases where !dtype.isQuantized {
            let base = Self.sample(dtype)
            let transposed = base.transposed()
            let sliced = transposed.slice(1..<3, axis: 1)
            XCTAssertFalse(transposed.isContiguous)
            XCTAssertFalse(sliced.isContiguous)
            tensors += [("\(dtype).contiguous", base), ("\(dtype).transposed", transposed), ("\(dtype).sliced", sliced)]
        }
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("all.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "note": "round trip"], to: url)

        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.tensorNames, tensors.map(\.name))
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "round trip"])
        for (name, expected) in tensors {
            let info = try file.info(named: name)
            XCTAssertEqual(info.dtype, expected.dtype)
            XCTAssertEqual(info.shape, expected.shape)
            XCTAssertEqual(info.byteRange.count, expected.byteCount)
            assertSameElements(try file.tensor(named: name), expected, name)
        }
        XCTAssertEqual(try file.tensor(named: "i64.transposed").integers.first(where: { $0 > 1 << 52 }), Int64(1) << 53 + 1)
    }

    func testBlockFormatsRoundTripAsBytesWithTheirTypeInMetadata() throws {
        let tensors = DType.allCases.filter(\.isQuantized).map { (name: "\($0).weight", tensor: Self.blockSample($0)) }
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("blocks.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: url)

        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.metadata["format"], "pt")
        for (name, expected) in tensors {
            let read = try file.tensor(named: name)
            XCTAssertEqual(read.dtype, expected.dtype, name)
            XCTAssertEqual(read.shape, expected.shape, name)
            XCTAssertEqual(file.metadata[DType.quantizedMetadataKey(tensor: name)], expected.dtype.rawValue)
            let bytes = { (t: Tensor) in Array(UnsafeRawBufferPointer(start: t.rawPointer, count: t.byteCount)) }
            XCTAssertEqual(bytes(read), bytes(expected), name)
            XCTAssertEqual(read.floats, expected.floats, name)
        }
    }

    func testBlockFormatMetadataIsChecked() throws {
        let directory = try Fixtures.temporaryDirectory()
        let rows = Tensor(zeros: [2, 36], dtype: .u8)
        func open(_ metadata: [String: String]) throws -> SafetensorsFile {
            let url = directory.appendingPathComponent("\(metadata.values.sorted()).safetensors")
            try SafetensorsWriter.write([("w", rows)], metadata: metadata, to: url)
            return try SafetensorsFile(url: url)
        }
        XCTAssertEqual(try open(["chronos.dtype.w": "q4_0"]).tensor(named: "w").shape, [2, 64])
        XCTAssertThrowsError(try open(["chronos.dtype.w": "iq4_xs"])) { error in
            XCTAssertTrue("\(error)".contains("iq4_xs"), "\(error)")
        }
        XCTAssertThrowsError(try open(["chronos.dtype.w": "q4_k"])) { error in
            XCTAssertTrue("\(error)".contains("whole 144-byte blocks"), "\(error)")
        }
        XCTAssertThrowsError(try open(["chronos.dtype.missing": "q8_0"])) { error in
            XCTAssertTrue("\(error)".contains("names no tensor"), "\(error)")
        }
    }

    func testHeaderIsPaddedAndDataSectionAligned() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("padded.safetensors")
        try SafetensorsWriter.write([("x", Tensor(shape: [3], values: [1, 2, 3]))], to: url)
        let bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(bytes.count, 8 + headerLength + 12)
        let header = try XCTUnwrap(String(data: bytes.dropFirst(8).prefix(headerLength), encoding: .utf8))
        XCTAssertEqual(
            header.trimmingCharacters(in: .whitespaces),
            #"{"x":{"data_offsets":[0,12],"dtype":"F32","shape":[3]}}"#)
        XCTAssertEqual(try SafetensorsFile(url: url).tensorInfos.first?.byteRange, (8 + headerLength)..<(8 + headerLength + 12))
    }

    func testScalarAndEmptyTensors() throws {
        let scalar = Tensor(shape: [], values: [42], dtype: .i32)
        let empty = Tensor(zeros: [0, 5], dtype: .bf16)
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("edge.safetensors")
        try SafetensorsWriter.write([("scalar", scalar), ("empty", empty)], to: url)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(try file.tensor(named: "scalar").shape, [])
        XCTAssertEqual(try file.tensor(named: "scalar").integers, [42])
        XCTAssertEqual(try file.tensor(named: "empty").shape, [0, 5])
        XCTAssertEqual(try file.tensor(named: "empty").count, 0)
        XCTAssertTrue(file.metadata.isEmpty)
    }

    func testTensorsViewTheMappingAndOutliveTheFile() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("view.safetensors")
        try SafetensorsWriter.write(
            [("a", Tensor(shape: [2], values: [1, 2])), ("b", Tensor(shape: [2], values: [5, 6]))],
            to: url)
        func readB() throws -> (Tensor, Tensor) {
            let file = try SafetensorsFile(url: url)
            return (try file.tensor(named: "a"), try file.tensor(named: "b"))
        }
        let (a, b) = try readB()
        // Both tensors point into one mapping, 8 bytes apart, so nothing was copied.
        XCTAssertEqual(b.storage.base - a.storage.base, 8)
        XCTAssertEqual(a.floats, [1, 2])
        XCTAssertEqual(b.floats, [5, 6])
    }

    func testMisalignedDataIsCopiedAndReadCorrectly() throws {
        // An unpadded 54-byte header puts the data section at offset 62, so the f32s are misaligned.
        var data = SafetensorsBytes.file(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#)
        XCTAssertEqual(data.count, 62)
        withUnsafeBytes(of: Float(1.5)) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: Float(-2.25)) { data.append(contentsOf: $0) }
        let tensor = try SafetensorsFile(url: SafetensorsBytes.write(data)).tensor(named: "x")
        XCTAssertEqual(Int(bitPattern: tensor.rawPointer) % 4, 0)
        XCTAssertEqual(tensor.floats, [1.5, -2.25])
    }

    func testWriterRejectsDuplicateAndReservedNames() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("bad.safetensors")
        let x = Tensor(zeros: [1])
        XCTAssertThrowsError(try SafetensorsWriter.write([("x", x), ("x", x)], to: url)) { error in
            guard case .invalidTensorName(url.path, "x", _) = error as? SafetensorsError else {
                return XCTFail("unexpected error: \(error)")
            }
        }
        XCTAssertThrowsError(try SafetensorsWriter.write([("__metadata__", x)], to: url)) { error in
            guard case .invalidTensorName(url.path, "__metadata__", _) = error as? SafetensorsError else {
                return XCTFail("unexpected error: \(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testOverwriteReplacesFile() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write([("old", Tensor(zeros: [64]))], to: url)
        try SafetensorsWriter.write([("new", Tensor(shape: [1], values: [7]))], to: url)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.tensorNames, ["new"])
        XCTAssertEqual(try file.tensor(named: "new").floats, [7])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
        XCTAssertEqual(leftovers, ["model.safetensors"])
    }
}
