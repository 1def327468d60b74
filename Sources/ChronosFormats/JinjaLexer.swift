/// Why a chat template could not be parsed or rendered, and the template line at fault.
struct JinjaError: Error {
    /// The 1-based template line.
    let line: Int
    /// What went wrong.
    let message: String
    /// Whether the template itself raised it with `raise_exception`.
    var raised = false
}

/// A token of the expression language inside `{{ }}` and `{% %}`.
enum JinjaToken: Equatable, Sendable {
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case symbol(String)
}

/// A token and the line it starts on.
struct LexedToken: Sendable {
    let token: JinjaToken
    let line: Int
}

/// A stretch of template source: literal text, an output tag `{{ }}` or a statement `{% %}`.
enum JinjaPiece: Sendable {
    case text(String)
    case output([LexedToken], line: Int)
    case statement([LexedToken], line: Int)
}

/// Splits a template into text, output tags and statements, applying whitespace control as
/// transformers' Jinja environment does: `trim_blocks` (the newline after a block or comment
/// tag is dropped), `lstrip_blocks` (spaces and tabs before a block or comment tag at the start
/// of a line are dropped), `{%-`/`-%}` (all whitespace on that side is dropped), `{%+` (no
/// lstrip), and the template's one trailing newline dropped (`keep_trailing_newline=False`).
struct JinjaLexer {
    private let source: [Unicode.Scalar]
    private var position = 0
    private var line = 1
    private var pieces: [JinjaPiece] = []

    /// The pieces of `template`.
    static func pieces(of template: String) throws(JinjaError) -> [JinjaPiece] {
        var lexer = JinjaLexer(template)
        try lexer.run()
        return lexer.pieces
    }

