import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTraining

final class PretrainingDataTests: XCTestCase {
    /// A byte-level tokenizer without merges: each byte is its own id and `<|endoftext|>` is 256.
    static let bytesTokenizer = try! TokenizerTrainer(vocabularySize: 260).train()

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

    func testDocumentsAreJoinedByEndOfTextAndPackedWithTargetsShiftedByOne() throws {
        let url = try file("tiny.jsonl", #"{"text": "ab"}"# + "\n" + #"{"text": "c", "id": 2}"# + "\n\n" + #"{"text": ""}"#)
        let corpus = try TokenizedCorpus(jsonl: [url], tokenizer: Self.bytesTokenizer)
        XCTAssertEqual(corpus.tokens, [97, 98, 256, 99, 256])
        XCTAssertEqual(corpus.documentCount, 2)

        let packed = PackedSequences(tokens: corpus.tokens, sequenceLength: 2)
        XCTAssertEqual(packed.count, 2)
        XCTAssertEqual(Array(packed.window(0)), [97, 98, 256])
        XCTAssertEqual(packed.inputs(0), [97, 98])
        XCTAssertEqual(packed.targets(0), [98, 256])
        XCTAssertEqual(packed.inputs(1), [256, 99])
        XCTAssertEqual(packed.targets(1), [99, 256])

        // Ten ids with L = 3: windows 0…3, 3…6, 6…9; an eleventh id would not fill a fourth.
        let counted = PackedSequences(tokens: Array(0..<11), sequenceLength: 3)
        XCTAssertEqual(counted.count, 3)
        XCTAssertEqual(counted.inputs(2), [6, 7, 8])
        XCTAssertEqual(counted.targets(2), [7, 8, 9])
        XCTAssertEqual(PackedSequences(tokens: [1, 2, 3], sequenceLength: 3).count, 0)
        XCTAssertEqual(PackedSequences(tokens: [], sequenceLength: 3).count, 0)
    }

    func testSpecialTokenSpellingsInDocumentsAreTextUnlessAsked() throws {
        let url = try file("special.jsonl", #"{"text": "a<|endoftext|>"}"#)
        let plain = try TokenizedCorpus(jsonl: [url], tokenizer: Self.bytesTokenizer)
        XCTAssertEqual(plain.tokens.count, 1 + "<|endoftext|>".utf8.count + 1)
        let matched = try TokenizedCorpus(jsonl: [url], tokenizer: Self.bytesTokenizer, matchSpecialTokens: true)
        XCTAssertEqual(matched.tokens, [97, 256, 256])
    }

    func testATokenizerWithoutEndOfTextSeparatesDocumentsByTheGivenIdOrIsRefused() throws {
        let url = try file("two.jsonl", #"{"text": "a"}"# + "\n" + #"{"text": "b"}"#)
        let bytes = ByteLevel.characters.enumerated().map { (String(Character($0.element)), $0.offset) }
        let plain = try Tokenizer(vocabulary: Dictionary(uniqueKeysWithValues: bytes), merges: [])
        XCTAssertEqual(try TokenizedCorpus(jsonl: [url], tokenizer: plain, endOfText: 2).tokens, [97, 2, 98, 2])
        XCTAssertThrowsError(try TokenizedCorpus(jsonl: [url], tokenizer: plain)) {
            XCTAssertEqual($0 as? PretrainingDataError, .unknownEndOfTextToken("<|endoftext|>"))
        }
    }

    /// 103 sequences of length 4 whose ids say which sequence they are.
    static let numbered = PackedSequences(tokens: (0..<(103 * 4 + 1)).map { Int32($0 / 4) }, sequenceLength: 4)

    func testSameSeedGivesTheSameBatchesAndEachEpochVisitsEverySequenceOnce() throws {
        var first = try PretrainingBatches(sequences: Self.numbered, batchSize: 10, seed: 42)
        var second = try PretrainingBatches(sequences: Self.numbered, batchSize: 10, seed: 42)
        XCTAssertEqual(first.batchesPerEpoch, 10)
        var epochs: [[Int]] = [[], [], []]
        for _ in 0..<30 {
            let batch = try XCTUnwrap(first.next())
            XCTAssertEqual(batch, second.next())
            XCTAssertEqual(batch.inputs.count, 10)
            for (row, sequence) in batch.sequences.enumerated() {
                XCTAssertEqual(batch.inputs[row], Self.numbered.inputs(sequence))
                XCTAssertEqual(batch.targets[row], Self.numbered.targets(sequence))
            }
            epochs[batch.cursor.epoch] += batch.sequences
        }
        for epoch in epochs {
            XCTAssertEqual(epoch.count, 100, "three sequences do not fill a batch")
            XCTAssertEqual(Set(epoch).count, 100)
        }
        XCTAssertNotEqual(epochs[0], epochs[1], "each epoch has its own order")
        XCTAssertNotEqual(epochs[0], Array(0..<100), "the order is shuffled")
        XCTAssertEqual(first.cursor, DataCursor(epoch: 2, index: 100))
        XCTAssertEqual(first.next()?.cursor, DataCursor(epoch: 3, index: 0))

        var reseeded = try PretrainingBatches(sequences: Self.numbered, batchSize: 10, seed: 43)
        XCTAssertNotEqual(reseeded.next()?.sequences, Array(epochs[0].prefix(10)))
        XCTAssertEqual(
            PretrainingBatches.order(epoch: 5, count: 103, seed: 42),
            PretrainingBatches.order(epoch: 5, count: 103, seed: 42))
        XCTAssertEqual(PretrainingBatches.order(epoch: 5, count: 103, seed: 42).sorted(), Array(0..<103))
    }

    func testARestoredCursorReplaysTheFollowingBatches() throws {
        var original = try PretrainingBatches(sequences: Self.numbered, batchSize: 7, seed: 9)
        for _ in 0..<11 { _ = original.next() }
        let saved = try JSONEncoder().encode(original.cursor)
        let expected = (0..<12).map { _ in original.next()! }  // crosses into epoch 1 (14 batches an epoch)
        XCTAssertEqual(Set(expected.map(\.cursor.epoch)), [0, 1])

        let cursor = try JSONDecoder().decode(DataCursor.self, from: saved)
        XCTAssertEqual(cursor, DataCursor(epoch: 0, index: 77))
        var resumed = try PretrainingBatches(sequences: Self.numbered, batchSize: 7, seed: 9, cursor: cursor)
        XCTAssertEqual((0..<12).map { _ in resumed.next()! }, expected)

        var rewound = resumed
        rewound.cursor = expected[5].cursor
        XCTAssertEqual(rewound.next(), expected[5])
    }

    func testTooFewSequencesForABatchIsAnError() {
        XCTAssertThrowsError(try PretrainingBatches(sequences: Self.numbered, batchSize: 104, seed: 0)) {
            XCTAssertEqual($0 as? PretrainingDataError, .tooFewSequences(sequences: 103, batchSize: 104))
        }
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
            XCTAssertThrowsError(try TokenizedCorpus(jsonl: [url], tokenizer: Self.bytesTokenizer)) { error in
                XCTAssertEqual(error as? PretrainingDataError, .jsonLines(.malformedLine(file: url.path, line: 4, reason: bad.reason)))
                XCTAssertEqual("\(error)", "\(url.path):4: malformed line: \(bad.reason)")
            }
        }
    }

    func testSkippedBadLinesAreCountedAndReported() throws {
        let lines = ["{\"text\": \"a\"}"] + Self.badLines.map(\.line) + ["{\"text\": \"b\"}"]
        let url = try file("mixed.jsonl", lines.joined(separator: "\n"))
        let other = try file("other.jsonl", "not json\n{\"text\": \"c\"}\n")
        let corpus = try TokenizedCorpus(jsonl: [url, other], tokenizer: Self.bytesTokenizer, skipBadLines: true)
        XCTAssertEqual(corpus.tokens, [97, 256, 98, 256, 99, 256])
        XCTAssertEqual(corpus.documentCount, 3)
        XCTAssertEqual(corpus.skippedLineCount, 7)
        XCTAssertEqual(corpus.skippedLines.first, .malformedLine(file: url.path, line: 2, reason: "not valid JSON"))
        XCTAssertEqual(corpus.skippedLines.last, .malformedLine(file: other.path, line: 1, reason: "not valid JSON"))
        XCTAssertEqual(corpus.skippedLines.count, 7)
    }

    func testTokenizedCorpusMatchesEncodingEachDocument() throws {
        var trainer = TokenizerTrainer(vocabularySize: 300)
        let texts = [
            "It is a truth universally acknowledged,", "that a single man in possession of a good fortune,",
            "must be in want of a wife. Ünïcödé ✓"
        ]
        trainer.add(contentsOf: texts + texts)
        let tokenizer = try trainer.train()
        let url = try file(
            "docs.jsonl",
            try texts.map {
                String(decoding: try JSONEncoder().encode(["text": $0]), as: UTF8.self)
            }.joined(separator: "\n") + "\n")
        let corpus = try TokenizedCorpus(jsonl: [url], tokenizer: tokenizer)
        let endOfText = try XCTUnwrap(tokenizer.id(forToken: "<|endoftext|>"))
        XCTAssertEqual(corpus.tokens.map(Int.init), texts.flatMap { tokenizer.encode($0) + [endOfText] })
        XCTAssertEqual(try tokenizer.decode(corpus.tokens.map(Int.init)), texts.map { $0 + "<|endoftext|>" }.joined())
    }
}
