import Foundation
import XCTest

@testable import chronos

/// The command reference in `docs/commands.md` is the commands' own help, regenerated.
final class CommandReferenceTests: XCTestCase {
    private let committed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/commands.md")

    func testTheCommittedReferenceIsWhatTheCommandsPrint() throws {
        let expected = CommandReference.markdown().components(separatedBy: "\n")
        let found = try String(contentsOf: committed, encoding: .utf8).components(separatedBy: "\n")
        let common = min(expected.count, found.count)
        guard let line = (0..<common).first(where: { expected[$0] != found[$0] }) ?? (expected.count == found.count ? nil : common)
        else { return }
        XCTFail(
            """
            docs/commands.md differs from the commands' help from line \(line + 1) (run `swift run chronos docs commands`):
            expected: \(line < expected.count ? expected[line] : "(end of file)")
            found:    \(line < found.count ? found[line] : "(end of file)")
            """)
    }

    func testEveryVisibleCommandHasASectionAndTheHiddenOneNone() {
        let markdown = CommandReference.markdown()
        let headings = markdown.components(separatedBy: "\n").filter { $0.hasPrefix("## ") }
        XCTAssertEqual(headings.count, CommandReference.commands(below: Chronos.self).count + 1)
        for path in ["chronos", "chronos generate", "chronos bench offload", "chronos train pretrain", "chronos tokenizer train"] {
            XCTAssertTrue(headings.contains("## \(path)"), path)
        }
        XCTAssertFalse(headings.contains { $0.hasPrefix("## chronos docs") })
        XCTAssertTrue(markdown.contains("USAGE: chronos bench offload"))
    }
}