    private init(_ template: String) {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(template.unicodeScalars.count)
        var iterator = template.unicodeScalars.makeIterator()
        var pending = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if scalar == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = iterator.next() }
            } else {
                scalars.append(scalar)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        source = scalars
    }

    private mutating func run() throws(JinjaError) {
        var lineStarting = true
        while position < source.count {
            guard let opening = nextOpening() else {
                appendText(source[position...])
                break
            }
            var text = source[position..<opening]
            let kind = source[opening + 1]
            let sign: Unicode.Scalar? =
                opening + 2 < source.count && "-+".unicodeScalars.contains(source[opening + 2]) ? source[opening + 2] : nil
            let textLines = text.count { $0 == "\n" }
            if sign == "-" {
                while let last = text.last, last.isPythonWhitespace { text = text.dropLast() }
            } else if sign != "+", kind != "{" {
                let lineStart = (text.lastIndex(of: "\n") ?? (text.startIndex - 1)) + 1
                let tail = text[lineStart...]
                if lineStart > text.startIndex || lineStarting, !tail.isEmpty, tail.allSatisfy(\.isPythonWhitespace) {
                    text = text[..<lineStart]
                }
            }
            appendText(text)
            line += textLines
            position = opening + 2 + (sign == nil ? 0 : 1)
            let tagLine = line
            if kind == "#" {
                try skipComment(from: tagLine)
            } else {
                let tokens = try tagTokens(closing: kind == "{" ? "}" : "%", tagLine: tagLine)
                pieces.append(kind == "{" ? .output(tokens, line: tagLine) : .statement(tokens, line: tagLine))
            }
            lineStarting = position > 0 && source[position - 1] == "\n"
        }
    }

    private mutating func appendText(_ text: ArraySlice<Unicode.Scalar>) {
        guard !text.isEmpty else { return }
        pieces.append(.text(String(String.UnicodeScalarView(text))))
    }

    /// The index of the next `{{`, `{%` or `{#`.
    private func nextOpening() -> Int? {
        var index = position
        while index + 1 < source.count {
            if source[index] == "{", "{%#".unicodeScalars.contains(source[index + 1]) { return index }
            index += 1
        }
        return nil
    }

    /// Skips a comment up to its `#}`, with `-#}` and `trim_blocks` applied after it.
    private mutating func skipComment(from tagLine: Int) throws(JinjaError) {
        while position + 1 < source.count, !(source[position] == "#" && source[position + 1] == "}") {
            if source[position] == "\n" { line += 1 }
            position += 1
        }
        guard position + 1 < source.count else { throw JinjaError(line: tagLine, message: "comment is not closed with #}") }
        let stripAfter = source[position - 1] == "-"
        position += 2
        finishTag(stripAfter: stripAfter, trimNewline: true)
    }

    /// After a tag: `-` drops all whitespace; `trim_blocks` drops one newline after a block.
    private mutating func finishTag(stripAfter: Bool, trimNewline: Bool) {
        if stripAfter {
            while position < source.count, source[position].isPythonWhitespace {
                if source[position] == "\n" { line += 1 }
                position += 1
            }
        } else if trimNewline, position < source.count, source[position] == "\n" {
            line += 1
            position += 1
        }
    }

    /// The tokens of a tag up to its `}}` or `%}` (brackets balanced), consuming the closing.
    private mutating func tagTokens(closing: Unicode.Scalar, tagLine: Int) throws(JinjaError) -> [LexedToken] {
        var tokens: [LexedToken] = []
        var depth = 0
        while true {
            while position < source.count, source[position].isPythonWhitespace {
                if source[position] == "\n" { line += 1 }
                position += 1
            }
            guard position < source.count else {
                throw JinjaError(line: tagLine, message: "tag is not closed with \(closing)}")
            }
            if depth == 0, startsClosing(at: position, closing) {
                position += 2
                finishTag(stripAfter: false, trimNewline: closing == "%")
                return tokens
            }
            if depth == 0, source[position] == "-", startsClosing(at: position + 1, closing) {
                position += 3
                finishTag(stripAfter: true, trimNewline: false)
                return tokens
            }
            let token = try nextToken()
            if case .symbol(let symbol) = token {
                if "([{".contains(symbol) { depth += 1 }
                if ")]}".contains(symbol) { depth = max(0, depth - 1) }
            }
            tokens.append(LexedToken(token: token, line: line))
        }
    }

    private func startsClosing(at index: Int, _ closing: Unicode.Scalar) -> Bool {
        index + 1 < source.count && source[index] == closing && source[index + 1] == "}"
    }

    private mutating func nextToken() throws(JinjaError) -> JinjaToken {
        let scalar = source[position]
        if scalar == "_" || isASCIILetter(scalar) {
            let start = position
            while position < source.count, source[position] == "_" || isASCIILetter(source[position]) || source[position].isDigit {
                position += 1
            }
            return .name(String(String.UnicodeScalarView(source[start..<position])))
        }
        if scalar.isDigit { return try number() }
        if scalar == "'" || scalar == "\"" { return .string(try stringLiteral(quote: scalar)) }
        for symbol in ["//", "**", "==", "!=", "<=", ">="] where matches(symbol) {
            position += 2
            return .symbol(symbol)
        }
        guard "+-*/%~<>=()[]{}.,:|".unicodeScalars.contains(scalar) else {
            throw JinjaError(line: line, message: "unexpected character \(String(scalar).debugDescription) in a tag")
        }
        position += 1
        return .symbol(String(scalar))
    }

    private func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private func matches(_ symbol: String) -> Bool {
        let scalars = Array(symbol.unicodeScalars)
        return position + scalars.count <= source.count && Array(source[position..<position + scalars.count]) == scalars
    }

    private mutating func number() throws(JinjaError) -> JinjaToken {
        let start = position
        func digits() { while position < source.count, source[position].isDigit || source[position] == "_" { position += 1 } }
        digits()
        var isFloat = false
        if position + 1 < source.count, source[position] == ".", source[position + 1].isDigit {
            isFloat = true
            position += 1
            digits()
        }
        if position < source.count, source[position] == "e" || source[position] == "E" {
            var next = position + 1
            if next < source.count, source[next] == "+" || source[next] == "-" { next += 1 }
            if next < source.count, source[next].isDigit {
                isFloat = true
                position = next
                digits()
            }
        }
        let text = String(String.UnicodeScalarView(source[start..<position])).replacing("_", with: "")
        if !isFloat, let integer = Int(text) { return .integer(integer) }
        guard let double = Double(text) else { throw JinjaError(line: line, message: "number \(text) is out of range") }
        return .float(double)
    }

    /// A quoted string with Python's escapes resolved (`\n`, `\t`, `\xHH`, `\uHHHH`, …); an
    /// unknown escape keeps its backslash, as Python's `unicode-escape` codec does.
    private mutating func stringLiteral(quote: Unicode.Scalar) throws(JinjaError) -> String {
        let startLine = line
        position += 1
        var result = String.UnicodeScalarView()
        while position < source.count {
            let scalar = source[position]
            position += 1
            if scalar == "\n" { line += 1 }
            if scalar == quote { return String(result) }
            guard scalar == "\\", position < source.count else {
                result.append(scalar)
                continue
            }
            let escape = source[position]
            position += 1
            switch escape {
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            case "b": result.append("\u{8}")
            case "f": result.append("\u{C}")
            case "v": result.append("\u{B}")
            case "a": result.append("\u{7}")
            case "\\", "'", "\"": result.append(escape)
            case "\n": line += 1
            case "x", "u", "U":
                let width = escape == "x" ? 2 : escape == "u" ? 4 : 8
                guard position + width <= source.count,
                    let code = UInt32(String(String.UnicodeScalarView(source[position..<position + width])), radix: 16),
                    let decoded = Unicode.Scalar(code)
                else { throw JinjaError(line: line, message: "bad \\\(escape) escape in a string") }
                position += width
                result.append(decoded)
            case "0"..."7":
                var code = UInt32(escape.value - 48)
                var count = 1
                while count < 3, position < source.count, ("0"..."7").contains(source[position]) {
                    code = code * 8 + source[position].value - 48
                    position += 1
                    count += 1
                }
                result.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default:
                result.append("\\")
                result.append(escape)
            }
        }
        throw JinjaError(line: startLine, message: "string is not closed")
    }
}

extension Unicode.Scalar {
    /// Whitespace as Python's `str.isspace` and the regular expression `\s` see it.
    var isPythonWhitespace: Bool {
        switch value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    fileprivate var isDigit: Bool { ("0"..."9").contains(self) }
}
