import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

/// One expected encoding from `tokenizers/<name>/cases.json`, made by the Hugging Face library.
struct OracleCase: Decodable {
    var text: String
    var ids: [Int]
    var decodeRoundtrip: Bool
    var decoded: String?
    var idsSpecialsSplit: [Int]?

    enum CodingKeys: String, CodingKey {
        case text, ids, decoded
        case decodeRoundtrip = "decode_roundtrip"
        case idsSpecialsSplit = "ids_specials_split"
    }
}

/// The fixture tokenizers, loaded once for all tests.
enum OracleTokenizers {
    static let gpt2 = load("gpt2")
    static let qwen2 = load("qwen2")

    static func load(_ name: String) -> Tokenizer {
        try! Tokenizer(contentsOf: Fixtures.url("tokenizers/\(name)/tokenizer.json"))
    }

    /// The tokenizer in llama.cpp's vocabulary file `gguf-tokenizers/<name>.gguf.gz`
    /// (`ggml-vocab-<name>.gguf`, from which the `tokenizer.json` fixtures were rebuilt).
    static func loadGGUF(_ name: String) throws -> Tokenizer {
        try Tokenizer(gguf: ggufFile(name))
    }

    /// llama.cpp's vocabulary file `gguf-tokenizers/<name>.gguf.gz`, decompressed.
    static func ggufFile(_ name: String) throws -> GGUFFile {
        let compressed = try [UInt8](Data(contentsOf: Fixtures.url("gguf-tokenizers/\(name).gguf.gz")))
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("\(name).gguf")
        try Data(Gzip.decompress(compressed)).write(to: url)
        return try GGUFFile(url: url)
    }

    static func cases(_ name: String) throws -> [OracleCase] {
        let data = try Data(contentsOf: Fixtures.url("tokenizers/\(name)/cases.json"))
        return try JSONDecoder().decode([OracleCase].self, from: data)
    }
}

final class TokenizerOracleTests: XCTestCase {
    func testGPT2MatchesHuggingFace() throws {
        try check(OracleTokenizers.gpt2, cases: OracleTokenizers.cases("gpt2"), expectedCount: 86)
    }

    func testQwen2MatchesHuggingFace() throws {
        try check(OracleTokenizers.qwen2, cases: OracleTokenizers.cases("qwen2"), expectedCount: 86)
    }

    func testGPT2FromGGUFMatchesHuggingFace() throws {
        try check(OracleTokenizers.loadGGUF("gpt-2"), cases: OracleTokenizers.cases("gpt2"), expectedCount: 86)
    }

    func testQwen2FromGGUFMatchesHuggingFace() throws {
        try check(OracleTokenizers.loadGGUF("qwen2"), cases: OracleTokenizers.cases("qwen2"), expectedCount: 86)
    }

    /// llama.cpp's test vectors for its SentencePiece vocabulary (`ggml-vocab-llama-spm.gguf.inp`
    /// and `.out`, made with the original Hugging Face tokenizer), encoded without special tokens.
    func testSentencePieceFromGGUFMatchesLlamaCppVectors() throws {
        let tokenizer = try OracleTokenizers.loadGGUF("llama-spm")
        let input = try String(contentsOf: Fixtures.url("gguf-tokenizers/llama-spm.inp"), encoding: .utf8)
        let output = try String(contentsOf: Fixtures.url("gguf-tokenizers/llama-spm.out"), encoding: .utf8)
        let separator = "\n__ggml_vocab_test__\n"
        let texts = input.components(separatedBy: separator).dropLast(input.hasSuffix(separator) ? 1 : 0)
        let expected = output.split(separator: "\n", omittingEmptySubsequences: false).prefix(texts.count).map {
            $0.split(separator: " ").map { Int($0)! }
        }
        XCTAssertEqual(texts.count, 46)
        for (text, ids) in zip(texts, expected) {
            XCTAssertEqual(tokenizer.encode(text, matchSpecialTokens: false), ids, text.debugDescription)
            // Decoding gives the text back after the space SentencePiece puts before it.
            XCTAssertEqual(try tokenizer.decode(ids), text.isEmpty ? "" : " " + text, text.debugDescription)
        }
        // A special token matched in the text is followed by the space, as in llama.cpp.
        XCTAssertEqual(tokenizer.encode("<s>Hi"), [1, 6324])
        XCTAssertEqual(tokenizer.encode("<s>Hi", matchSpecialTokens: false), [529, 29879, 29958, 18567])
        XCTAssertEqual(try tokenizer.decode([1, 6324], skipSpecialTokens: true), " Hi")
    }

