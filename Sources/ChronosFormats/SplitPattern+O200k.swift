/// The o200k pattern (GPT-4o, gpt-oss), whose words split where lower case turns to upper:
///
///     [^\r\n\p{L}\p{N}]?A*B+C?|[^\r\n\p{L}\p{N}]?A+B*C?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|
///     \s*[\r\n]+|\s+(?!\S)|\s+
///
/// with A = `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, B = `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` and C the
/// contractions `(?i:'s|'t|'re|'ve|'m|'ll|'d)`. Every scalar is a letter, a number, whitespace
/// or something else, so a match starts everywhere.
extension SplitPattern {
    /// The end of the o200k match that starts at `start`.
    static func o200kPieceEnd(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        let (c0, i1) = text.scalar(at: start)
        let k0 = ScalarCategory(c0)
        let takesPrefix = !(k0 == .newline || k0.isLetter || k0 == .number)
        // Each word alternative is tried with its optional leading scalar, then without it.
        if takesPrefix, i1 < end, let e = lowerTailEnd(text, i1, end) { return withContraction(text, e, end) }
        if let e = lowerTailEnd(text, start, end) { return withContraction(text, e, end) }
        if takesPrefix, i1 < end, let e = upperHeadEnd(text, i1, end) { return withContraction(text, e, end) }
        if let e = upperHeadEnd(text, start, end) { return withContraction(text, e, end) }
        if k0 == .number { return numbersEnd(text, start, end, maxCount: 3) ?? i1 }
        // Anything but whitespace, letters and numbers, after an optional space, then any newlines and slashes.
        let isRest = { (category: ScalarCategory) in !category.isWhitespace && !category.isLetter && category != .number }
        var restStart: Int? = isRest(k0) ? start : nil
        if c0 == space, i1 < end, isRest(ScalarCategory(text.scalar(at: i1).value)) { restStart = i1 }
        if let restStart {
            var e = run(text, restStart, end, isRest)
            while e < end, text[e] == 0x0A || text[e] == 0x0D || text[e] == 0x2F { e += 1 }
            return e
        }
        return lineBreakWhitespaceEnd(text, start, end)
    }

    /// `A*B+` at `index`: the longest run of A then B, where A gives back its last scalars that
    /// are also in B when nothing in B follows it; nil when no scalar of B can be found.
    private static func lowerTailEnd(_ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int) -> Int? {
        var e = index, afterLastShared: Int? = nil
        while e < end {
            let (c, next) = text.scalar(at: e)
            let category = ScalarCategory(c)
            guard isUpperOrCaseless(category) else {
                return isLowerOrCaseless(category) ? run(text, e, end, isLowerOrCaseless) : afterLastShared
            }
            if isLowerOrCaseless(category) { afterLastShared = next }
            e = next
        }
        return afterLastShared
    }

    /// `A+B*` at `index`; nil when the scalar there is not in A.
    private static func upperHeadEnd(_ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int) -> Int? {
        let e = run(text, index, end, isUpperOrCaseless)
        return e > index ? run(text, e, end, isLowerOrCaseless) : nil
    }

    /// `e`, or the end of the contraction that starts there.
    private static func withContraction(_ text: UnsafeBufferPointer<UInt8>, _ e: Int, _ end: Int) -> Int {
        guard e < end, text[e] == UInt8(apostrophe) else { return e }
        return contractionEnd(text, e + 1, end, ignoringCase: true) ?? e
    }

    /// A: `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
    private static func isUpperOrCaseless(_ category: ScalarCategory) -> Bool {
        category == .upperLetter || category == .caselessLetter || category == .mark
    }

    /// B: `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
    private static func isLowerOrCaseless(_ category: ScalarCategory) -> Bool {
        category == .lowerLetter || category == .caselessLetter || category == .mark
    }
}
