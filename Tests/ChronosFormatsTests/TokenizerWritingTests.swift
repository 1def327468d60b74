import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

final class TokenizerWritingTests: XCTestCase {
    func testTrainedVocabularyEncodesByItsMerges() throws {
        let tokenizer = try TinyTokenizer.make()
        // "the": h+e merges, t+he is no merge; " the": Ġ+t, h+e, then Ġt+he.
        XCTAssertEqual(tokenizer.encode("the the"), [116, 257, 258])
        XCTAssertEqual(tokenizer.encode("the<|endoftext|>"), [116, 257, 259])
        XCTAssertEqual(try tokenizer.decode([116, 257, 258, 259]), "the the<|endoftext|>")
        XCTAssertEqual(tokenizer.vocabularySize, 263)
    }

    func testWrittenFileReadsBackAsTheSameTokenizer() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tokenizer.json")
        let tokenizer = try TinyTokenizer.make()
        try tokenizer.write(to: url)

        let reread = try Tokenizer(contentsOf: url)
        XCTAssertEqual(try reread.jsonData(), try tokenizer.jsonData())
        XCTAssertEqual(reread.addedTokens, TinyTokenizer.addedTokens)
        for example in AddedTokenTests.examples {
            XCTAssertEqual(reread.encode(example.text), example.ids, example.text.debugDescription)
        }
        for id in 0..<tokenizer.vocabularySize {
            XCTAssertEqual(reread.token(forId: id), tokenizer.token(forId: id))
        }
    }

    func testWrittenFileHasTheLayoutTheHuggingFaceLibraryReads() throws {
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try TinyTokenizer.make().jsonData()) as? [String: Any])
        XCTAssertEqual(json["version"] as? String, "1.0")
        for key in ["truncation", "padding", "normalizer", "post_processor"] {
            XCTAssertTrue(json[key] is NSNull, key)
        }
        let preTokenizer = try XCTUnwrap(json["pre_tokenizer"] as? [String: Any])
        XCTAssertEqual(preTokenizer["type"] as? String, "ByteLevel")
        XCTAssertEqual(preTokenizer["use_regex"] as? Bool, true)
        XCTAssertEqual(preTokenizer["add_prefix_space"] as? Bool, false)
        XCTAssertEqual((json["decoder"] as? [String: Any])?["type"] as? String, "ByteLevel")
        let model = try XCTUnwrap(json["model"] as? [String: Any])
        XCTAssertEqual(model["type"] as? String, "BPE")
        XCTAssertEqual(model["merges"] as? [[String]], [["Ġ", "t"], ["h", "e"], ["Ġt", "he"]])
        XCTAssertEqual((model["vocab"] as? [String: Int])?["Ġthe"], 258)
        let added = try XCTUnwrap(json["added_tokens"] as? [[String: Any]])
        XCTAssertEqual(added.first?["content"] as? String, "<|endoftext|>")
        XCTAssertEqual(added.first?["special"] as? Bool, true)
    }

    func testFixtureTokenizersSurviveAWriteAndRead() throws {
        for name in ["gpt2", "qwen2"] {
            let original = name == "gpt2" ? OracleTokenizers.gpt2 : OracleTokenizers.qwen2
            let reread = try Tokenizer(data: try original.jsonData(), file: "rewritten \(name)")
            for testCase in try OracleTokenizers.cases(name) {
                XCTAssertEqual(reread.encode(testCase.text), testCase.ids, "\(name) \(testCase.text.debugDescription)")
            }
        }
    }

    func testOlderSpaceSeparatedMergesAreRead() throws {
        let json = #"""
            {"added_tokens": [], "normalizer": null,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
             "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "vocab": VOCAB, "merges": ["Ġ t", "h e", "Ġt he"]}}
            """#
        let vocabulary = String(decoding: try JSONEncoder().encode(TinyTokenizer.vocabulary), as: UTF8.self)
        let tokenizer = try Tokenizer(data: Data(json.replacingOccurrences(of: "VOCAB", with: vocabulary).utf8))
        XCTAssertEqual(tokenizer.encode("the the"), [116, 257, 258])
    }

    func testPrefixSpaceIsAddedWhenAsked() throws {
        let json = String(decoding: try TinyTokenizer.make().jsonData(), as: UTF8.self)
            .replacingOccurrences(of: "\"add_prefix_space\" : false", with: "\"add_prefix_space\" : true")
        let tokenizer = try Tokenizer(data: Data(json.utf8))
        XCTAssertEqual(tokenizer.encode("the"), [258])
        XCTAssertEqual(tokenizer.encode(" the"), [258])
    }
}
