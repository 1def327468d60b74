/// Reading Unicode scalars straight out of valid UTF-8 bytes, and the character classes that
/// the splitting patterns and added-token rules are written in, without building `String`s.
extension UnsafeBufferPointer<UInt8> {
    /// The scalar value that starts at byte `index` and the index just after it.
    @inline(__always)
    func scalar(at index: Int) -> (value: UInt32, next: Int) {
        let b0 = UInt32(self[index])
        if b0 < 0x80 { return (b0, index + 1) }
        let b1 = UInt32(self[index + 1]) & 0x3F
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | b1, index + 2) }
        let b2 = UInt32(self[index + 2]) & 0x3F
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | b1 << 6 | b2, index + 3) }
        let b3 = UInt32(self[index + 3]) & 0x3F
        return ((b0 & 0x07) << 18 | b1 << 12 | b2 << 6 | b3, index + 4)
    }

    /// The scalar value that ends just before byte `index` and the index where it starts.
    @inline(__always)
    func scalar(before index: Int) -> (value: UInt32, start: Int) {
        var start = index - 1
        while self[start] & 0xC0 == 0x80 { start -= 1 }
        return (scalar(at: start).value, start)
    }
}

/// What a scalar is to the GPT-2 and Llama-3 splitting patterns: `\p{L}`, `\p{N}`, `[\r\n]`,
/// the rest of `\s` (the Unicode White_Space property, as in Oniguruma), or anything else.
enum ScalarKind {
    case letter, number, newline, space, other

    /// Whether the scalar is matched by `\s`.
    var isWhitespace: Bool { self == .space || self == .newline }

    /// The kind of scalar `value`, with a fast path for ASCII.
    @inline(__always)
    init(_ value: UInt32) {
        switch value {
        case 0x61...0x7A, 0x41...0x5A: self = .letter
        case 0x30...0x39: self = .number
        case 0x0A, 0x0D: self = .newline
        case 0x20, 0x09, 0x0B, 0x0C: self = .space
        case 0..<0x80: self = .other
        default: self = ScalarKind(nonASCII: value)
        }
    }

    private init(nonASCII value: UInt32) {
        guard let scalar = Unicode.Scalar(value) else {
            self = .other
            return
        }
        let properties = scalar.properties
        if properties.isWhitespace {
            self = .space
            return
        }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }
}

extension Unicode.Scalar.Properties {
    /// Whether the scalar is matched by the Unicode `\w` of Rust's `regex` crate (alphabetic,
    /// marks, decimal digits, connector punctuation, join controls), which decides `single_word`.
    var isRegexWordCharacter: Bool {
        if isAlphabetic || isJoinControl { return true }
        switch generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}

/// A scalar's Unicode general category as the DeepSeek-V3 and o200k patterns tell them apart
/// (`\p{Lu}`, `\p{Ll}`, `\p{M}`, `\p{P}`, `\p{S}`, …), with `[\r\n]` and the rest of `\s` (the
/// White_Space property, which no letter, mark, number, punctuation or symbol has) taken first.
enum ScalarCategory: UInt8 {
    /// `\p{Lu}` and `\p{Lt}`: the letters o200k reads as capitals only.
    case upperLetter
    /// `\p{Ll}`.
    case lowerLetter
    /// `\p{Lm}` and `\p{Lo}`: letters o200k reads as either case.
    case caselessLetter
    /// `\p{M}`: combining marks.
    case mark
    /// `\p{N}`.
    case number
    /// `\p{P}`.
    case punctuation
    /// `\p{S}`.
    case symbol
    /// `\r` or `\n`.
    case newline
    /// The rest of `\s`.
    case space
    /// Controls, formats, unassigned and private-use scalars.
    case other

    /// Whether the scalar is in `\p{L}`.
    var isLetter: Bool { self == .upperLetter || self == .lowerLetter || self == .caselessLetter }
    /// Whether the scalar is matched by `\s`.
    var isWhitespace: Bool { self == .newline || self == .space }

    /// The categories of the ASCII scalars, looked up rather than derived on the hot path.
    private static let ascii: [ScalarCategory] = (0..<0x80).map { ScalarCategory(deriving: UInt32($0)) }

    /// The category of scalar `value`.
    @inline(__always)
    init(_ value: UInt32) {
        self = value < 0x80 ? Self.ascii[Int(value)] : ScalarCategory(deriving: value)
    }

    private init(deriving value: UInt32) {
        guard let scalar = Unicode.Scalar(value) else {
            self = .other
            return
        }
        if value == 0x0A || value == 0x0D {
            self = .newline
            return
        }
        let properties = scalar.properties
        if properties.isWhitespace {
            self = .space
            return
        }
        switch properties.generalCategory {
        case .uppercaseLetter, .titlecaseLetter: self = .upperLetter
        case .lowercaseLetter: self = .lowerLetter
        case .modifierLetter, .otherLetter: self = .caselessLetter
        case .nonspacingMark, .spacingMark, .enclosingMark: self = .mark
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            self = .punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol: self = .symbol
        default: self = .other
        }
    }
}
