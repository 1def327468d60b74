/// A token matched whole in the text before splitting, such as `<|endoftext|>` or `<|im_start|>`
/// (an entry of `added_tokens` in `tokenizer.json`).
public struct AddedToken: Codable, Equatable, Sendable {
    /// The token id.
    public var id: Int
    /// The exact text that stands for the token.
    public var content: String
    /// Whether the token is a control token, which decoding can skip and encoding can treat as text.
    public var special: Bool
    /// Whether whitespace before the token is absorbed into it.
    public var lstrip: Bool
    /// Whether whitespace after the token is absorbed into it.
    public var rstrip: Bool
    /// Whether the token only matches where no word character touches it on either side.
    public var singleWord: Bool
    /// Whether the token is matched in the normalised text rather than the raw text.
    public var normalized: Bool

    /// A token with the given id and content; special tokens are not normalised by default.
    public init(
        id: Int, content: String, special: Bool = true, lstrip: Bool = false, rstrip: Bool = false,
        singleWord: Bool = false, normalized: Bool? = nil
    ) {
        self.id = id
        self.content = content
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.normalized = normalized ?? !special
    }

    private enum CodingKeys: String, CodingKey {
        case id, content, special, lstrip, rstrip, normalized
        case singleWord = "single_word"
    }

    /// Decodes an `added_tokens` entry, with the Hugging Face defaults for missing flags.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let special = try container.decodeIfPresent(Bool.self, forKey: .special) ?? false
        self.init(
            id: try container.decode(Int.self, forKey: .id),
            content: try container.decode(String.self, forKey: .content),
            special: special,
            lstrip: try container.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false,
            rstrip: try container.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false,
            singleWord: try container.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false,
            normalized: try container.decodeIfPresent(Bool.self, forKey: .normalized))
    }
}

/// Finds added tokens in text, leftmost first and longest first at a position, with the rules
/// of the Hugging Face `AddedVocabulary`: a match that is refused (a special token while special
/// tokens are not matched, or a `single_word` token inside a word) stays text and is not
/// searched again for shorter tokens; `lstrip` and `rstrip` take in neighbouring whitespace.
struct AddedTokenMatcher: Sendable {
    /// A stretch of text, or an added token found there.
    enum Piece {
        case text(Range<Int>)
        case token(Int)
    }

    private struct Entry: Sendable {
        let bytes: [UInt8]
        let token: AddedToken
    }

    /// The tokens sorted longest first, so the first one that matches at a position is the longest.
    private let entries: [Entry]
    /// Indices into `entries` of the tokens that start with each byte value.
    private let entriesByFirstByte: [[Int]]

    /// A matcher for `tokens`, each searched for as its `content` written by `spelling`.
    init(tokens: [AddedToken], spelling: (String) -> String = { $0 }) {
        entries = tokens.map { Entry(bytes: Array(spelling($0.content).utf8), token: $0) }
            .filter { !$0.bytes.isEmpty }
            .sorted { $0.bytes.count > $1.bytes.count }
        var byFirstByte = [[Int]](repeating: [], count: 256)
        for (index, entry) in entries.enumerated() { byFirstByte[Int(entry.bytes[0])].append(index) }
        entriesByFirstByte = byFirstByte
    }

    /// Calls `body` with the text stretches and matched tokens of `text`, in order.
    func split(_ text: UnsafeBufferPointer<UInt8>, matchSpecialTokens: Bool, _ body: (Piece) -> Void) {
        guard !entries.isEmpty else {
            if !text.isEmpty { body(.text(0..<text.count)) }
            return
        }
        var textStart = 0
        var index = 0
        while index < text.count {
            guard let entry = longestMatch(in: text, at: index) else {
                index += 1
                continue
            }
            let token = entry.token
            let matchEnd = index + entry.bytes.count
            let refused =
                (token.special && !matchSpecialTokens)
                || (token.singleWord && !Self.isSingleWord(text, index..<matchEnd))
            if refused {
                index = matchEnd
                continue
            }
            let start = token.lstrip ? max(Self.whitespaceStart(text, before: index), textStart) : index
            let end = token.rstrip ? Self.whitespaceEnd(text, from: matchEnd) : matchEnd
            if textStart < start { body(.text(textStart..<start)) }
            body(.token(token.id))
            textStart = end
            index = end
        }
        if textStart < text.count { body(.text(textStart..<text.count)) }
    }

    @inline(__always)
    private func longestMatch(in text: UnsafeBufferPointer<UInt8>, at index: Int) -> Entry? {
        for candidate in entriesByFirstByte[Int(text[index])] {
            let bytes = entries[candidate].bytes
            guard index + bytes.count <= text.count else { continue }
            var offset = 1
            while offset < bytes.count, text[index + offset] == bytes[offset] { offset += 1 }
            if offset == bytes.count { return entries[candidate] }
        }
        return nil
    }

    /// Whether no word character (`\w`) directly precedes or follows `range`.
    private static func isSingleWord(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        func isWord(_ value: UInt32) -> Bool { Unicode.Scalar(value)?.properties.isRegexWordCharacter ?? false }
        if range.lowerBound > 0, isWord(text.scalar(before: range.lowerBound).value) { return false }
        if range.upperBound < text.count, isWord(text.scalar(at: range.upperBound).value) { return false }
        return true
    }

    /// The start of the whitespace that ends at `index`.
    private static func whitespaceStart(_ text: UnsafeBufferPointer<UInt8>, before index: Int) -> Int {
        var start = index
        while start > 0 {
            let (value, previous) = text.scalar(before: start)
            guard ScalarKind(value).isWhitespace else { break }
            start = previous
        }
        return start
    }

    /// The end of the whitespace that starts at `index`.
    private static func whitespaceEnd(_ text: UnsafeBufferPointer<UInt8>, from index: Int) -> Int {
        var end = index
        while end < text.count {
            let (value, next) = text.scalar(at: end)
            guard ScalarKind(value).isWhitespace else { break }
            end = next
        }
        return end
    }
}
