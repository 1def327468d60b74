import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Every kind of malformed file is refused with a typed error that names the file and tensor.
final class SafetensorsValidationTests: XCTestCase {
    /// Asserts that opening `data` fails with exactly the error `expected(path)`.
    private func assertRejected(
        _ data: Data, _ expected: (String) -> SafetensorsError,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        guard let (error, path) = try SafetensorsBytes.rejection(of: data, file: file, line: line) else { return }
        XCTAssertEqual(error, expected(path), file: file, line: line)
    }

    /// Asserts that opening `data` fails with an error for which `matches` holds.
    private func assertRejected(
        _ data: Data, file: StaticString = #filePath, line: UInt = #line,
        where matches: (SafetensorsError) -> Bool
    ) throws {
        guard let (error, _) = try SafetensorsBytes.rejection(of: data, file: file, line: line) else { return }
        XCTAssertTrue(matches(error), "unexpected error: \(error)", file: file, line: line)
    }

    /// A header with one entry `w` whose JSON body is `entry`, followed by `dataBytes` bytes.
    private func oneTensor(_ entry: String, dataBytes: Int = 8) -> Data {
        SafetensorsBytes.file(header: #"{"w":\#(entry)}"#, dataBytes: dataBytes)
    }

    func testFileShorterThanLengthField() throws {
        try assertRejected(Data([1, 2, 3])) { .fileTooShort(path: $0, byteCount: 3) }
        try assertRejected(Data()) { .fileTooShort(path: $0, byteCount: 0) }
    }

    func testHeaderLengthBeyondFile() throws {
        try assertRejected(SafetensorsBytes.file(headerLength: 100, rest: Array("{}".utf8))) {
            .headerLengthExceedsFile(path: $0, headerLength: 100, fileSize: 10)
        }
        try assertRejected(SafetensorsBytes.file(headerLength: .max, rest: Array("{}".utf8))) {
            .headerLengthExceedsFile(path: $0, headerLength: .max, fileSize: 10)
        }
    }

    func testAbsurdlyLargeHeaderLength() throws {
        // A sparse file big enough to hold the claimed header, so only the limit can refuse it.
        let length = UInt64(100_000_001)
        let url = try SafetensorsBytes.write(SafetensorsBytes.file(headerLength: length, rest: Array("{".utf8)))
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: length + 8)
        try handle.close()
        XCTAssertThrowsError(try SafetensorsFile(url: url)) { error in
            XCTAssertEqual(
                error as? SafetensorsError,
                .headerTooLarge(path: url.path, headerLength: length, limit: 100_000_000))
        }
    }

