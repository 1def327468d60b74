import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTraining

final class AustenCorpusTests: XCTestCase {
    static let gutenbergText = """
        The Project Gutenberg EBook of A Novel, by A Writer

        This eBook is for the use of anyone anywhere at no cost.

        *** START OF THIS PROJECT GUTENBERG EBOOK A NOVEL ***




        A NOVEL

        VOLUME I



        CHAPTER I


        It is a truth universally acknowledged, that a single man in possession
        of a good fortune, must be in want of a wife.\r
        \r
        "My dear Mr. Bennet,"   said his lady
           to him one day.

                                   * * * * *

        Chapter 2.

        The end.
        *** END OF THIS PROJECT GUTENBERG EBOOK A NOVEL ***

        Updated editions will replace the previous one.
        """

    func testNovelIsCutIntoNormalisedParagraphsWithoutBoilerplateOrHeadings() {
        XCTAssertEqual(
            AustenCorpus.documents(of: Self.gutenbergText),
            [
                "A NOVEL",
                "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
                "\"My dear Mr. Bennet,\" said his lady to him one day.",
                "The end."
            ])
        XCTAssertEqual(
            AustenCorpus.documents(of: "No markers here.\n\nCHAPTER XLII\n\nVolume of the Spectator"),
            ["No markers here.", "Volume of the Spectator"])
    }

    func testBuildHoldsOutTheLastParagraphsOfEachNovel() throws {
        let source = try Fixtures.temporaryDirectory(), output = try Fixtures.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: source)
            try? FileManager.default.removeItem(at: output)
        }
        let first = (1...30).map { "First novel, paragraph \($0)." }.joined(separator: "\n\n")
        let second = (1...10).map { "Second novel, paragraph \($0) — “quoted” / slashed." }.joined(separator: "\n\n")
        try Data(second.utf8).write(to: source.appendingPathComponent("b_second.txt"))
        try Data(first.utf8).write(to: source.appendingPathComponent("a_first.txt"))
        try Data("not a novel".utf8).write(to: source.appendingPathComponent("README.md"))

        let summary = try AustenCorpus.build(from: source, into: output, heldOutFraction: 0.1)
        XCTAssertEqual(summary.novels, ["a_first.txt", "b_second.txt"])
        XCTAssertEqual(summary.trainDocuments, 27 + 9)
        XCTAssertEqual(summary.heldOutDocuments, 3 + 1)

        func texts(_ name: String) throws -> [String] {
            let reader = try JSONLTextReader(url: output.appendingPathComponent(name))
            var texts: [String] = []
            while let text = try reader.next() { texts.append(text) }
            return texts
        }
        let train = try texts("train.jsonl"), heldOut = try texts("heldout.jsonl")
        XCTAssertEqual(train.first, "First novel, paragraph 1.")
        XCTAssertEqual(train[26], "First novel, paragraph 27.")
        XCTAssertEqual(train[27], "Second novel, paragraph 1 — “quoted” / slashed.")
        XCTAssertEqual(
            heldOut,
            [
                "First novel, paragraph 28.", "First novel, paragraph 29.", "First novel, paragraph 30.",
                "Second novel, paragraph 10 — “quoted” / slashed."
            ])
        let trainData = try Data(contentsOf: output.appendingPathComponent("train.jsonl"))
        XCTAssertEqual(trainData.count, summary.trainBytes)
        XCTAssertTrue(String(decoding: trainData, as: UTF8.self).hasPrefix("{\"text\":\"First novel, paragraph 1.\"}\n"))

        let again = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: again) }
        _ = try AustenCorpus.build(from: source, into: again, heldOutFraction: 0.1)
        XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent("train.jsonl")), trainData)
    }

    func testSourceWithoutNovelsIsAnError() throws {
        let empty = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try AustenCorpus.build(from: empty, into: empty)) { error in
            XCTAssertEqual(error as? PretrainingDataError, .inaccessibleFile(file: empty.path, reason: "no .txt files"))
        }
    }
}