    /// Mistral's SentencePiece vocabulary (Mistral 7B, Mixtral) as a GGUF file against the
    /// `sentencepiece` library itself on 96 texts, characters outside the vocabulary included.
    func testMistralSentencePieceFromGGUFMatchesTheSentencePieceLibrary() throws {
        struct Case: Decodable {
            var text: String
            var ids: [Int]
        }
        let tokenizer = try OracleTokenizers.loadGGUF("mistral-v1")
        let cases = try JSONDecoder().decode(
            [Case].self, from: Data(contentsOf: Fixtures.url("gguf-tokenizers/mistral-v1-cases.json")))
        XCTAssertEqual(cases.count, 96)
        for testCase in cases {
            XCTAssertEqual(tokenizer.encode(testCase.text, matchSpecialTokens: false), testCase.ids, testCase.text.debugDescription)
        }
    }

    /// The chat template in the Qwen2 vocabulary file renders as Python's jinja2 renders it.
    func testChatTemplateFromGGUFRendersAsJinja2() throws {
        let config = TokenizerConfig(gguf: try OracleTokenizers.ggufFile("qwen2"))
        XCTAssertEqual(config.eosToken, "<|endoftext|>")
        let rendered = try ChatTemplate(config: config).render(
            messages: [ChatMessage(role: "user", content: "Hi there")], addGenerationPrompt: true)
        XCTAssertEqual(
            rendered,
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
    }

    func testVocabularyAndAddedTokens() {
        let gpt2 = OracleTokenizers.gpt2
        XCTAssertEqual(gpt2.vocabularySize, 50257)
        XCTAssertEqual(gpt2.id(forToken: "<|endoftext|>"), 50256)
        XCTAssertEqual(gpt2.token(forId: 50256), "<|endoftext|>")
        XCTAssertEqual(gpt2.id(forToken: "Ġthe"), 262)
        XCTAssertEqual(gpt2.token(forId: 262), "Ġthe")
        XCTAssertNil(gpt2.token(forId: 50257))
        XCTAssertNil(gpt2.token(forId: -1))
        XCTAssertTrue(gpt2.isSpecialToken(50256))
        XCTAssertFalse(gpt2.isSpecialToken(262))

        let qwen2 = OracleTokenizers.qwen2
        XCTAssertEqual(qwen2.vocabularySize, 151646)
        XCTAssertEqual(qwen2.addedTokens.map(\.content), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        XCTAssertEqual(qwen2.id(forToken: "<|im_end|>"), 151645)
    }

    func testDecodeSkipsSpecialTokensOnRequest() throws {
        let qwen2 = OracleTokenizers.qwen2
        let ids = qwen2.encode("<|im_start|>user\nHi<|im_end|>")
        XCTAssertEqual(try qwen2.decode(ids), "<|im_start|>user\nHi<|im_end|>")
        XCTAssertEqual(try qwen2.decode(ids, skipSpecialTokens: true), "user\nHi")
    }

    private func check(_ tokenizer: Tokenizer, cases: [OracleCase], expectedCount: Int) throws {
        XCTAssertEqual(cases.count, expectedCount)
        for testCase in cases {
            let label = testCase.text.debugDescription
            XCTAssertEqual(tokenizer.encode(testCase.text), testCase.ids, "encode \(label)")
            let expectedText = testCase.decodeRoundtrip ? testCase.text : try XCTUnwrap(testCase.decoded)
            XCTAssertEqual(try tokenizer.decode(testCase.ids), expectedText, "decode \(label)")
            if let split = testCase.idsSpecialsSplit {
                XCTAssertEqual(tokenizer.encode(testCase.text, matchSpecialTokens: false), split, "split \(label)")
            }
        }
    }
}
