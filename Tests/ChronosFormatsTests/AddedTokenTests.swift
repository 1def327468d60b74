import ChronosFormats
import XCTest

/// Added-token matching against the ids that the Hugging Face `tokenizers` library (0.23.3) gives
/// for `TinyTokenizer` written to `tokenizer.json`, with special tokens matched and not.
final class AddedTokenTests: XCTestCase {
    struct Example {
        var text: String
        var ids: [Int]
        var idsSpecialsSplit: [Int]
    }

    static let examples: [Example] = [
        // "the" has no merge for "t"+"he"; " the" merges all the way; `<mask>` takes the space before it.
        Example(
            text: "the the <mask><|endoftext|>", ids: [116, 257, 258, 260, 259],
            idsSpecialsSplit: [116, 257, 258, 260, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62]),
        Example(text: "x  <mask>  y", ids: [120, 260, 32, 32, 121], idsSpecialsSplit: [120, 260, 32, 32, 121]),
        Example(text: "x\u{3000}<mask>", ids: [120, 260], idsSpecialsSplit: [120, 260]),
        // `<r>` takes all the whitespace after it, newline included.
        Example(text: "<r>  \n y", ids: [261, 121], idsSpecialsSplit: [60, 114, 62, 32, 32, 10, 32, 121]),
        // Whitespace taken by `<r>` is not available to `<mask>` after it.
        Example(text: " <r> <mask> ", ids: [32, 261, 260, 32], idsSpecialsSplit: [32, 60, 114, 62, 260, 32]),
        // `tok` is a single word only where no word character (letters, marks, digits, `_`) touches it.
        Example(text: "a tok b", ids: [97, 32, 262, 32, 98], idsSpecialsSplit: [97, 32, 262, 32, 98]),
        Example(text: "atok", ids: [97, 116, 111, 107], idsSpecialsSplit: [97, 116, 111, 107]),
        Example(text: "tok_", ids: [116, 111, 107, 95], idsSpecialsSplit: [116, 111, 107, 95]),
        Example(text: "_tok", ids: [95, 116, 111, 107], idsSpecialsSplit: [95, 116, 111, 107]),
        Example(text: "-tok-", ids: [45, 262, 45], idsSpecialsSplit: [45, 262, 45]),
        Example(text: "tok\u{301}", ids: [116, 111, 107, 204, 129], idsSpecialsSplit: [116, 111, 107, 204, 129]),
        Example(text: "\u{E9}tok", ids: [195, 169, 116, 111, 107], idsSpecialsSplit: [195, 169, 116, 111, 107]),
        Example(
            text: "<r><|endoftext|>tok", ids: [261, 259, 262],
            idsSpecialsSplit: [60, 114, 62, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 262]),
        Example(
            text: "<|endoftext|>tok the", ids: [259, 262, 258],
            idsSpecialsSplit: [60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 262, 258])
    ]

    func testMatchingRulesAgreeWithHuggingFace() throws {
        let tokenizer = try TinyTokenizer.make()
        for example in Self.examples {
            XCTAssertEqual(tokenizer.encode(example.text), example.ids, example.text.debugDescription)
            XCTAssertEqual(
                tokenizer.encode(example.text, matchSpecialTokens: false), example.idsSpecialsSplit,
                example.text.debugDescription)
        }
    }

    func testLongestAddedTokenWinsAtAPosition() throws {
        let tokenizer = try Tokenizer(
            vocabulary: TinyTokenizer.vocabulary, merges: [],
            addedTokens: [AddedToken(id: 300, content: "<a>"), AddedToken(id: 301, content: "<a><b>")])
        XCTAssertEqual(tokenizer.encode("<a><b><a>"), [301, 300])
    }

    func testAddedTokensDecodeToTheirContent() throws {
        let tokenizer = try TinyTokenizer.make()
        XCTAssertEqual(try tokenizer.decode([116, 257, 258, 260, 259]), "the the<mask><|endoftext|>")
        XCTAssertEqual(try tokenizer.decode([116, 257, 258, 260, 259], skipSpecialTokens: true), "the the<mask>")
    }
}
