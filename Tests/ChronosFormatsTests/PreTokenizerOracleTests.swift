import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosFormats

/// The DeepSeek-V3, GLM-4.5 and gpt-oss (o200k) pre-tokenisers against the Hugging Face
/// `tokenizers` library on the texts of `tokenizers/{deepseek_v3,glm4,gpt_oss}/cases.json`
/// (made by `scripts/make_pretokenizer_fixtures.py`): CJK and kana, number runs in several
/// scripts, contractions in both cases, mixed-case words, emoji sequences, whitespace runs,
/// newlines, punctuation runs, controls and marks. Each family's tokenizer is read both from its
/// `tokenizer.json` and from a GGUF file naming the pre-tokeniser as llama.cpp does.
final class PreTokenizerOracleTests: XCTestCase {
    struct Case: Decodable {
        var text: String
        var pieces: [String]
        var ids: [Int]
    }

    /// The fixture families, their split patterns and their `tokenizer.ggml.pre` names.
    static let families: [(name: String, patterns: [SplitPattern], pre: String)] = [
        ("deepseek_v3", [.deepSeekDigits, .deepSeekHanKana, .deepSeekWords], "deepseek-v3"),
        ("glm4", [.llama3(maxDigits: 3)], "glm4"),
        ("gpt_oss", [.o200k], "gpt-4o")
    ]

    private func cases(_ name: String) throws -> [Case] {
        try JSONDecoder().decode([Case].self, from: Data(contentsOf: Fixtures.url("tokenizers/\(name)/cases.json")))
    }

    func testTheTokenizerFilesNameTheirPatternsByTheirExactSource() throws {
        for family in Self.families {
            let file =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: Fixtures.url("tokenizers/\(family.name)/tokenizer.json"))) as! [String: Any]
            let preTokenizer = try JSONDecoder().decode(
                PreTokenizer.self, from: JSONSerialization.data(withJSONObject: file["pre_tokenizer"]!))
            XCTAssertEqual(preTokenizer.patterns, family.patterns, family.name)
        }
    }

    func testPiecesMatchTheTokenizersLibrary() throws {
        for family in Self.families {
            let preTokenizer = try PreTokenizer(
                steps: family.patterns.map { .split($0) } + [.byteLevel(addPrefixSpace: false, useRegex: false)])
            for testCase in try cases(family.name) {
                var text = testCase.text
                let pieces = text.withUTF8 { bytes in
                    var pieces: [String] = []
                    preTokenizer.forEachWord(in: bytes) { pieces.append(String(decoding: bytes[$0], as: UTF8.self)) }
                    return pieces
                }
                XCTAssertEqual(pieces, testCase.pieces, "\(family.name) \(testCase.text.debugDescription)")
            }
        }
    }

    func testIdsFromTokenizerJSONMatchTheTokenizersLibrary() throws {
        for family in Self.families {
            let tokenizer = try Tokenizer(contentsOf: Fixtures.url("tokenizers/\(family.name)/tokenizer.json"))
            try check(tokenizer, family: family.name)
        }
    }

    func testIdsFromGGUFMatchTheTokenizersLibrary() throws {
        for family in Self.families {
            let file = try GGUFFile(url: Fixtures.url("tokenizers/\(family.name)/tokenizer.gguf"))
            XCTAssertEqual(file.metadata["tokenizer.ggml.pre"]?.string, family.pre)
            try check(Tokenizer(gguf: file), family: family.name)
        }
    }

    private func check(_ tokenizer: Tokenizer, family: String) throws {
        let cases = try cases(family)
        XCTAssertEqual(cases.count, 40, family)
        for testCase in cases {
            let label = "\(family) \(testCase.text.debugDescription)"
            XCTAssertEqual(tokenizer.encode(testCase.text), testCase.ids, label)
            XCTAssertEqual(try tokenizer.decode(testCase.ids), testCase.text, label)
        }
    }
}
