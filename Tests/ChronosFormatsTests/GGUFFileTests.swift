import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// GGUF files as llama.cpp's gguf-py writes them (`scripts/make_gguf_fixture.py`), and
/// damaged ones, each refused with what is wrong.
final class GGUFFileTests: XCTestCase {
    private struct Expected: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
            let values: [Double]
        }
        let tensors: [String: Entry]
    }

    private let fixture = Fixtures.url("gguf/tiny.gguf")

    func testReadsMetadataOfEveryTypeAndTensorsAsGGUFPyDequantisesThem() throws {
        let file = try GGUFFile(url: fixture)
        XCTAssertEqual(file.version, 3)
        let m = file.metadata
        XCTAssertEqual(m["general.architecture"], .string("llama"))
        XCTAssertEqual(m["test.u8"]?.int, 200)
        XCTAssertEqual(m["test.i8"]?.int, -7)
        XCTAssertEqual(m["test.u16"]?.int, 65000)
        XCTAssertEqual(m["test.i16"]?.int, -30000)
        XCTAssertEqual(m["test.u32"]?.int, 4_000_000_000)
        XCTAssertEqual(m["test.i32"]?.int, -2_000_000_000)
        XCTAssertEqual(m["test.f32"], .float(0.25))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(m["test.string"]?.string, "héllo")
        XCTAssertEqual(m["test.u64"]?.int, 1 << 40)
        XCTAssertEqual(m["test.i64"]?.int, -(1 << 40))
        XCTAssertEqual(m["test.f64"], .float(1.5))
        XCTAssertEqual(m["test.ints"], .array([.signed(1), .signed(2), .signed(3)]))
        XCTAssertEqual(m["test.strings"], .array([.string("a"), .string("bc")]))

        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Fixtures.url("gguf/tiny.json")))
        XCTAssertEqual(file.tensorNames, ["t.f32", "t.f16", "t.q8_0", "t.q4_k"])
        for (name, entry) in expected.tensors {
            let tensor = try file.tensor(named: name)
            XCTAssertEqual(tensor.dtype.rawValue, entry.dtype, name)
            XCTAssertEqual(tensor.shape, entry.shape, name)
            XCTAssertEqual(tensor.floats.map(\.bitPattern), entry.values.map { Float($0).bitPattern }, name)
        }
    }

    /// The fixture with `edit` applied to its bytes, opened.
    private func open(_ edit: (inout [UInt8]) -> Void) throws -> GGUFFile {
        var bytes = [UInt8](try Data(contentsOf: fixture))
        edit(&bytes)
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("edited.gguf")
        try Data(bytes).write(to: url)
        return try GGUFFile(url: url)
    }

    private func assertRefused(_ expected: String, _ edit: (inout [UInt8]) -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try open(edit), line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
        }
    }

    /// The offset of the first occurrence of `text` in the fixture.
    private func offset(of text: String) throws -> Int {
        let bytes = [UInt8](try Data(contentsOf: fixture)), needle = Array(text.utf8)
        return (0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }!
    }

    private func put(_ value: UInt64, at offset: Int, into bytes: inout [UInt8], width: Int) {
        for k in 0..<width { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
    }

    func testDamagedFilesAreRefusedWithWhatIsWrong() throws {
        assertRefused("no GGUF magic") { $0[0] = UInt8(ascii: "X") }
        assertRefused("version 9") { self.put(9, at: 4, into: &$0, width: 4) }
        assertRefused("tensor_count is") { self.put(1 << 40, at: 8, into: &$0, width: 8) }
        assertRefused("tensor_count is 4, more than the 24 bytes left") { $0.removeLast($0.count - 40) }
        assertRefused("ends past the end of the file") { $0.removeLast(100) }
        // A key's length, just before its text, larger than the file.
        let key = try offset(of: "test.u8")
        assertRefused("more than the") { self.put(1 << 50, at: key - 8, into: &$0, width: 8) }
        // The type of t.q4_k's tensor (after its name, dimension count and one extent) made IQ4_XS.
        let name = try offset(of: "t.q4_k")
        assertRefused("IQ4_XS (23), which Chronos does not read") { self.put(23, at: name + 6 + 4 + 16, into: &$0, width: 4) }
        assertRefused("not a multiple of the alignment") { self.put(3, at: name + 6 + 4 + 16 + 4, into: &$0, width: 8) }
        assertRefused("not whole q4_k blocks") { self.put(128, at: name + 6 + 4, into: &$0, width: 8) }
        // t.f32's two extents at their largest: the values would need more bytes than an Int counts.
        let f32 = try offset(of: "\u{5}\0\0\0\0\0\0\0t.f32") + 8  // the tensor's name, not the key test.f32
        assertRefused("more than the file's") {
            self.put(UInt64(Int32.max), at: f32 + 5 + 4, into: &$0, width: 8)
            self.put(UInt64(Int32.max), at: f32 + 5 + 4 + 8, into: &$0, width: 8)
        }
    }
}
