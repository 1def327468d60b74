/// A JSON-shaped value given to a chat template: a message with tool calls, a tool's schema.
/// Objects keep their keys in order, as Python dictionaries do, so `tojson` writes them in the
/// order they were given.
public enum JinjaValue: Equatable, Sendable {
    /// JSON `null`, Python `None`.
    case null
    /// A boolean.
    case bool(Bool)
    /// An integer.
    case int(Int)
    /// A floating-point number.
    case double(Double)
    /// A string.
    case string(String)
    /// A list.
    case array([JinjaValue])
    /// An object, its keys in order.
    case object([(key: String, value: JinjaValue)])

    /// Equal as Python values: objects compare by keys, whatever their order.
    public static func == (lhs: JinjaValue, rhs: JinjaValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && a.allSatisfy { pair in b.contains { $0.key == pair.key && $0.value == pair.value } }
        default: false
        }
    }

    /// The value of `key` in an object; nil otherwise.
    public subscript(key: String) -> JinjaValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.key == key }?.value
    }

    /// The value of the JSON text `json`, object keys in the order they are written.
    public init(json: String) throws(TokenizerError) {
        var parser = JSONScanner(scalars: Array(json.unicodeScalars))
        do throws(JSONScanner.Failure) {
            self = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.position == parser.scalars.count else { throw JSONScanner.Failure("trailing text") }
        } catch {
            throw .malformedFile(file: "JSON value", reason: "\(error.reason) at character \(parser.position)")
        }
    }
}

/// Reads JSON text scalar by scalar (keeping object keys in order, which `JSONSerialization`
/// does not).
private struct JSONScanner {
    struct Failure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    let scalars: [Unicode.Scalar]
    var position = 0

    init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    mutating func skipWhitespace() {
        while position < scalars.count, " \t\n\r".unicodeScalars.contains(scalars[position]) { position += 1 }
    }

    mutating func value(depth: Int) throws(Failure) -> JinjaValue {
        guard depth < 256 else { throw Failure("nesting deeper than 256") }
        skipWhitespace()
        guard position < scalars.count else { throw Failure("unexpected end") }
        switch scalars[position] {
        case "{":
            position += 1
            var pairs: [(key: String, value: JinjaValue)] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "}" {
                position += 1
                return .object(pairs)
            }
            while true {
                skipWhitespace()
                let key = try string()
                skipWhitespace()
                try expect(":")
                pairs.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                if try next(closing: "}") { return .object(pairs) }
            }
        case "[":
            position += 1
            var items: [JinjaValue] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "]" {
                position += 1
                return .array(items)
            }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                if try next(closing: "]") { return .array(items) }
            }
        case "\"": return .string(try string())
        case "t":
            try literal("true")
            return .bool(true)
        case "f":
            try literal("false")
            return .bool(false)
        case "n":
            try literal("null")
            return .null
        default: return try number()
        }
    }

    /// Consumes a `,` (false) or `closing` (true).
    private mutating func next(closing: Unicode.Scalar) throws(Failure) -> Bool {
        guard position < scalars.count else { throw Failure("unexpected end") }
        let scalar = scalars[position]
        position += 1
        if scalar == closing { return true }
        guard scalar == "," else { throw Failure("expected , or \(closing)") }
        return false
    }

    private mutating func expect(_ scalar: Unicode.Scalar) throws(Failure) {
        guard position < scalars.count, scalars[position] == scalar else { throw Failure("expected \(scalar)") }
        position += 1
    }

    private mutating func literal(_ word: String) throws(Failure) {
        for scalar in word.unicodeScalars { try expect(scalar) }
    }

    private mutating func number() throws(Failure) -> JinjaValue {
        let start = position
        while position < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[position]) { position += 1 }
        let text = String(String.UnicodeScalarView(scalars[start..<position]))
        if let integer = Int(text) { return .int(integer) }
        guard !text.isEmpty, let double = Double(text) else { throw Failure("expected a value") }
        return .double(double)
    }

    private mutating func string() throws(Failure) -> String {
        try expect("\"")
        var result = String.UnicodeScalarView()
        while position < scalars.count {
            let scalar = scalars[position]
            position += 1
            switch scalar {
            case "\"": return String(result)
            case "\\":
                guard position < scalars.count else { break }
                let escape = scalars[position]
                position += 1
                switch escape {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "b": result.append("\u{8}")
                case "f": result.append("\u{C}")
                case "u":
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code), position + 1 < scalars.count, scalars[position] == "\\",
                        scalars[position + 1] == "u"
                    {
                        position += 2
                        let low = try hex4()
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    result.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default: result.append(escape)
                }
            default: result.append(scalar)
            }
        }
        throw Failure("unterminated string")
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard position + 4 <= scalars.count,
            let code = UInt32(String(String.UnicodeScalarView(scalars[position..<position + 4])), radix: 16)
        else { throw Failure("bad \\u escape") }
        position += 4
        return code
    }
}
