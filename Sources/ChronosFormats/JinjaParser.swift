/// Arguments of a call, filter or test: positional, then named.
struct JinjaArguments: Sendable {
    var positional: [JinjaExpression] = []
    var named: [(name: String, value: JinjaExpression)] = []
}

/// An expression of the template language.
indirect enum JinjaExpression: Sendable {
    case literal(JinjaValue)
    case name(String, line: Int)
    case list([JinjaExpression])
    case dictionary([(key: JinjaExpression, value: JinjaExpression)], line: Int)
    case attribute(JinjaExpression, String, line: Int)
    case item(JinjaExpression, JinjaExpression, line: Int)
    case slice(JinjaExpression, start: JinjaExpression?, stop: JinjaExpression?, step: JinjaExpression?, line: Int)
    case call(JinjaExpression, JinjaArguments, line: Int)
    case filter(JinjaExpression, name: String, JinjaArguments, line: Int)
    case test(JinjaExpression, name: String, JinjaArguments, negated: Bool, line: Int)
    case not(JinjaExpression)
    case negate(JinjaExpression, line: Int)
    /// `and`, `or`, `+`, `-`, `*`, `/`, `//`, `%`, `**` and `~`.
    case binary(String, JinjaExpression, JinjaExpression, line: Int)
    /// A chain of comparisons, `a < b <= c`, as Python reads it.
    case compare(JinjaExpression, [(op: String, operand: JinjaExpression)], line: Int)
    /// `value if condition else otherwise`; without `else`, undefined when the condition fails.
    case conditional(JinjaExpression, condition: JinjaExpression, otherwise: JinjaExpression?)
}

/// A `{% for %}` loop.
struct JinjaLoop: Sendable {
    let targets: [String]
    let iterable: JinjaExpression
    let filter: JinjaExpression?
    let body: [JinjaNode]
    let otherwise: [JinjaNode]
    let line: Int
}

/// A `{% macro %}` definition.
struct JinjaMacro: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: JinjaExpression?)]
    let body: [JinjaNode]
}

/// A statement or piece of output of a parsed template.
indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpression)
    case conditional([(condition: JinjaExpression, body: [JinjaNode])], otherwise: [JinjaNode])
    case loop(JinjaLoop)
    /// `{% set a = … %}`, or `{% set a, b = … %}` unpacking a pair.
    case assign([String], JinjaExpression, line: Int)
    /// `{% set ns.attribute = … %}` on a namespace.
    case assignAttribute(String, String, JinjaExpression, line: Int)
    /// `{% set a %}…{% endset %}`: the rendered body.
    case capture(String, [JinjaNode])
    case macro(JinjaMacro)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
}

/// Parses the pieces of a template into nodes, refusing what the subset lacks by name and line.
struct JinjaParser {
    /// How deeply blocks and expressions may nest: a bound on recursion for any input.
    static let maximumDepth = 100

    private let pieces: [JinjaPiece]
    private var index = 0
    private var tokens: [LexedToken] = []
    private var cursor = 0
    private var tagLine = 1
    private var depth = 0
    /// How many loop and macro bodies enclose the statement being parsed.
    private var scopeDepth = 0
    /// The macro whose body is being parsed, if any.
    private var macroName: String?

    /// The nodes of `template`.
    static func parse(_ template: String) throws(JinjaError) -> [JinjaNode] {
        var parser = JinjaParser(pieces: try JinjaLexer.pieces(of: template))
        let (nodes, _) = try parser.body(until: [], opening: nil)
        return nodes
    }

    private init(pieces: [JinjaPiece]) { self.pieces = pieces }

    // MARK: Statements

