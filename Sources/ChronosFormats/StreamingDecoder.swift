/// Turns token ids into text one token at a time, as a model generates them.
///
/// A token can end in the middle of a multi-byte character (an emoji is often two or three
/// byte-level tokens), so bytes are held back until they complete a character. Everything
/// returned by `append` and `finish` joined together equals `Tokenizer.decode` of all the ids.
public struct StreamingDecoder: Sendable {
    /// The tokenizer whose tokens are decoded.
    public let tokenizer: Tokenizer
    /// Whether special tokens produce no text.
    public let skipSpecialTokens: Bool
    /// Bytes received that may still become a character when more arrive.
    private var pending: [UInt8] = []

    /// A decoder for the tokens of `tokenizer`.
    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one token and returns the text it completes, which may be empty.
    public mutating func append(_ id: Int) throws(TokenizerError) -> String {
        try tokenizer.appendBytes(of: id, to: &pending, skipSpecialTokens: skipSpecialTokens)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns the bytes still held back, with any incomplete character as U+FFFD, and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix of `bytes` that more bytes cannot change: everything but
    /// a trailing sequence that is the valid start of a character still missing bytes. An invalid
    /// sequence is settled (it decodes to U+FFFD whatever follows), so it is not held back.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var start = bytes.count - 1
        while start >= 0, bytes.count - start <= 3, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0 else { return bytes.count }
        let lead = bytes[start]
        let length: Int
        // Valid second bytes for each lead (Unicode Table 3-7): no overlong forms, no surrogates.
        var secondByteRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            secondByteRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            secondByteRange = 0x80...0x9F
        case 0xF0:
            length = 4
            secondByteRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            secondByteRange = 0x80...0x8F
        default: return bytes.count
        }
        let received = bytes.count - start
        guard received < length else { return bytes.count }
        if received >= 2, !secondByteRange.contains(bytes[start + 1]) { return bytes.count }
        return start
    }
}