    func testHeaderNotUTF8JSONObject() throws {
        let malformed: (SafetensorsError) -> Bool = { if case .malformedHeader = $0 { true } else { false } }
        try assertRejected(SafetensorsBytes.file(headerLength: 3, rest: [0x7B, 0xFF, 0x7D]), where: malformed)
        try assertRejected(SafetensorsBytes.file(header: #"{"w":"#), where: malformed)
        try assertRejected(SafetensorsBytes.file(header: "[1, 2]"), where: malformed)
        try assertRejected(SafetensorsBytes.file(header: #""text""#), where: malformed)
        try assertRejected(SafetensorsBytes.file(header: #"{"w": 3}"#), where: malformed)
    }

    func testDeeplyNestedHeaderIsRefusedNotOverflowed() throws {
        let depth = 100_000
        let header = #"{"w":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        try assertRejected(SafetensorsBytes.file(header: header)) { error in
            if case .malformedHeader = error { true } else { false }
        }
    }

    func testMissingFields() throws {
        try assertRejected(oneTensor(#"{"shape":[2],"data_offsets":[0,8]}"#)) {
            .missingField(path: $0, tensor: "w", field: "dtype")
        }
        try assertRejected(oneTensor(#"{"dtype":"F32","data_offsets":[0,8]}"#)) {
            .missingField(path: $0, tensor: "w", field: "shape")
        }
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[2]}"#)) {
            .missingField(path: $0, tensor: "w", field: "data_offsets")
        }
    }

    func testIllTypedFields() throws {
        let cases: [(entry: String, field: String)] = [
            (#"{"dtype":5,"shape":[2],"data_offsets":[0,8]}"#, "dtype"),
            (#"{"dtype":"F32","shape":"2","data_offsets":[0,8]}"#, "shape"),
            (#"{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}"#, "shape"),
            (#"{"dtype":"F32","shape":[true],"data_offsets":[0,8]}"#, "shape"),
            (#"{"dtype":"F32","shape":[1e30],"data_offsets":[0,8]}"#, "shape"),
            (#"{"dtype":"F32","shape":[2],"data_offsets":[0]}"#, "data_offsets"),
            (#"{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}"#, "data_offsets"),
            (#"{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}"#, "data_offsets"),
            (#"{"dtype":"F32","shape":[2],"data_offsets":{"begin":0}}"#, "data_offsets")
        ]
        for (entry, field) in cases {
            try assertRejected(oneTensor(entry)) { error in
                if case .invalidField(_, "w", field, _) = error { true } else { false }
            }
        }
    }

    func testUnsupportedDTypes() throws {
        for dtype in ["F64", "BOOL", "U16", "F8_E4M3", "f32"] {
            try assertRejected(oneTensor(#"{"dtype":"\#(dtype)","shape":[1],"data_offsets":[0,8]}"#)) {
                .unsupportedDType(path: $0, tensor: "w", dtype: dtype)
            }
        }
        let (error, _) = try XCTUnwrap(
            SafetensorsBytes.rejection(
                of:
                    oneTensor(#"{"dtype":"F64","shape":[1],"data_offsets":[0,8]}"#)))
        XCTAssertTrue(error.description.contains("'w'") && error.description.contains("F64"), error.description)
    }

    func testNegativeOrOverflowingShape() throws {
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}"#)) { error in
            if case .invalidShape(_, "w", [-1, 2], _) = error { true } else { false }
        }
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}"#)) { error in
            if case .invalidShape(_, "w", _, _) = error { true } else { false }
        }
        // The element count fits in Int but the byte count (× 4) does not.
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[\#(Int.max / 2)],"data_offsets":[0,8]}"#)) { error in
            if case .invalidShape(_, "w", _, _) = error { true } else { false }
        }
    }

    func testByteRangeDisagreesWithShape() throws {
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[2],"data_offsets":[0,4]}"#)) {
            .byteLengthMismatch(path: $0, tensor: "w", expected: 8, actual: 4)
        }
        try assertRejected(oneTensor(#"{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}"#)) {
            .byteLengthMismatch(path: $0, tensor: "w", expected: 12, actual: 8)
        }
    }

    func testOffsetsBeginAfterEnd() throws {
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[1],"data_offsets":[8,4]}"#)) {
            .invalidDataOffsets(path: $0, tensor: "w", begin: 8, end: 4)
        }
    }

    func testOffsetsBeyondDataSection() throws {
        try assertRejected(oneTensor(#"{"dtype":"F32","shape":[4],"data_offsets":[0,16]}"#)) {
            .dataOutOfBounds(path: $0, tensor: "w", end: 16, dataSectionSize: 8)
        }
        try assertRejected(oneTensor(#"{"dtype":"I64","shape":[1],"data_offsets":[9223372036854775799,9223372036854775807]}"#)) {
            .dataOutOfBounds(path: $0, tensor: "w", end: .max, dataSectionSize: 8)
        }
    }

    func testOverlappingTensors() throws {
        let partial = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try assertRejected(SafetensorsBytes.file(header: partial, dataBytes: 12)) {
            .overlappingTensors(path: $0, tensor: "b", other: "a")
        }
        // `b` sits inside `a`; `c` starts after `b` ends but still inside `a`.
        let nested =
            #"{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"c":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}}"#
        try assertRejected(SafetensorsBytes.file(header: nested, dataBytes: 16)) {
            .overlappingTensors(path: $0, tensor: "b", other: "a")
        }
        let duplicate = #"{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#
        try assertRejected(SafetensorsBytes.file(header: duplicate, dataBytes: 4)) {
            .overlappingTensors(path: $0, tensor: "b", other: "a")
        }
    }

    func testEmptyTensorsDoNotOverlap() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}"#
        let file = try SafetensorsFile(url: SafetensorsBytes.write(SafetensorsBytes.file(header: header, dataBytes: 8)))
        XCTAssertEqual(try file.tensor(named: "empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor(named: "a").floats, [0, 0])
    }

    func testMetadataMustMapStringsToStrings() throws {
        let invalid: (SafetensorsError) -> Bool = { if case .invalidMetadata = $0 { true } else { false } }
        try assertRejected(SafetensorsBytes.file(header: #"{"__metadata__":{"format":1}}"#), where: invalid)
        try assertRejected(SafetensorsBytes.file(header: #"{"__metadata__":"pt"}"#), where: invalid)
        try assertRejected(SafetensorsBytes.file(header: #"{"__metadata__":{"a":{"b":"c"}}}"#), where: invalid)
    }

    func testTruncatedFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        let url = directory.appendingPathComponent("whole.safetensors")
        try SafetensorsWriter.write([("first", Tensor(zeros: [4])), ("last", Tensor(zeros: [2, 2]))], to: url)
        let whole = try Data(contentsOf: url)
        let headerEnd = 8 + Int(whole.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })

        try assertRejected(whole.prefix(whole.count - 3)) {
            .dataOutOfBounds(path: $0, tensor: "last", end: 32, dataSectionSize: 29)
        }
        try assertRejected(whole.prefix(headerEnd + 10)) { error in
            if case .dataOutOfBounds(_, "first", 16, 10) = error { true } else { false }
        }
        try assertRejected(whole.prefix(headerEnd - 1)) { error in
            if case .headerLengthExceedsFile = error { true } else { false }
        }
        try assertRejected(whole.prefix(5)) { .fileTooShort(path: $0, byteCount: 5) }
    }

    func testMissingFileAndDirectory() throws {
        let directory = try Fixtures.temporaryDirectory()
        let missing = directory.appendingPathComponent("absent.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(url: missing)) { error in
            XCTAssertEqual(error as? SafetensorsError, .io(path: missing.path, call: "open", errno: ENOENT))
        }
        XCTAssertThrowsError(try SafetensorsFile(url: directory)) { error in
            XCTAssertEqual(error as? SafetensorsError, .notARegularFile(path: directory.path))
        }
    }

    func testUnknownTensorName() throws {
        let url = try SafetensorsBytes.write(SafetensorsBytes.file(header: "{}"))
        let file = try SafetensorsFile(url: url)
        XCTAssertTrue(file.tensorNames.isEmpty)
        XCTAssertThrowsError(try file.tensor(named: "missing")) { error in
            XCTAssertEqual(error as? SafetensorsError, .tensorNotFound(tensor: "missing", path: url.path))
            XCTAssertTrue("\(error)".contains("missing") && "\(error)".contains(url.path))
        }
    }
}
