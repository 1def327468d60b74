import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

/// Text read whole from a file or a pipe keeps every byte.
final class TextInputTests: XCTestCase {
    func testReadsMegabytesWithANulByteFromAFile() throws {
        // 3 MB of text with a NUL byte and a multi-byte character in the middle.
        let line = String(repeating: "It is a truth universally acknowledged. ", count: 25) + "\n"
        let text = String(repeating: line, count: 1500) + "before\u{0}after é" + String(repeating: line, count: 1500)
        XCTAssertGreaterThan(text.utf8.count, 3_000_000)
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("book.txt")
        try Data(text.utf8).write(to: url)
        let read = try TextInput.read(path: url.path)
        XCTAssertEqual(read.utf8.count, text.utf8.count)
        XCTAssertEqual(read, text)
        XCTAssertTrue(read.utf8.contains(0))
    }

    func testReadsAPipeToItsEnd() throws {
        let pipe = Pipe()
        pipe.fileHandleForWriting.write(Data("a\u{0}b\nc".utf8))
        try pipe.fileHandleForWriting.close()
        XCTAssertEqual(try TextInput.read(pipe.fileHandleForReading, source: "standard input"), "a\u{0}b\nc")
    }

    func testNamesTheSourceOfAMissingFileOrOfBytesThatAreNotUTF8() throws {
        let directory = try Fixtures.temporaryDirectory()
        let missing = directory.appendingPathComponent("missing.txt").path
        XCTAssertThrowsError(try TextInput.read(path: missing)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(missing): "), "\(error)")
        }
        let latin1 = directory.appendingPathComponent("latin1.txt")
        try Data([0x63, 0x61, 0x66, 0xE9]).write(to: latin1)
        XCTAssertThrowsError(try TextInput.read(path: latin1.path)) { error in
            XCTAssertEqual(error as? TextInputError, .notUTF8(source: latin1.path))
        }
    }

    func testAnEmptyFileIsTheEmptyText() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("empty.txt")
        try Data().write(to: url)
        XCTAssertEqual(try TextInput.read(path: url.path), "")
    }
}
