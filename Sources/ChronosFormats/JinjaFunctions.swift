import Foundation

/// The filters, tests, methods and global functions that chat templates call.
extension JinjaBuiltins {
    // MARK: Filters

    static func filter(
        _ name: String, _ value: JinjaObject, _ positional: [JinjaObject], _ named: [(String, JinjaObject)], line: Int,
        interpreter: JinjaInterpreter
    ) throws(JinjaError) -> JinjaObject {
        func arg(_ index: Int, _ key: String) -> JinjaObject? { argument(positional, named, index, key) }
        switch name {
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .string("")
            if case .undefined = value { return fallback }
            return arg(1, "boolean")?.isTruthy == true && !value.isTruthy ? fallback : value
        case "safe": return value
        case "string": return .string(stringify(value))
        case "trim":
            return .string(strip(stringify(value), try string(arg(0, "chars"), "trim's chars", line: line), leading: true, trailing: true))
        case "upper": return .string(stringify(value).uppercased())
        case "lower": return .string(stringify(value).lowercased())
        case "title": return .string(title(stringify(value)))
        case "capitalize": return .string(capitalize(stringify(value)))
        case "replace":
            guard let old = try string(arg(0, "old"), "replace's old", line: line),
                let new = try string(arg(1, "new"), "replace's new", line: line)
            else { throw JinjaError(line: line, message: "replace takes the old and the new text") }
            return .string(replace(stringify(value), old, new, count: try int(arg(2, "count"), "replace's count", line: line) ?? -1))
        case "length", "count":
            switch value {
            case .string(let text): return .int(text.unicodeScalars.count)
            case .list(let items): return .int(items.count)
            case .dictionary(let pairs): return .int(pairs.count)
            case .undefined: return .int(0)
            default: throw JinjaError(line: line, message: "object of type '\(value.typeName)' has no len()")
            }
        case "first", "last":
            let items = try interpreter.iterate(value, line: line)
            return (name == "first" ? items.first : items.last) ?? .undefined("\(name) of an empty sequence")
        case "list": return .list(try interpreter.iterate(value, line: line))
        case "reverse":
            if case .string(let text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
            return .list(try interpreter.iterate(value, line: line).reversed())
        case "items":
            switch value {
            case .undefined: return .list([])
            case .dictionary(let pairs): return .list(pairs.map { .list([.string($0.key), $0.value]) })
            default: throw JinjaError(line: line, message: "items needs a mapping, not '\(value.typeName)'")
            }
        case "join":
            let separator = try string(arg(0, "d"), "join's separator", line: line) ?? ""
            var items = try interpreter.iterate(value, line: line)
            if let attribute = try string(arg(1, "attribute"), "join's attribute", line: line) {
                items = try items.map { item throws(JinjaError) in try path(attribute, of: item, line: line, interpreter: interpreter) }
            }
            let joined = items.map(stringify).joined(separator: separator)
            guard joined.utf8.count <= JinjaInterpreter.maximumOutput else {
                throw JinjaError(line: line, message: "a string grew past \(JinjaInterpreter.maximumOutput) bytes")
            }
            return .string(joined)
        case "tojson":
            // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
            if let separators = arg(2, "separators") {
                guard case .none = separators else {
                    throw JinjaError(line: line, message: "unsupported construct: tojson with separators")
                }
            }
            return .string(
                try json(
                    value, indent: try int(arg(1, "indent"), "tojson's indent", line: line),
                    sortKeys: arg(3, "sort_keys")?.isTruthy ?? false,
                    ensureASCII: arg(0, "ensure_ascii")?.isTruthy ?? false, line: line))
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            switch value {
            case .int, .bool: return .int(integer(value) ?? 0)
            case .double(let number): return number.isFinite && abs(number) < 9e18 ? .int(Int(number)) : fallback
            case .string(let text):
                return Int(strip(text, nil, leading: true, trailing: true).replacing("_", with: "")).map { .int($0) } ?? fallback
            default: return fallback
            }
        case "float":
            let fallback = arg(0, "default") ?? .double(0)
            switch value {
            case .int, .bool, .double: return .double(number(value) ?? 0)
            case .string(let text): return Double(strip(text, nil, leading: true, trailing: true)).map { .double($0) } ?? fallback
            default: return fallback
            }
        case "abs":
            switch value {
            case .int(let number) where number != .min: return .int(abs(number))
            case .bool(let flag): return .int(flag ? 1 : 0)
            case .double(let number): return .double(abs(number))
            default: throw JinjaError(line: line, message: "bad operand type for abs(): '\(value.typeName)'")
            }
        case "map":
            let items = try interpreter.iterate(value, line: line)
            if let attribute = try string(argument([], named, 0, "attribute"), "map's attribute", line: line) {
                let fallback = named.first { $0.0 == "default" }?.1
                return .list(
                    try items.map { item throws(JinjaError) in
                        let found = try path(attribute, of: item, line: line, interpreter: interpreter)
                        if case .undefined = found, let fallback { return fallback }
                        return found
                    })
            }
            guard case .string(let filterName)? = positional.first, filters.contains(filterName), filterName != "map" else {
                throw JinjaError(line: line, message: "map takes attribute= or the name of a filter")
            }
            let rest = Array(positional.dropFirst())
            return .list(
                try items.map { item throws(JinjaError) in try filter(filterName, item, rest, [], line: line, interpreter: interpreter) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = positional
            var attribute: String?
            if byAttribute {
                guard case .string(let attributeName)? = rest.first else {
                    throw JinjaError(line: line, message: "\(name) takes an attribute name")
                }
                attribute = attributeName
                rest.removeFirst()
            }
            var testName: String?
            if !rest.isEmpty {
                guard case .string(let given) = rest.removeFirst(), tests.contains(given) else {
                    throw JinjaError(line: line, message: "\(name) takes the name of a known test")
                }
                testName = given
            }
            var kept: [JinjaObject] = []
            for item in try interpreter.iterate(value, line: line) {
                let subject =
                    try attribute.map { a throws(JinjaError) in try path(a, of: item, line: line, interpreter: interpreter) } ?? item
                let passes = try testName.map { t throws(JinjaError) in try test(t, subject, rest, line: line) } ?? subject.isTruthy
                if passes == keep { kept.append(item) }
            }
            return .list(kept)
        default: throw JinjaError(line: line, message: "unknown filter '\(name)'")
        }
    }

    /// `item.a.b` for the dotted attribute names that `map`, `join` and `selectattr` take.
    private static func path(_ dotted: String, of item: JinjaObject, line: Int, interpreter: JinjaInterpreter) throws(JinjaError)
        -> JinjaObject
    {
        var value = item
        for part in dotted.split(separator: ".") {
            let key: JinjaObject = Int(part).map { .int($0) } ?? .string(String(part))
            if case .undefined = value { return value }
            value = try interpreter.item(key, of: value, line: line)
        }
        return value
    }

    // MARK: Tests

    static func test(_ name: String, _ value: JinjaObject, _ arguments: [JinjaObject], line: Int) throws(JinjaError) -> Bool {
        func other() throws(JinjaError) -> JinjaObject {
            guard let first = arguments.first else { throw JinjaError(line: line, message: "test '\(name)' needs an argument") }
            return first
        }
        switch name {
        case "defined": if case .undefined = value { return false } else { return true }
        case "undefined": if case .undefined = value { return true } else { return false }
        case "none": if case .none = value { return true } else { return false }
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dictionary = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "callable": if case .function = value { return true } else { return false }
        case "number": return number(value) != nil
        case "sequence", "iterable":
            switch value {
            case .string, .list, .dictionary: return true
            case .undefined: return name == "iterable"
            default: return false
            }
        case "lower":
            if case .string(let text) = value { return text == text.lowercased() && text != text.uppercased() } else { return false }
        case "upper":
            if case .string(let text) = value { return text == text.uppercased() && text != text.lowercased() } else { return false }
        case "odd", "even", "divisibleby":
            guard let number = integer(value) else { throw JinjaError(line: line, message: "test '\(name)' needs an integer") }
            if name == "odd" { return number % 2 != 0 }
            if name == "even" { return number % 2 == 0 }
            guard let divisor = integer(try other()), divisor != 0 else {
                throw JinjaError(line: line, message: "divisibleby needs a non-zero integer")
            }
            return number % divisor == 0
        case "eq", "equalto", "==": return equal(value, try other())
        case "ne", "!=": return !equal(value, try other())
        case "in": return try contains(try other(), value, line: line)
        default: throw JinjaError(line: line, message: "unknown test '\(name)'")
        }
    }

    // MARK: Methods

    static func callMethod(
        _ name: String, on receiver: JinjaObject, _ positional: [JinjaObject], _ named: [(String, JinjaObject)], line: Int
    ) throws(JinjaError) -> JinjaObject {
        func arg(_ index: Int, _ key: String) -> JinjaObject? { argument(positional, named, index, key) }
        switch (receiver, name) {
        case (.string(let text), "strip"), (.string(let text), "lstrip"), (.string(let text), "rstrip"):
            let characters = try string(arg(0, "chars"), "\(name)'s chars", line: line)
            return .string(strip(text, characters, leading: name != "rstrip", trailing: name != "lstrip"))
        case (.string(let text), "startswith"), (.string(let text), "endswith"):
            let candidates: [JinjaObject]
            switch arg(0, "prefix") {
            case .list(let items)?: candidates = items
            case let single?: candidates = [single]
            case nil: throw JinjaError(line: line, message: "\(name) takes a string")
            }
            let bytes = Array(text.utf8)
            for candidate in candidates {
                guard case .string(let affix) = candidate else { throw JinjaError(line: line, message: "\(name) takes strings") }
                let part = Array(affix.utf8)
                if name == "startswith" ? bytes.starts(with: part) : bytes.reversed().starts(with: part.reversed()) { return .bool(true) }
            }
            return .bool(false)
        case (.string(let text), "split"):
            let separator = try string(arg(0, "sep"), "split's separator", line: line)
            guard separator != "" else { throw JinjaError(line: line, message: "empty separator") }
            return .list(
                split(text, separator: separator, limit: try int(arg(1, "maxsplit"), "maxsplit", line: line) ?? -1).map { .string($0) })
        case (.string(let text), "replace"):
            guard let old = try string(arg(0, "old"), "replace's old", line: line),
                let new = try string(arg(1, "new"), "replace's new", line: line)
            else { throw JinjaError(line: line, message: "replace takes the old and the new text") }
            return .string(replace(text, old, new, count: try int(arg(2, "count"), "replace's count", line: line) ?? -1))
        case (.string(let text), "upper"): return .string(text.uppercased())
        case (.string(let text), "lower"): return .string(text.lowercased())
        case (.string(let text), "title"): return .string(title(text))
        case (.string(let text), "capitalize"): return .string(capitalize(text))
        case (.dictionary(let pairs), "get"):
            guard case .string(let key)? = arg(0, "key") else { return arg(1, "default") ?? .none }
            return pairs.first { $0.key == key }?.value ?? arg(1, "default") ?? .none
        case (.dictionary(let pairs), "items"): return .list(pairs.map { .list([.string($0.key), $0.value]) })
        case (.dictionary(let pairs), "keys"): return .list(pairs.map { .string($0.key) })
        case (.dictionary(let pairs), "values"): return .list(pairs.map(\.value))
        default: throw JinjaError(line: line, message: "unsupported method \(receiver.typeName).\(name)()")
        }
    }

    // MARK: Globals

    static func callGlobal(
        _ name: String, _ positional: [JinjaObject], _ named: [(String, JinjaObject)], line: Int, now: Date
    ) throws(JinjaError) -> JinjaObject {
        switch name {
        case "raise_exception":
            throw JinjaError(line: line, message: positional.first.map(stringify) ?? "", raised: true)
        case "namespace", "dict":
            var pairs: [(key: String, value: JinjaObject)] = []
            if case .dictionary(let initial)? = positional.first { pairs = initial }
            for (key, value) in named {
                if let index = pairs.firstIndex(where: { $0.key == key }) { pairs[index].value = value } else { pairs.append((key, value)) }
            }
            return name == "dict" ? .dictionary(pairs) : .namespace(JinjaNamespace(pairs))
        case "range":
            let bounds = try positional.map { value throws(JinjaError) in try int(value, "range's arguments", line: line) ?? 0 }
            guard (1...3).contains(bounds.count) else { throw JinjaError(line: line, message: "range takes 1 to 3 integers") }
            let start = bounds.count > 1 ? bounds[0] : 0
            let stop = bounds.count > 1 ? bounds[1] : bounds[0]
            let step = bounds.count > 2 ? bounds[2] : 1
            guard step != 0 else { throw JinjaError(line: line, message: "range's step must not be zero") }
            let count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0) : (start > stop ? (start - stop - 1) / -step + 1 : 0)
            guard count <= JinjaInterpreter.maximumIterations else {
                throw JinjaError(line: line, message: "range of \(count) items is longer than \(JinjaInterpreter.maximumIterations)")
            }
            return .list((0..<count).map { .int(start + $0 * step) })
        case "strftime_now":
            guard case .string(let format)? = positional.first else {
                throw JinjaError(line: line, message: "strftime_now takes a format string")
            }
            return .string(try strftime(format, now, line: line))
        default: throw JinjaError(line: line, message: "unknown function '\(name)'")
        }
    }

    /// C's `strftime(format)` of `date` in the local time zone, for the directives chat
    /// templates print dates with (`%Y-%m-%d`, `%d %b %Y`, `%-d`, …).
    static func strftime(_ format: String, _ date: Date, line: Int) throws(JinjaError) -> String {
        let calendar = Calendar(identifier: .gregorian)
        let parts = calendar.dateComponents(in: TimeZone.current, from: date)
        let months = [
            "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"
        ]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        let (year, month, day) = (parts.year ?? 1970, parts.month ?? 1, parts.day ?? 1)
        let (hour, minute, second, weekday) = (parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0, (parts.weekday ?? 1) - 1)
        var result = ""
        var characters = format[...]
        while let character = characters.popFirst() {
            guard character == "%" else {
                result.append(character)
                continue
            }
            let unpadded = characters.first == "-"
            if unpadded { characters.removeFirst() }
            guard let directive = characters.popFirst() else { throw JinjaError(line: line, message: "strftime format ends with %") }
            func padded(_ value: Int, _ width: Int = 2) -> String {
                unpadded ? String(value) : String(repeating: "0", count: max(0, width - String(value).count)) + String(value)
            }
            switch directive {
            case "Y": result += String(year)
            case "y": result += padded(year % 100)
            case "m": result += padded(month)
            case "d": result += padded(day)
            case "e": result += unpadded ? String(day) : (day < 10 ? " " : "") + String(day)
            case "H": result += padded(hour)
            case "I": result += padded(hour % 12 == 0 ? 12 : hour % 12)
            case "M": result += padded(minute)
            case "S": result += padded(second)
            case "p": result += hour < 12 ? "AM" : "PM"
            case "B": result += months[month - 1]
            case "b", "h": result += String(months[month - 1].prefix(3))
            case "A": result += days[weekday]
            case "a": result += String(days[weekday].prefix(3))
            case "j": result += padded(calendar.ordinality(of: .day, in: .year, for: date) ?? 1, 3)
            case "%": result += "%"
            default: throw JinjaError(line: line, message: "unsupported construct: strftime directive %\(directive)")
            }
        }
        return result
    }
}
