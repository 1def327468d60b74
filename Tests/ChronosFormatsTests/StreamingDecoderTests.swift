import ChronosFormats
import XCTest

final class StreamingDecoderTests: XCTestCase {
    static let texts = [
        "Emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇺🇸 done",
        "中文分词测试：你好，世界！日本語のテキスト。한국어 텍스트",
        "Accents: café naïve Ångström — “quotes” … ½ ²",
        "<|im_start|>assistant\n🤖 ready<|im_end|>"
    ]

    func testChunksAreWholeCharactersAndJoinToTheFullDecode() throws {
        for tokenizer in [OracleTokenizers.gpt2, OracleTokenizers.qwen2] {
            for text in Self.texts {
                let ids = tokenizer.encode(text)
                var decoder = StreamingDecoder(tokenizer: tokenizer)
                var chunks: [String] = []
                for id in ids { chunks.append(try decoder.append(id)) }
                chunks.append(decoder.finish())
                XCTAssertEqual(chunks.joined(), try tokenizer.decode(ids))
                XCTAssertEqual(chunks.joined(), text)
                for chunk in chunks { XCTAssertFalse(chunk.unicodeScalars.contains("\u{FFFD}"), chunk) }
            }
        }
    }

    func testACharacterSplitAcrossTokensIsHeldBackUntilComplete() throws {
        // GPT-2 has no token for 😀 (F0 9F 98 80): it is encoded as several byte tokens.
        let tokenizer = OracleTokenizers.gpt2
        let ids = tokenizer.encode("😀")
        XCTAssertGreaterThan(ids.count, 1)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        for id in ids.dropLast() { XCTAssertEqual(try decoder.append(id), "") }
        XCTAssertEqual(try decoder.append(ids.last!), "😀")
        XCTAssertEqual(decoder.finish(), "")
    }

    func testInvalidBytesAreReplacedAsInAFullDecode() throws {
        let tokenizer = OracleTokenizers.gpt2
        // Byte tokens: F0 9F (an unfinished 4-byte lead), "A", then a lone continuation byte 80.
        let ids = [0xF0, 0x9F, 0x41, 0x80].map { tokenizer.id(forToken: ByteLevel.encode([UInt8($0)]))! }
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var text = ""
        for id in ids { text += try decoder.append(id) }
        XCTAssertEqual(text, "\u{FFFD}A\u{FFFD}")
        XCTAssertEqual(text, try tokenizer.decode(ids))

        var unfinished = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(try unfinished.append(ids[0]), "")
        XCTAssertEqual(unfinished.finish(), "\u{FFFD}")
    }

    func testSkipsSpecialTokensAndRejectsUnknownIds() throws {
        let tokenizer = OracleTokenizers.qwen2
        var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: true)
        var text = ""
        for id in tokenizer.encode("<|im_start|>hi<|im_end|>") { text += try decoder.append(id) }
        XCTAssertEqual(text + decoder.finish(), "hi")
        XCTAssertThrowsError(try decoder.append(tokenizer.vocabularySize)) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownTokenId(tokenizer.vocabularySize))
        }
    }
}
