import Foundation

/// The filters, tests, global functions, methods and operators of the template language, with
/// Python's semantics where Jinja defers to Python (string methods, `str()`, `json.dumps`).
enum JinjaBuiltins {
    /// Filters a template may use; any other is refused when the template is parsed.
    static let filters: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "items", "join", "last", "length", "list", "lower",
        "map", "reject", "rejectattr", "replace", "reverse", "safe", "select", "selectattr", "string", "title", "tojson", "trim",
        "upper"
    ]
    /// Tests (`is …`) a template may use; any other is refused when the template is parsed.
    static let tests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "even", "false", "float", "in", "integer", "iterable",
        "lower", "mapping", "ne", "!=", "none", "number", "odd", "sequence", "string", "true", "undefined", "upper"
    ]
    /// Global functions: transformers' `raise_exception` and `strftime_now`, and Jinja's own.
    static let globals: Set<String> = ["dict", "namespace", "raise_exception", "range", "strftime_now"]
    /// Python `str` methods; those outside the subset are refused when called.
    static let stringMethods: Set<String> = [
        "capitalize", "count", "endswith", "find", "format", "index", "isalnum", "isalpha", "isdigit", "islower", "isspace", "isupper",
        "join", "lower", "lstrip", "removeprefix", "removesuffix", "replace", "rfind", "rsplit", "rstrip", "split", "splitlines",
        "startswith", "strip", "title", "upper", "zfill"
    ]
    /// Python `dict` methods; those outside the subset are refused when called.
    static let dictionaryMethods: Set<String> = ["clear", "copy", "get", "items", "keys", "pop", "setdefault", "update", "values"]
    /// Python `list` methods; all are refused when called (the sandbox's lists are immutable).
    static let listMethods: Set<String> = [
        "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"
    ]

    // MARK: Conversions

    /// Python's `str(value)`, which `{{ }}`, `~` and `string` use.
    static func stringify(_ value: JinjaObject) -> String {
        switch value {
        case .undefined: ""
        case .string(let text): text
        default: representation(value)
        }
    }

    /// Python's `repr(value)`, as lists and dictionaries show their items.
    static func representation(_ value: JinjaObject) -> String {
        switch value {
        case .undefined: ""
        case .none: "None"
        case .bool(let value): value ? "True" : "False"
        case .int(let value): String(value)
        case .double(let value): pythonFloat(value)
        case .string(let text): quoted(text)
        case .list(let items): "[" + items.map(representation).joined(separator: ", ") + "]"
        case .dictionary(let pairs): "{" + pairs.map { quoted($0.key) + ": " + representation($0.value) }.joined(separator: ", ") + "}"
        case .namespace(let namespace):
            "<Namespace " + namespace.attributes.map { "\($0.key)=" + representation($0.value) }.joined(separator: ", ") + ">"
        case .function: "<function>"
        }
    }

    /// Python's `repr` of a float: the shortest text that reads back, `.0` on whole numbers,
    /// an exponent from 1e16 up and below 1e-4.
    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        let magnitude = abs(value)
        if magnitude >= 1e16 || (magnitude < 1e-4 && magnitude > 0) {
            var text = "\(value)"
            if let e = text.firstIndex(of: "e") {
                var exponent = String(text[text.index(after: e)...])
                let sign = exponent.hasPrefix("-") ? "-" : "+"
                exponent = String(exponent.drop { $0 == "-" || $0 == "+" })
                if exponent.count < 2 { exponent = "0" + exponent }
                var mantissa = String(text[..<e])
                if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
                text = mantissa + "e" + sign + exponent
            }
            return text
        }
        if value == value.rounded(.towardZero) { return String(format: "%.1f", value) }
        return "\(value)"
    }

    /// Python's quoting of a string: single quotes unless it holds one and no double quote.
    private static func quoted(_ text: String) -> String {
        let quote: Unicode.Scalar = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var result = String.UnicodeScalarView([quote])
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            case "\t": result.append(contentsOf: "\\t".unicodeScalars)
            case quote: result.append(contentsOf: ["\\", quote])
            case _ where scalar.value < 0x20 || (0x7F...0xA0).contains(scalar.value):
                result.append(contentsOf: String(format: "\\x%02x", scalar.value).unicodeScalars)
            default: result.append(scalar)
            }
        }
        result.append(quote)
        return String(result)
    }

    /// `json.dumps(value, ensure_ascii=…, indent=…, sort_keys=…)` as transformers' `tojson` calls it.
    static func json(_ value: JinjaObject, indent: Int?, sortKeys: Bool, ensureASCII: Bool, level: Int = 0, line: Int) throws(JinjaError)
        -> String
    {
        let newline = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) }
        let closing = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        let separator = indent == nil ? ", " : ","
        switch value {
        case .none: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value):
            return value.isNaN ? "NaN" : value.isInfinite ? (value < 0 ? "-Infinity" : "Infinity") : pythonFloat(value)
        case .string(let text): return jsonString(text, ensureASCII: ensureASCII)
        case .list(let items):
            guard !items.isEmpty else { return "[]" }
            let parts = try items.map { item throws(JinjaError) in
                (newline ?? "")
                    + (try json(item, indent: indent, sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1, line: line))
            }
            return "[" + parts.joined(separator: separator) + closing + "]"
        case .dictionary(var pairs):
            guard !pairs.isEmpty else { return "{}" }
            if sortKeys {
                pairs.sort { Array($0.key.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.key.unicodeScalars.map(\.value)) }
            }
            let parts = try pairs.map { pair throws(JinjaError) in
                let inner = try json(pair.value, indent: indent, sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1, line: line)
                return (newline ?? "") + jsonString(pair.key, ensureASCII: ensureASCII) + ": " + inner
            }
            return "{" + parts.joined(separator: separator) + closing + "}"
        case .undefined, .namespace, .function:
            throw JinjaError(line: line, message: "Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private static func jsonString(_ text: String, ensureASCII: Bool) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{8}": result += "\\b"
            case "\u{C}": result += "\\f"
            case _ where scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E):
                for unit in String(scalar).utf16 { result += String(format: "\\u%04x", unit) }
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    // MARK: Operators

    /// Python's equality: numbers across int, float and bool; lists item by item; dictionaries
    /// key by key, whatever their order.
    static func equal(_ a: JinjaObject, _ b: JinjaObject) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.list(let x), .list(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dictionary(let x), .dictionary(let y)):
            return x.count == y.count && x.allSatisfy { pair in y.contains { $0.key == pair.key && equal($0.value, pair.value) } }
        case (.namespace(let x), .namespace(let y)): return x === y
        default:
            if let x = number(a), let y = number(b) { return x == y }
            return false
        }
    }

    /// A number's value, booleans counting as 0 and 1.
    static func number(_ value: JinjaObject) -> Double? {
        switch value {
        case .bool(let value): value ? 1 : 0
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// An integer's value, booleans counting as 0 and 1.
    static func integer(_ value: JinjaObject) -> Int? {
        switch value {
        case .bool(let value): value ? 1 : 0
        case .int(let value): value
        default: nil
        }
    }

    /// One comparison of a chain: `==`, `!=`, `<`, `>`, `<=`, `>=`, `in`, `not in`.
    static func compare(_ op: String, _ a: JinjaObject, _ b: JinjaObject, line: Int) throws(JinjaError) -> Bool {
        switch op {
        case "==": return equal(a, b)
        case "!=": return !equal(a, b)
        case "in": return try contains(b, a, line: line)
        case "not in": return !(try contains(b, a, line: line))
        default:
            let order = try ordering(a, b, op: op, line: line)
            switch op {
            case "<": return order < 0
            case ">": return order > 0
            case "<=": return order <= 0
            default: return order >= 0
            }
        }
    }

    private static func ordering(_ a: JinjaObject, _ b: JinjaObject, op: String, line: Int) throws(JinjaError) -> Int {
        if let x = integer(a), let y = integer(b) { return x < y ? -1 : x > y ? 1 : 0 }
        if let x = number(a), let y = number(b) { return x < y ? -1 : x > y ? 1 : 0 }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            let (p, q) = (x.unicodeScalars.map(\.value), y.unicodeScalars.map(\.value))
            return p.elementsEqual(q) ? 0 : p.lexicographicallyPrecedes(q) ? -1 : 1
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try ordering(p, q, op: op, line: line) }
            return x.count < y.count ? -1 : x.count > y.count ? 1 : 0
        default:
            throw JinjaError(line: line, message: "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    /// Python's `item in container`.
    static func contains(_ container: JinjaObject, _ item: JinjaObject, line: Int) throws(JinjaError) -> Bool {
        switch (container, item) {
        case (.string(let text), .string(let part)): return part.isEmpty || find(Array(part.utf8), in: Array(text.utf8), from: 0) != nil
        case (.string, _): throw JinjaError(line: line, message: "'in <string>' requires string as left operand, not \(item.typeName)")
        case (.list(let items), _): return items.contains { equal($0, item) }
        case (.dictionary(let pairs), .string(let key)): return pairs.contains { $0.key == key }
        case (.dictionary, _), (.undefined, _): return false
        default: throw JinjaError(line: line, message: "argument of type '\(container.typeName)' is not iterable")
        }
    }

    /// `+ - * / // % **` and `~`, as Python computes them; integer overflow is an error.
    static func arithmetic(_ op: String, _ a: JinjaObject, _ b: JinjaObject, line: Int) throws(JinjaError) -> JinjaObject {
        func failure() -> JinjaError {
            for case .undefined(let reason) in [a, b] { return JinjaError(line: line, message: reason) }
            return JinjaError(line: line, message: "unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws(JinjaError) -> JinjaObject {
            guard !result.overflow else { throw JinjaError(line: line, message: "integer overflow in \(op)") }
            return .int(result.partialValue)
        }
        func bounded(_ text: String) throws(JinjaError) -> JinjaObject {
            guard text.utf8.count <= JinjaInterpreter.maximumOutput else {
                throw JinjaError(line: line, message: "a string grew past \(JinjaInterpreter.maximumOutput) bytes")
            }
            return .string(text)
        }
        if op == "~" { return try bounded(stringify(a) + stringify(b)) }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return try bounded(x + y)
        case ("+", .list(let x), .list(let y)): return .list(x + y)
        case ("*", .string(let x), _), ("*", _, .string(let x)):
            guard let count = integer(a) ?? integer(b) else { throw failure() }
            guard count <= 0 || x.utf8.count <= JinjaInterpreter.maximumOutput / count else {
                throw JinjaError(line: line, message: "a string grew past \(JinjaInterpreter.maximumOutput) bytes")
            }
            return .string(String(repeating: x, count: max(0, count)))
        case ("%", .string, _): throw JinjaError(line: line, message: "unsupported construct: string formatting with '%'")
        default: break
        }
        if let x = integer(a), let y = integer(b) {
            switch op {
            case "+": return try checked(x.addingReportingOverflow(y))
            case "-": return try checked(x.subtractingReportingOverflow(y))
            case "*": return try checked(x.multipliedReportingOverflow(by: y))
            case "/":
                guard y != 0 else { throw JinjaError(line: line, message: "division by zero") }
                return .double(Double(x) / Double(y))
            case "//", "%":
                guard y != 0 else { throw JinjaError(line: line, message: "integer division or modulo by zero") }
                guard !(x == .min && y == -1) else { throw JinjaError(line: line, message: "integer overflow in \(op)") }
                var quotient = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { quotient -= 1 }
                return .int(op == "//" ? quotient : x - quotient * y)
            case "**":
                guard y >= 0 else { return .double(pow(Double(x), Double(y))) }
                if y == 0 || x == 1 { return .int(1) }
                if x == 0 || x == -1 { return .int(x == 0 ? 0 : (y % 2 == 0 ? 1 : -1)) }
                // |x| ≥ 2 overflows within 63 factors, so this loop is short.
                var result = 1
                for _ in 0..<y {
                    let product = result.multipliedReportingOverflow(by: x)
                    guard !product.overflow else { throw JinjaError(line: line, message: "integer overflow in **") }
                    result = product.partialValue
                }
                return .int(result)
            default: break
            }
        }
        guard let x = number(a), let y = number(b) else { throw failure() }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/", "//", "%":
            guard y != 0 else { throw JinjaError(line: line, message: "float division by zero") }
            if op == "/" { return .double(x / y) }
            let quotient = (x / y).rounded(.down)
            return .double(op == "//" ? quotient : x - quotient * y)
        case "**": return .double(pow(x, y))
        default: throw failure()
        }
    }

    // MARK: Strings

    /// The index of `needle` in `haystack` from `start` (UTF-8 bytes: valid UTF-8 only matches
    /// on scalar boundaries, so this finds what Python's `str.find` finds).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    /// Python's `str.split(sep, maxsplit)`; without `sep`, on runs of whitespace.
    static func split(_ text: String, separator: String?, limit: Int) -> [String] {
        guard let separator else {
            var parts: [String] = []
            var current = String.UnicodeScalarView()
            var scalars = text.unicodeScalars[...]
            while let scalar = scalars.first {
                scalars = scalars.dropFirst()
                if scalar.isPythonWhitespace {
                    if !current.isEmpty {
                        parts.append(String(current))
                        current = String.UnicodeScalarView()
                        if limit >= 0, parts.count == limit {
                            let rest = String(scalars).drop { $0.unicodeScalars.allSatisfy(\.isPythonWhitespace) }
                            if !rest.isEmpty { parts.append(String(rest)) }
                            return parts
                        }
                    }
                } else {
                    current.append(scalar)
                }
            }
            if !current.isEmpty { parts.append(String(current)) }
            return parts
        }
        let bytes = Array(text.utf8)
        let needle = Array(separator.utf8)
        var parts: [String] = []
        var start = 0
        while limit < 0 || parts.count < limit, let found = find(needle, in: bytes, from: start) {
            parts.append(String(decoding: bytes[start..<found], as: UTF8.self))
            start = found + needle.count
        }
        parts.append(String(decoding: bytes[start...], as: UTF8.self))
        return parts
    }

    /// Python's `str.replace(old, new, count)`.
    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        if old.isEmpty {
            var result = String.UnicodeScalarView()
            var inserted = 0
            for scalar in text.unicodeScalars {
                if count < 0 || inserted < count {
                    result.append(contentsOf: new.unicodeScalars)
                    inserted += 1
                }
                result.append(scalar)
            }
            if count < 0 || inserted < count { result.append(contentsOf: new.unicodeScalars) }
            return String(result)
        }
        let parts = split(text, separator: old, limit: count)
        return parts.joined(separator: new)
    }

    /// Python's `str.strip(chars)` on the chosen ends; without `chars`, whitespace.
    static func strip(_ text: String, _ characters: String?, leading: Bool, trailing: Bool) -> String {
        let set = characters.map { Set($0.unicodeScalars) }
        func stripped(_ scalar: Unicode.Scalar) -> Bool { set?.contains(scalar) ?? scalar.isPythonWhitespace }
        var scalars = text.unicodeScalars[...]
        if leading { scalars = scalars.drop(while: stripped) }
        if trailing {
            while let last = scalars.last, stripped(last) { scalars = scalars.dropLast() }
        }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Python's `str.title()`: a cased letter after an uncased character is upper case, others lower.
    static func title(_ text: String) -> String {
        var result = ""
        var previousCased = false
        for character in text {
            let cased = character.isCased
            result += previousCased ? character.lowercased() : character.uppercased()
            previousCased = cased
        }
        return result
    }

    static func capitalize(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst().lowercased()
    }

    // MARK: Arguments

    /// The argument in position `index` or named `name`, if given.
    static func argument(
        _ positional: [JinjaObject], _ named: [(String, JinjaObject)], _ index: Int, _ name: String
    ) -> JinjaObject? {
        if index < positional.count { return positional[index] }
        return named.first { $0.0 == name }?.1
    }

    static func string(_ value: JinjaObject?, _ what: String, line: Int) throws(JinjaError) -> String? {
        switch value {
        case nil, .none?: return nil
        case .string(let text)?: return text
        case let other?: throw JinjaError(line: line, message: "\(what) must be a string, not '\(other.typeName)'")
        }
    }

    static func int(_ value: JinjaObject?, _ what: String, line: Int) throws(JinjaError) -> Int? {
        switch value {
        case nil, .none?: return nil
        case let value?:
            guard let integer = integer(value) else {
                throw JinjaError(line: line, message: "\(what) must be an integer, not '\(value.typeName)'")
            }
            return integer
        }
    }
}

extension Character {
    /// Whether the character has case (a letter with upper and lower forms).
    fileprivate var isCased: Bool { isUppercase || isLowercase }
}
