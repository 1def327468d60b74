import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

final class TokenizerErrorTests: XCTestCase {
    /// A valid GPT-2-style file around the given pre-tokenizer and model sections.
    private func file(
        preTokenizer: String = #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#,
        decoder: String = #"{"type": "ByteLevel"}"#,
        model: String = #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}"#
    ) -> Data {
        Data(
            #"{"added_tokens": [], "normalizer": null, "pre_tokenizer": \#(preTokenizer), "decoder": \#(decoder), "model": \#(model)}"#.utf8
        )
    }

    private func error(_ data: Data) -> TokenizerError? {
        do {
            _ = try Tokenizer(data: data, file: "models/x/tokenizer.json")
            return nil
        } catch {
            return error
        }
    }

    func testValidFileLoads() {
        XCTAssertNil(error(file()))
    }

    func testMalformedJSONNamesTheFile() {
        guard case .malformedFile(let file, _) = error(Data("{\"model\": ".utf8)) else { return XCTFail() }
        XCTAssertEqual(file, "models/x/tokenizer.json")
        guard case .malformedFile(_, let reason) = error(Data("{}".utf8)) else { return XCTFail() }
        XCTAssertTrue(reason.contains("pre_tokenizer"), reason)
    }

    func testMissingFileIsReported() {
        let url = URL(fileURLWithPath: "/nonexistent/tokenizer.json")
        XCTAssertThrowsError(try Tokenizer(contentsOf: url)) { error in
            guard case .inaccessibleFile(let file, _) = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "/nonexistent/tokenizer.json")
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/tokenizer.json: "))
        }
    }

    func testUnknownSplitPatternIsRefusedNotGuessed() {
        let split =
            #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+|[^\\w\\s]+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}"#
        guard case .unsupported(let file, let feature) = error(file(preTokenizer: split)) else { return XCTFail() }
        XCTAssertEqual(file, "models/x/tokenizer.json")
        XCTAssertTrue(feature.contains(#"\w+|[^\w\s]+"#), feature)
    }

    func testOtherUnsupportedSectionsAreRefused() {
        let cases: [(Data, String)] = [
            (file(preTokenizer: #"{"type": "Metaspace", "replacement": "▁"}"#), "Metaspace"),
            (
                file(
                    preTokenizer:
                        #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}"#
                ), "String pattern"
            ),
            (file(decoder: #"{"type": "WordPiece"}"#), "WordPiece"),
            (file(model: #"{"type": "Unigram", "vocab": []}"#), "Unigram"),
            (file(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}"#), "byte_fallback")
        ]
        for (data, name) in cases {
            guard case .unsupported(_, let feature) = error(data) else { return XCTFail(name) }
            XCTAssertTrue(feature.contains(name), feature)
        }
    }

    func testInconsistentVocabularyIsMalformed() {
        let unknownMerge = #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}"#
        guard case .malformedFile(_, let reason) = error(file(model: unknownMerge)) else { return XCTFail() }
        XCTAssertTrue(reason.contains("merge 0"), reason)
        let sharedId = #"{"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}"#
        guard case .malformedFile = error(file(model: sharedId)) else { return XCTFail() }
        let hugeId = #"{"type": "BPE", "vocab": {"a": 4000000000}, "merges": []}"#
        guard case .malformedFile = error(file(model: hugeId)) else { return XCTFail() }
    }

    func testUnknownIdsAreRejectedByDecode() throws {
        let tokenizer = try TinyTokenizer.make()
        XCTAssertThrowsError(try tokenizer.decode([116, 9999])) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownTokenId(9999))
        }
        XCTAssertThrowsError(try tokenizer.decode([-1]))
    }

    func testAByteWithoutATokenIsNamedNotDropped() throws {
        let tokenizer = try Tokenizer(data: file(), file: "tokenizer.json")
        XCTAssertEqual(tokenizer.encode("abc"), [2], "encode drops the byte, as the Hugging Face tokenizer does")
        XCTAssertThrowsError(try tokenizer.encodeEveryByte("abc")) { error in
            XCTAssertEqual(error as? TokenizerError, .unencodableByte(UInt8(ascii: "c"), offset: 2))
            XCTAssertTrue("\(error)".contains("0x63"), "\(error)")
        }
        XCTAssertEqual(try tokenizer.encodeEveryByte("ab"), [2])
        XCTAssertEqual(try TinyTokenizer.make().encodeEveryByte("the é\u{0}"), try TinyTokenizer.make().encode("the é\u{0}"))
    }
}
