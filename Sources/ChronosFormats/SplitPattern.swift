/// A pre-tokenisation regex of a known model family, run as a hand-written scanner over UTF-8.
///
/// Each scanner returns the end of the match that the regex (an Oniguruma alternation: the first
/// alternative that matches wins, quantifiers are greedy and backtrack) finds at a position, or
/// nil when none starts there. Every position starts a match of the GPT-2, Llama-3 and o200k
/// patterns, so a text splits into consecutive matches; DeepSeek-V3's three patterns leave gaps,
/// which become pieces of their own (the `Isolated` behaviour).
enum SplitPattern: Equatable, Sendable {
    /// GPT-2's pattern, also the one a `ByteLevel` pre-tokenizer with `use_regex` applies.
    case gpt2
    /// The Llama-3 pattern, which GLM-4.5 uses too; Qwen2 differs only in splitting numbers into
    /// single digits where Llama-3 takes runs of up to three.
    case llama3(maxDigits: Int)
    /// DeepSeek-V3's first split: runs of up to three numbers.
    case deepSeekDigits
    /// DeepSeek-V3's second split: runs of CJK ideographs (U+4E00–U+9FA5), hiragana and katakana.
    case deepSeekHanKana
    /// DeepSeek-V3's third split: words with their leading space or ASCII punctuation mark,
    /// punctuation and symbol runs, whitespace.
    case deepSeekWords
    /// The o200k pattern of GPT-4o and gpt-oss: words split at lower-to-upper case changes with
    /// their contraction attached, runs of up to three numbers, punctuation runs with trailing
    /// newlines and slashes, whitespace.
    case o200k

    /// The patterns recognised in `tokenizer.json` files, by their exact regex source.
    static let known: [SplitPattern] = [
        .gpt2, .llama3(maxDigits: 1), .llama3(maxDigits: 3), .deepSeekDigits, .deepSeekHanKana, .deepSeekWords, .o200k
    ]

    /// The pattern whose regex source is exactly `regex`, or nil when it is not one of `known`.
    init?(regex: String) {
        guard let pattern = Self.known.first(where: { $0.regex == regex }) else { return nil }
        self = pattern
    }