    /// Nodes up to one of the statements `ends` (whose name is consumed), or to the end of the
    /// template when `ends` is empty.
    private mutating func body(until ends: Set<String>, opening: (tag: String, line: Int)?) throws(JinjaError) -> ([JinjaNode], String) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw JinjaError(line: tagLine, message: "blocks nest deeper than \(Self.maximumDepth)") }
        var nodes: [JinjaNode] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece {
            case .text(let text): nodes.append(.text(text))
            case .output(let lexed, let line):
                begin(lexed, line: line)
                nodes.append(.output(try expression()))
                try endOfTag()
            case .statement(let lexed, let line):
                begin(lexed, line: line)
                guard case .name(let tag) = try next() else { throw error("a statement must start with a tag name") }
                if ends.contains(tag) { return (nodes, tag) }
                nodes.append(try statement(tag))
            }
        }
        if let opening {
            throw JinjaError(line: opening.line, message: "'\(opening.tag)' is not closed with \(ends.sorted().joined(separator: " or "))")
        }
        return (nodes, "")
    }

    private mutating func statement(_ tag: String) throws(JinjaError) -> JinjaNode {
        let line = tagLine
        switch tag {
        case "if":
            var branches: [(condition: JinjaExpression, body: [JinjaNode])] = []
            var condition = try expression()
            try endOfTag()
            var otherwise: [JinjaNode] = []
            while true {
                let (nodes, end) = try body(until: ["elif", "else", "endif"], opening: ("if", line))
                branches.append((condition, nodes))
                if end == "elif" {
                    condition = try expression()
                    try endOfTag()
                    continue
                }
                try endOfTag()
                if end == "else" {
                    (otherwise, _) = try body(until: ["endif"], opening: ("if", line))
                    try endOfTag()
                }
                return .conditional(branches, otherwise: otherwise)
            }
        case "for":
            let targets = try targetNames()
            guard case .name("in") = try next() else { throw error("expected 'in' after the loop variables") }
            let iterable = try orExpression()
            var filter: JinjaExpression?
            if case .name("if") = peek() {
                cursor += 1
                filter = try orExpression()
            }
            if case .name("recursive") = peek() { throw error("unsupported construct 'recursive' loop") }
            try endOfTag()
            scopeDepth += 1
            defer { scopeDepth -= 1 }
            let (body, end) = try self.body(until: ["else", "endfor"], opening: ("for", line))
            var otherwise: [JinjaNode] = []
            try endOfTag()
            if end == "else" {
                (otherwise, _) = try self.body(until: ["endfor"], opening: ("for", line))
                try endOfTag()
            }
            return .loop(JinjaLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: line))
        case "set":
            let targets = try targetNames(allowAttribute: true)
            if case .symbol("=") = peek() {
                cursor += 1
                let value = try expression()
                try endOfTag()
                if targets.count == 1, let dot = targets[0].firstIndex(of: ".") {
                    return .assignAttribute(
                        String(targets[0][..<dot]), String(targets[0][targets[0].index(after: dot)...]), value, line: line)
                }
                return .assign(targets, value, line: line)
            }
            guard targets.count == 1, !targets[0].contains(".") else { throw error("expected '=' after the names to set") }
            try endOfTag()
            let (body, _) = try self.body(until: ["endset"], opening: ("set", line))
            try endOfTag()
            return .capture(targets[0], body)
        case "macro":
            guard case .name(let name) = try next() else { throw error("expected the macro's name") }
            // A macro sees the scope it is defined in; only the template's top level is supported.
            guard scopeDepth == 0 else { throw error("unsupported construct: macro '\(name)' defined inside a loop or macro") }
            try expect("(")
            var parameters: [(name: String, defaultValue: JinjaExpression?)] = []
            while !consume(")") {
                if !parameters.isEmpty { try expect(",") }
                guard case .name(let parameter) = try next() else { throw error("expected a parameter name") }
                guard !parameters.contains(where: { $0.name == parameter }) else {
                    throw error("macro '\(name)' has two parameters named '\(parameter)'")
                }
                let defaultValue = consume("=") ? try conditionalExpression() : nil
                if defaultValue == nil, parameters.last?.defaultValue != nil {
                    throw error("macro '\(name)': non-default argument '\(parameter)' follows default argument")
                }
                parameters.append((parameter, defaultValue))
            }
            try endOfTag()
            scopeDepth += 1
            macroName = name
            defer {
                scopeDepth -= 1
                macroName = nil
            }
            let (body, _) = try self.body(until: ["endmacro"], opening: ("macro", line))
            if case .name = peek() { cursor += 1 }
            try endOfTag()
            return .macro(JinjaMacro(name: name, parameters: parameters, body: body))
        case "generation":
            // transformers' tag marking assistant text; it renders its body unchanged.
            try endOfTag()
            let (body, _) = try self.body(until: ["endgeneration"], opening: ("generation", line))
            try endOfTag()
            return .conditional([(.literal(.bool(true)), body)], otherwise: [])
        case "break":
            try endOfTag()
            return .breakLoop(line: line)
        case "continue":
            try endOfTag()
            return .continueLoop(line: line)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration":
            throw error("unexpected '\(tag)'")
        default:
            throw error("unsupported tag '\(tag)'")
        }
    }

    /// `a`, `a, b` or (for `set`) `ns.attribute`.
    private mutating func targetNames(allowAttribute: Bool = false) throws(JinjaError) -> [String] {
        var names: [String] = []
        repeat {
            guard case .name(var name) = try next() else { throw error("expected a variable name") }
            if allowAttribute, consume(".") {
                guard case .name(let attribute) = try next() else { throw error("expected an attribute name") }
                name += "." + attribute
            }
            names.append(name)
        } while consume(",")
        return names
    }

    // MARK: Expressions

    /// A full expression: a conditional expression, or a tuple written without brackets.
    private mutating func expression() throws(JinjaError) -> JinjaExpression {
        let first = try conditionalExpression()
        guard case .symbol(",") = peek() else { return first }
        var items = [first]
        while consume(",") {
            if atEnd || peekIs(")") || peekIs("]") { break }
            items.append(try conditionalExpression())
        }
        return .list(items)
    }

    private mutating func conditionalExpression() throws(JinjaError) -> JinjaExpression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw error("expressions nest deeper than \(Self.maximumDepth)") }
        let value = try orExpression()
        guard case .name("if") = peek() else { return value }
        cursor += 1
        let condition = try orExpression()
        var otherwise: JinjaExpression?
        if case .name("else") = peek() {
            cursor += 1
            otherwise = try conditionalExpression()
        }
        return .conditional(value, condition: condition, otherwise: otherwise)
    }

    private mutating func orExpression() throws(JinjaError) -> JinjaExpression {
        var left = try andExpression()
        while case .name("or") = peek() {
            let line = lineHere
            cursor += 1
            left = .binary("or", left, try andExpression(), line: line)
        }
        return left
    }

    private mutating func andExpression() throws(JinjaError) -> JinjaExpression {
        var left = try notExpression()
        while case .name("and") = peek() {
            let line = lineHere
            cursor += 1
            left = .binary("and", left, try notExpression(), line: line)
        }
        return left
    }

    private mutating func notExpression() throws(JinjaError) -> JinjaExpression {
        if case .name("not") = peek() {
            cursor += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw error("expressions nest deeper than \(Self.maximumDepth)") }
            return .not(try notExpression())
        }
        return try comparison()
    }

    private mutating func comparison() throws(JinjaError) -> JinjaExpression {
        let line = lineHere
        let first = try arithmetic(["+", "-"], next: { parser throws(JinjaError) in try parser.concatenation() })
        var rest: [(op: String, operand: JinjaExpression)] = []
        while true {
            var op: String
            switch peek() {
            case .symbol(let symbol) where ["==", "!=", "<", ">", "<=", ">="].contains(symbol): op = symbol
            case .name("in"): op = "in"
            case .name("not") where cursor + 1 < tokens.count && tokens[cursor + 1].token == .name("in"):
                cursor += 1
                op = "not in"
            default: return rest.isEmpty ? first : .compare(first, rest, line: line)
            }
            cursor += 1
            rest.append((op, try arithmetic(["+", "-"], next: { parser throws(JinjaError) in try parser.concatenation() })))
        }
    }

    private mutating func concatenation() throws(JinjaError) -> JinjaExpression {
        try arithmetic(["~"]) { parser throws(JinjaError) in
            try parser.arithmetic(["*", "/", "//", "%"]) { parser throws(JinjaError) in
                try parser.arithmetic(["**"]) { parser throws(JinjaError) in try parser.unary() }
            }
        }
    }

    /// A left-associative chain of the binary operators `symbols` over `next`.
    private mutating func arithmetic(
        _ symbols: Set<String>, next: (inout JinjaParser) throws(JinjaError) -> JinjaExpression
    ) throws(JinjaError) -> JinjaExpression {
        var left = try next(&self)
        while case .symbol(let symbol) = peek(), symbols.contains(symbol) {
            let line = lineHere
            cursor += 1
            left = .binary(symbol, left, try next(&self), line: line)
        }
        return left
    }

    /// A primary with its postfixes, filters and tests; a leading `-` or `+` applies before the
    /// filters, as in Jinja (`-x|abs` is `(-x)|abs`).
    private mutating func unary(withFilters: Bool = true) throws(JinjaError) -> JinjaExpression {
        let line = lineHere
        var value: JinjaExpression
        if consume("-") {
            value = .negate(try unary(withFilters: false), line: line)
        } else if consume("+") {
            value = try unary(withFilters: false)
        } else {
            value = try primary()
        }
        value = try postfix(value)
        return withFilters ? try filtersAndTests(value) : value
    }

    private mutating func primary() throws(JinjaError) -> JinjaExpression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw error("expressions nest deeper than \(Self.maximumDepth)") }
        let line = lineHere
        switch try next() {
        case .name(let name):
            if let macroName, ["varargs", "kwargs", "caller"].contains(name) {
                // Jinja gives a macro that reads these its extra arguments and the body of a {% call %}.
                throw JinjaError(line: line, message: "unsupported construct: '\(name)' in macro '\(macroName)'")
            }
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.null)
            case "and", "or", "not", "in", "is", "if", "else": throw JinjaError(line: line, message: "unexpected '\(name)'")
            default: return .name(name, line: line)
            }
        case .string(var text):
            while case .string(let more) = peek() {
                text += more
                cursor += 1
            }
            return .literal(.string(text))
        case .integer(let value): return .literal(.int(value))
        case .float(let value): return .literal(.double(value))
        case .symbol("("):
            if consume(")") { return .list([]) }
            let value = try expression()
            try expect(")")
            return value
        case .symbol("["):
            var items: [JinjaExpression] = []
            while !consume("]") {
                if !items.isEmpty {
                    try expect(",")
                    if consume("]") { break }
                }
                items.append(try conditionalExpression())
            }
            return .list(items)
        case .symbol("{"):
            var pairs: [(key: JinjaExpression, value: JinjaExpression)] = []
            while !consume("}") {
                if !pairs.isEmpty {
                    try expect(",")
                    if consume("}") { break }
                }
                let key = try conditionalExpression()
                try expect(":")
                pairs.append((key, try conditionalExpression()))
            }
            return .dictionary(pairs, line: line)
        case .symbol(let symbol): throw JinjaError(line: line, message: "unexpected '\(symbol)'")
        }
    }

    private mutating func postfix(_ base: JinjaExpression) throws(JinjaError) -> JinjaExpression {
        var value = base
        while true {
            let line = lineHere
            if consume(".") {
                switch try next() {
                case .name(let name): value = .attribute(value, name, line: line)
                case .integer(let index): value = .item(value, .literal(.int(index)), line: line)
                default: throw JinjaError(line: line, message: "expected an attribute name after '.'")
                }
            } else if consume("[") {
                value = try subscriptOrSlice(of: value, line: line)
            } else if case .symbol("(") = peek() {
                cursor += 1
                value = .call(value, try arguments(), line: line)
            } else {
                return value
            }
        }
    }

    private mutating func subscriptOrSlice(of value: JinjaExpression, line: Int) throws(JinjaError) -> JinjaExpression {
        var parts: [JinjaExpression?] = [nil]
        var colons = 0
        while !consume("]") {
            if consume(":") {
                colons += 1
                guard colons <= 2 else { throw JinjaError(line: line, message: "a slice has at most two ':'") }
                parts.append(nil)
            } else {
                guard parts[parts.count - 1] == nil else { throw JinjaError(line: line, message: "expected ']'") }
                parts[parts.count - 1] = try conditionalExpression()
            }
        }
        if colons == 0 {
            guard let index = parts[0] else { throw JinjaError(line: line, message: "empty subscript") }
            return .item(value, index, line: line)
        }
        return .slice(value, start: parts[0], stop: parts[1], step: parts.count > 2 ? parts[2] : nil, line: line)
    }

    /// Call arguments after `(`, up to and including `)`.
    private mutating func arguments() throws(JinjaError) -> JinjaArguments {
        var result = JinjaArguments()
        while !consume(")") {
            if !result.positional.isEmpty || !result.named.isEmpty { try expect(",") }
            if consume(")") { break }
            if case .name(let name) = peek(), cursor + 1 < tokens.count, tokens[cursor + 1].token == .symbol("=") {
                guard !result.named.contains(where: { $0.name == name }) else { throw error("keyword argument repeated: \(name)") }
                cursor += 2
                result.named.append((name, try conditionalExpression()))
            } else {
                guard result.named.isEmpty else { throw error("a positional argument follows a named one") }
                result.positional.append(try conditionalExpression())
            }
        }
        return result
    }

    private mutating func filtersAndTests(_ base: JinjaExpression) throws(JinjaError) -> JinjaExpression {
        var value = base
        while true {
            let line = lineHere
            if consume("|") {
                guard case .name(let name) = try next() else { throw JinjaError(line: line, message: "expected a filter name after '|'") }
                guard JinjaBuiltins.filters.contains(name) else { throw JinjaError(line: line, message: "unknown filter '\(name)'") }
                let arguments = consume("(") ? try self.arguments() : JinjaArguments()
                value = .filter(value, name: name, arguments, line: line)
            } else if case .name("is") = peek() {
                cursor += 1
                var negated = false
                if case .name("not") = peek() {
                    cursor += 1
                    negated = true
                }
                guard case .name(let name) = try next() else { throw JinjaError(line: line, message: "expected a test name after 'is'") }
                guard JinjaBuiltins.tests.contains(name) else { throw JinjaError(line: line, message: "unknown test '\(name)'") }
                var arguments = JinjaArguments()
                if consume("(") {
                    arguments = try self.arguments()
                } else if startsTestArgument() {
                    arguments.positional = [try postfix(try primary())]
                }
                value = .test(value, name: name, arguments, negated: negated, line: line)
            } else {
                return value
            }
        }
    }

    /// Whether the next token begins the one unbracketed argument of a test (`is divisibleby 3`).
    private func startsTestArgument() -> Bool {
        switch peek() {
        case .name(let name): !["else", "or", "and", "if", "in", "not", "is"].contains(name)
        case .string, .integer, .float, .symbol("["), .symbol("{"): true
        default: false
        }
    }

    // MARK: Tokens

    private mutating func begin(_ lexed: [LexedToken], line: Int) {
        tokens = lexed
        cursor = 0
        tagLine = line
    }

    private var atEnd: Bool { cursor >= tokens.count }
    private var lineHere: Int { cursor < tokens.count ? tokens[cursor].line : tagLine }

    private func peek() -> JinjaToken? { cursor < tokens.count ? tokens[cursor].token : nil }
    private func peekIs(_ symbol: String) -> Bool { peek() == .symbol(symbol) }

    private mutating func next() throws(JinjaError) -> JinjaToken {
        guard cursor < tokens.count else { throw error("unexpected end of tag") }
        cursor += 1
        return tokens[cursor - 1].token
    }

    private mutating func consume(_ symbol: String) -> Bool {
        guard peekIs(symbol) else { return false }
        cursor += 1
        return true
    }

    private mutating func expect(_ symbol: String) throws(JinjaError) {
        guard consume(symbol) else { throw error(atEnd ? "expected '\(symbol)' before the end of the tag" : "expected '\(symbol)'") }
    }

    private mutating func endOfTag() throws(JinjaError) {
        guard atEnd else { throw error("unexpected \(describe(tokens[cursor].token)) where the tag should end") }
    }

    private func describe(_ token: JinjaToken) -> String {
        switch token {
        case .name(let name): "'\(name)'"
        case .string(let text): "string \(text.debugDescription)"
        case .integer(let value): "number \(value)"
        case .float(let value): "number \(value)"
        case .symbol(let symbol): "'\(symbol)'"
        }
    }

    private func error(_ message: String) -> JinjaError { JinjaError(line: lineHere, message: message) }
}
