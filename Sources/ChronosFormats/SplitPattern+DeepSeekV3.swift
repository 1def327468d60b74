/// DeepSeek-V3's three splitting patterns, which its `tokenizer.json` applies one after another:
/// number runs, then CJK and kana runs, then words, punctuation and whitespace. Unlike the
/// GPT-2 and Llama-3 patterns they do not match everywhere: a scalar no alternative takes (a
/// number inside the third pattern's pieces, a lone control or format scalar) stays in the gap
/// between matches, which is a piece of its own.
extension SplitPattern {
    /// `\p{N}{1,n}`: up to `maxCount` numbers; nil when the scalar at `start` is not one.
    static func numbersEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, maxCount: Int) -> Int? {
        var e = start, count = 0
        while count < maxCount, e < end {
            let (c, next) = text.scalar(at: e)
            guard ScalarCategory(c) == .number else { break }
            e = next
            count += 1
        }
        return count > 0 ? e : nil
    }

    /// `[一-龥぀-ゟ゠-ヿ]+`: CJK ideographs U+4E00–U+9FA5, hiragana U+3040–U+309F and katakana
    /// U+30A0–U+30FF.
    static func hanKanaEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        var e = start
        while e < end {
            let (c, next) = text.scalar(at: e)
            guard (0x4E00...0x9FA5).contains(c) || (0x3040...0x30FF).contains(c) else { break }
            e = next
        }
        return e > start ? e : nil
    }

    /// `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|`
    /// ` ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    static func deepSeekWordsEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        let (c0, i1) = text.scalar(at: start)
        let k0 = ScalarCategory(c0)
        // An ASCII punctuation mark and the ASCII letters after it.
        if isASCIIPunctuation(c0) {
            var e = i1
            while e < end, isASCIILetter(text[e]) { e += 1 }
            if e > i1 { return e }
        }
        // Letters and marks, after one scalar that is none of \r, \n, a letter, punctuation or a symbol.
        let takesPrefix = !(k0 == .newline || k0.isLetter || k0 == .punctuation || k0 == .symbol)
        if takesPrefix, i1 < end {
            let e = run(text, i1, end) { $0.isLetter || $0 == .mark }
            if e > i1 { return e }
        }
        if k0.isLetter || k0 == .mark { return run(text, start, end) { $0.isLetter || $0 == .mark } }
        // Punctuation and symbols, after an optional space, then any newlines.
        let isMark = { (category: ScalarCategory) in category == .punctuation || category == .symbol }
        var marksStart: Int? = isMark(k0) ? start : nil
        if c0 == space, i1 < end, isMark(ScalarCategory(text.scalar(at: i1).value)) { marksStart = i1 }
        if let marksStart {
            var e = run(text, marksStart, end, isMark)
            while e < end, text[e] == 0x0A || text[e] == 0x0D { e += 1 }
            return e
        }
        return k0.isWhitespace ? lineBreakWhitespaceEnd(text, start, end) : nil
    }

    /// The end of the run of scalars whose category satisfies `member`, from `index`.
    @inline(__always)
    static func run(
        _ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int, _ member: (ScalarCategory) -> Bool
    ) -> Int {
        var e = index
        while e < end {
            let (c, next) = text.scalar(at: e)
            guard member(ScalarCategory(c)) else { break }
            e = next
        }
        return e
    }

    /// Whether `c` is one of the 32 ASCII punctuation marks and symbols.
    private static func isASCIIPunctuation(_ c: UInt32) -> Bool {
        (0x21...0x2F).contains(c) || (0x3A...0x40).contains(c) || (0x5B...0x60).contains(c) || (0x7B...0x7E).contains(c)
    }

    /// Whether `byte` is `[A-Za-z]`.
    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}
