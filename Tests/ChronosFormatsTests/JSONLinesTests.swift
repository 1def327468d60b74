import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

final class JSONLinesTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = try Fixtures.temporaryDirectory()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func file(_ name: String, _ contents: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(contents.utf8).write(to: url)
        return url
    }

    static let badLines: [(line: String, reason: String)] = [
        (#"{"text": "unterminated}"#, "not valid JSON"),
        (#"["text", "in an array"]"#, "not a JSON object"),
        (#""just a string""#, "not a JSON object"),
        (#"{"body": "no text field"}"#, "no \"text\" field"),
        (#"{"text": 42}"#, "\"text\" is not a string"),
        (#"{"text": null}"#, "\"text\" is not a string")
    ]

    func testMalformedLinesNameTheFileAndLine() throws {
        for (index, bad) in Self.badLines.enumerated() {
            let url = try file("bad\(index).jsonl", "{\"text\": \"fine\"}\n\n   \n\(bad.line)\n{\"text\": \"after\"}\n")
            let reader = try JSONLTextReader(url: url)
            XCTAssertEqual(try reader.next(), "fine")
            XCTAssertThrowsError(try reader.next()) { error in
                XCTAssertEqual(error as? JSONLinesError, .malformedLine(file: url.path, line: 4, reason: bad.reason))
                XCTAssertEqual("\(error)", "\(url.path):4: malformed line: \(bad.reason)")
            }
        }
        let missing = directory.appendingPathComponent("missing.jsonl")
        XCTAssertThrowsError(try JSONLTextReader(url: missing)) { error in
            guard case .inaccessibleFile(let file, _) = error as? JSONLinesError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, missing.path)
        }
    }

    func testSkippedLinesAreCountedAndTheFirstKept() throws {
        let url = try file(
            "mixed.jsonl", (["{\"text\": \"a\"}"] + Self.badLines.map(\.line) + ["{\"text\": \"b\"}"]).joined(separator: "\n"))
        let reader = try JSONLTextReader(url: url, skipBadLines: true)
        XCTAssertEqual(try reader.next(), "a")
        XCTAssertEqual(try reader.next(), "b")
        XCTAssertNil(try reader.next())
        XCTAssertEqual(reader.skippedLineCount, Self.badLines.count)
        XCTAssertEqual(reader.skippedLines.first, .malformedLine(file: url.path, line: 2, reason: "not valid JSON"))
    }

    func testReaderStreamsLinesLongerThanItsBlocksAndWindowsLineEnds() throws {
        let long = String(repeating: "Emma Woodhouse, handsome, clever, and rich. ", count: 60_000)  // 2.6 MB
        let url = try file("long.jsonl", "{\"text\": \"short\"}\r\n{\"text\": \"\(long)\"}\r\n{\"text\": \"end\\nline\"}")
        let reader = try JSONLTextReader(url: url)
        XCTAssertEqual(try reader.next(), "short")
        XCTAssertEqual(try reader.next(), long)
        XCTAssertEqual(try reader.next(), "end\nline")
        XCTAssertNil(try reader.next())
        XCTAssertEqual(reader.lineNumber, 3)
    }

    func testObjectsOfPlainAndGzippedFilesWithTheirLineNumbers() throws {
        let plain = try file("records.jsonl", "{\"a\": 1}\n\n{\"a\": 2}\n")
        var seen: [(Int, Int)] = []
        try JSONLinesFile.forEachObject(at: plain) { line, object in seen.append((line, object["a"] as! Int)) }
        XCTAssertEqual(seen.map(\.0), [1, 3], "blank lines count")
        XCTAssertEqual(seen.map(\.1), [1, 2])
        // The same two records, gzip-compressed.
        let gzipped = directory.appendingPathComponent("records.jsonl.gz")
        try Data(base64Encoded: "H4sIAAAAAAAAA6tWSlSyUjCs5eKqBrOMarkAejE8fxMAAAA=")!.write(to: gzipped)
        var count = 0
        try JSONLinesFile.forEachObject(at: gzipped) { _, _ in count += 1 }
        XCTAssertEqual(count, 2)
        XCTAssertThrowsError(try JSONLinesFile.forEachObject(at: plain) { _, _ in throw RecordProblem("no \"b\"") }) { error in
            XCTAssertEqual(error as? JSONLinesError, .malformedLine(file: plain.path, line: 1, reason: "no \"b\""))
        }
    }
}