    /// The regex source as it appears in `tokenizer.json`.
    var regex: String {
        switch self {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3(let maxDigits):
            let digits = maxDigits == 1 ? #"\p{N}"# : #"\p{N}{1,\#(maxDigits)}"#
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"#
                + digits + #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .deepSeekDigits:
            return #"\p{N}{1,3}"#
        case .deepSeekHanKana:
            return "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"
        case .deepSeekWords:
            // DeepSeek-V3's file holds carriage return and line feed themselves in its classes.
            return "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
                + "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
        case .o200k:
            return #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"#
                + #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"#
                + #"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// The end of the match that starts at `start`, treating `end` as the end of the text; nil
    /// when no match starts there.
    @inline(__always)
    func matchEnd(in text: UnsafeBufferPointer<UInt8>, at start: Int, to end: Int) -> Int? {
        switch self {
        case .gpt2: Self.gpt2PieceEnd(text, start, end)
        case .llama3(let maxDigits): Self.llama3PieceEnd(text, start, end, maxDigits: maxDigits)
        case .deepSeekDigits: Self.numbersEnd(text, start, end, maxCount: 3)
        case .deepSeekHanKana: Self.hanKanaEnd(text, start, end)
        case .deepSeekWords: Self.deepSeekWordsEnd(text, start, end)
        case .o200k: Self.o200kPieceEnd(text, start, end)
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    private static func gpt2PieceEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        let (c0, i1) = text.scalar(at: start)
        if c0 == apostrophe, let e = contractionEnd(text, i1, end, ignoringCase: false) { return e }
        var bodyStart = start
        var kind = ScalarKind(c0)
        if c0 == space, i1 < end {
            let next = ScalarKind(text.scalar(at: i1).value)
            if !next.isWhitespace { (bodyStart, kind) = (i1, next) }
        }
        switch kind {
        case .letter, .number, .other: return runEnd(text, bodyStart, end, of: kind)
        case .space, .newline: return whitespaceEnd(text, start, end)
        }
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,n}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    private static func llama3PieceEnd(
        _ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, maxDigits: Int
    ) -> Int {
        let (c0, i1) = text.scalar(at: start)
        if c0 == apostrophe, let e = contractionEnd(text, i1, end, ignoringCase: true) { return e }
        let k0 = ScalarKind(c0)
        if k0 == .letter { return runEnd(text, i1, end, of: .letter) }
        var c1: UInt32 = 0
        var k1 = ScalarKind.newline  // stands for "no next scalar": it satisfies none of the tests below
        var i2 = i1
        if i1 < end {
            (c1, i2) = text.scalar(at: i1)
            k1 = ScalarKind(c1)
        }
        if (k0 == .space || k0 == .other) && k1 == .letter { return runEnd(text, i2, end, of: .letter) }
        if k0 == .number {
            var e = i1
            var count = 1
            while count < maxDigits, e < end {
                let (c, next) = text.scalar(at: e)
                guard ScalarKind(c) == .number else { break }
                e = next
                count += 1
            }
            return e
        }
        let symbolsStart = k0 == .other ? start : (c0 == space && k1 == .other ? i1 : -1)
        if symbolsStart >= 0 {
            var e = runEnd(text, symbolsStart, end, of: .other)
            while e < end, text[e] == 0x0A || text[e] == 0x0D { e += 1 }
            return e
        }
        return lineBreakWhitespaceEnd(text, start, end)
    }

    /// `\s*[\r\n]+|\s+(?!\S)|\s+` at a whitespace scalar: the run up to and including its
    /// last newline if it has one, otherwise as `whitespaceEnd`.
    static func lineBreakWhitespaceEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        var e = start
        var lastStart = start
        var afterLastNewline = -1
        while e < end {
            let (c, next) = text.scalar(at: e)
            let kind = ScalarKind(c)
            guard kind.isWhitespace else { break }
            if kind == .newline { afterLastNewline = next }
            lastStart = e
            e = next
        }
        if afterLastNewline >= 0 { return afterLastNewline }
        return e == end || lastStart == start ? e : lastStart
    }

    static let apostrophe: UInt32 = 0x27
    static let space: UInt32 = 0x20

    /// The end of `s|t|re|ve|m|ll|d` at `index` (just after an apostrophe), or nil. Ignoring case
    /// follows Unicode simple case folding, under which U+017F LATIN SMALL LETTER LONG S is an `s`.
    @inline(__always)
    static func contractionEnd(
        _ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int, ignoringCase: Bool
    ) -> Int? {
        guard index < end else { return nil }
        func fold(_ c: UInt32) -> UInt32 {
            guard ignoringCase else { return c }
            if (0x41...0x5A).contains(c) { return c | 0x20 }
            return c == 0x17F ? 0x73 : c
        }
        let (c1, i2) = text.scalar(at: index)
        switch fold(c1) {
        case 0x73, 0x74, 0x6D, 0x64: return i2  // s t m d
        case 0x72, 0x76, 0x6C:  // r v l
            guard i2 < end else { return nil }
            let (c2, i3) = text.scalar(at: i2)
            let pair = (fold(c1), fold(c2))
            return pair == (0x72, 0x65) || pair == (0x76, 0x65) || pair == (0x6C, 0x6C) ? i3 : nil  // re ve ll
        default: return nil
        }
    }

    /// The end of the run of scalars of `kind` that starts at `index`.
    @inline(__always)
    private static func runEnd(_ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int, of kind: ScalarKind) -> Int {
        var e = index
        while e < end {
            let (c, next) = text.scalar(at: e)
            guard ScalarKind(c) == kind else { break }
            e = next
        }
        return e
    }

    /// `\s+(?!\S)|\s+`: the whole whitespace run at the end of the text, otherwise the run less
    /// its last scalar (which goes with the word after it), otherwise the single scalar.
    static func whitespaceEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        var e = start
        var lastStart = start
        while e < end {
            let (c, next) = text.scalar(at: e)
            guard ScalarKind(c).isWhitespace else { break }
            lastStart = e
            e = next
        }
        return e == end || lastStart == start ? e : lastStart
    }
}
