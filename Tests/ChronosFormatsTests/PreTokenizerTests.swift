import XCTest

@testable import ChronosFormats

/// The hand-written scanners against the pieces that the Hugging Face `tokenizers` library
/// (0.23.3, `pre_tokenizers.Split(Regex(pattern), "isolated").pre_tokenize_str`) gives for the
/// same texts: contractions in both cases, digit runs, whitespace before words and at the end,
/// newlines and CRLF, NBSP and other Unicode spaces, combining marks, CJK, emoji, letter numbers.
final class PreTokenizerTests: XCTestCase {
    struct Example {
        var text: String
        var gpt2: [String]
        var qwen2: [String]
        var llama3: [String]
    }

    static let examples: [Example] = [
        Example(
            text: "I'LL say it'S 12345 times",
            gpt2: ["I", "'", "LL", " say", " it", "'", "S", " 12345", " times"],
            qwen2: ["I", "'LL", " say", " it", "'S", " ", "1", "2", "3", "4", "5", " times"],
            llama3: ["I", "'LL", " say", " it", "'S", " ", "123", "45", " times"]),
        Example(
            text: "don't  stop\n\n  now!!\r\n",
            gpt2: ["don", "'t", " ", " stop", "\n\n ", " now", "!!", "\r\n"],
            qwen2: ["don", "'t", " ", " stop", "\n\n", " ", " now", "!!\r\n"],
            llama3: ["don", "'t", " ", " stop", "\n\n", " ", " now", "!!\r\n"]),
        Example(
            text: "  leading and trailing  ",
            gpt2: [" ", " leading", " and", " trailing", "  "],
            qwen2: [" ", " leading", " and", " trailing", "  "],
            llama3: [" ", " leading", " and", " trailing", "  "]),
        Example(
            text: "x\t(y) ?'s ''' \u{A0}z",
            gpt2: ["x", "\t", "(", "y", ")", " ?'", "s", " '''", " ", "\u{A0}", "z"],
            qwen2: ["x", "\t", "(y", ")", " ?'", "s", " '''", " ", "\u{A0}z"],
            llama3: ["x", "\t", "(y", ")", " ?'", "s", " '''", " ", "\u{A0}z"]),
        Example(
            text: "caf\u{E9} \u{4F60}\u{597D}\u{4E16}\u{754C} \u{1F600}\u{1F44D}\u{1F3FD} 3.14159",
            gpt2: ["caf\u{E9}", " \u{4F60}\u{597D}\u{4E16}\u{754C}", " \u{1F600}\u{1F44D}\u{1F3FD}", " 3", ".", "14159"],
            qwen2: [
                "caf\u{E9}", " \u{4F60}\u{597D}\u{4E16}\u{754C}", " \u{1F600}\u{1F44D}\u{1F3FD}", " ", "3", ".", "1", "4", "1", "5", "9"
            ],
            llama3: ["caf\u{E9}", " \u{4F60}\u{597D}\u{4E16}\u{754C}", " \u{1F600}\u{1F44D}\u{1F3FD}", " ", "3", ".", "141", "59"]),
        Example(
            text: "a\u{301}b \u{661}\u{662}\u{663}\u{664} \u{2167}x",
            gpt2: ["a", "\u{301}", "b", " \u{661}\u{662}\u{663}\u{664}", " \u{2167}", "x"],
            qwen2: ["a", "\u{301}b", " ", "\u{661}", "\u{662}", "\u{663}", "\u{664}", " ", "\u{2167}", "x"],
            llama3: ["a", "\u{301}b", " ", "\u{661}\u{662}\u{663}", "\u{664}", " ", "\u{2167}", "x"]),
        Example(
            text: "line1\n \nline2\u{2028}end \u{3000}\u{3000}w",
            gpt2: ["line", "1", "\n ", "\n", "line", "2", "\u{2028}", "end", " \u{3000}", "\u{3000}", "w"],
            qwen2: ["line", "1", "\n \n", "line", "2", "\u{2028}end", " \u{3000}", "\u{3000}w"],
            llama3: ["line", "1", "\n \n", "line", "2", "\u{2028}end", " \u{3000}", "\u{3000}w"]),
        Example(
            text: "it'\u{17F} ok  \n\tx",
            gpt2: ["it", "'", "\u{17F}", " ok", "  \n", "\t", "x"],
            qwen2: ["it", "'\u{17F}", " ok", "  \n", "\tx"],
            llama3: ["it", "'\u{17F}", " ok", "  \n", "\tx"]),
        Example(
            text: "\n",
            gpt2: ["\n"],
            qwen2: ["\n"],
            llama3: ["\n"]),
        Example(
            text: "   ",
            gpt2: ["   "],
            qwen2: ["   "],
            llama3: ["   "]),
        Example(
            text: "''s",
            gpt2: ["''", "s"],
            qwen2: ["''", "s"],
            llama3: ["''", "s"]),
        Example(
            text: "A1B22C333D4444",
            gpt2: ["A", "1", "B", "22", "C", "333", "D", "4444"],
            qwen2: ["A", "1", "B", "2", "2", "C", "3", "3", "3", "D", "4", "4", "4", "4"],
            llama3: ["A", "1", "B", "22", "C", "333", "D", "444", "4"])
    ]

    func testGPT2PatternMatchesOniguruma() {
        for example in Self.examples {
            XCTAssertEqual(pieces(example.text, .gpt2), example.gpt2, example.text.debugDescription)
        }
    }

    func testQwen2PatternMatchesOniguruma() {
        for example in Self.examples {
            XCTAssertEqual(pieces(example.text, .llama3(maxDigits: 1)), example.qwen2, example.text.debugDescription)
        }
    }

    func testLlama3PatternMatchesOniguruma() {
        for example in Self.examples {
            XCTAssertEqual(pieces(example.text, .llama3(maxDigits: 3)), example.llama3, example.text.debugDescription)
        }
    }

    func testPatternsAreRecognisedByTheirExactSource() {
        for pattern in SplitPattern.known {
            XCTAssertEqual(SplitPattern(regex: pattern.regex), pattern)
        }
        XCTAssertEqual(SplitPattern(regex: #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#), .gpt2)
        XCTAssertNil(SplitPattern(regex: #"\w+|[^\w\s]+"#))
        XCTAssertNil(SplitPattern(regex: SplitPattern.gpt2.regex + " "))
    }

    func testSequenceAppliesEachPatternToThePiecesOfThePreviousOne() throws {
        let sequence = try PreTokenizer(steps: [.split(.llama3(maxDigits: 3)), .byteLevel(addPrefixSpace: false, useRegex: true)])
        // Llama-3 keeps " 1234" apart as " ", "123", "4"; GPT-2 then splits nothing further.
        XCTAssertEqual(words("a 1234", sequence), ["a", " ", "123", "4"])
        let byteLevelOnly = try PreTokenizer(steps: [.byteLevel(addPrefixSpace: false, useRegex: false)])
        XCTAssertEqual(words("a 1234", byteLevelOnly), ["a 1234"])
    }

    private func pieces(_ text: String, _ pattern: SplitPattern) -> [String] {
        let preTokenizer = try! PreTokenizer(steps: [.split(pattern), .byteLevel(addPrefixSpace: false, useRegex: false)])
        return words(text, preTokenizer)
    }

    private func words(_ text: String, _ preTokenizer: PreTokenizer) -> [String] {
        var text = text
        return text.withUTF8 { bytes in
            var words: [String] = []
            preTokenizer.forEachWord(in: bytes) { words.append(String(decoding: bytes[$0], as: UTF8.self)) }
            return words
        }
    }
}
