import Foundation

/// A namespace made by `namespace(...)`: the one value a template may change after making it.
final class JinjaNamespace {
    var attributes: [(key: String, value: JinjaObject)]

    init(_ attributes: [(key: String, value: JinjaObject)]) { self.attributes = attributes }
}

/// Something callable: a global function, a bound string or dictionary method, a macro.
enum JinjaFunction {
    case global(String)
    case method(JinjaObject, String)
    case macro(JinjaMacro)
}

/// A value while a template runs, with Python's types: what `JinjaValue` gives, plus undefined
/// names (Jinja's `Undefined`), namespaces and functions.
indirect enum JinjaObject {
    /// A name, attribute or item that does not exist; the text says which, for errors.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaObject])
    case dictionary([(key: String, value: JinjaObject)])
    case namespace(JinjaNamespace)
    case function(JinjaFunction)

    init(_ value: JinjaValue) {
        switch value {
        case .null: self = .none
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .int(value)
        case .double(let value): self = .double(value)
        case .string(let value): self = .string(value)
        case .array(let items): self = .list(items.map(JinjaObject.init))
        case .object(let pairs): self = .dictionary(pairs.map { ($0.key, JinjaObject($0.value)) })
        }
    }

    /// Python's truth value.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let value): value
        case .int(let value): value != 0
        case .double(let value): value != 0
        case .string(let value): !value.isEmpty
        case .list(let items): !items.isEmpty
        case .dictionary(let pairs): !pairs.isEmpty
        case .namespace, .function: true
        }
    }

    /// The Python type name, for errors.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .dictionary: "dict"
        case .namespace: "Namespace"
        case .function: "function"
        }
    }
}

/// Runs a parsed template. Every input is bounded: output size, loop iterations and macro
/// call depth (expression depth is bounded by the parser), so a runaway template is an error.
final class JinjaInterpreter {
    /// The most text a template may write, in UTF-8 bytes.
    static let maximumOutput = 64 << 20
    /// The most loop iterations (and `range` items) one rendering may run.
    static let maximumIterations = 1_000_000
    /// The most macro calls that may be open at once.
    static let maximumCallDepth = 32

    /// What rendering a list of nodes ended with.
    enum Flow {
        case normal
        case breakLoop
        case continueLoop
    }

    private var frames: [[String: JinjaObject]]
    private var iterations = 0
    private var callDepth = 0
    private var loopDepth = 0
    /// The time `strftime_now` formats.
    let now: Date

    init(variables: [String: JinjaObject], now: Date) {
        frames = [variables]
        self.now = now
    }

    /// The text of `nodes`.
    func render(_ nodes: [JinjaNode]) throws(JinjaError) -> String {
        var output = ""
        if try render(nodes, into: &output) != .normal {
            throw JinjaError(line: 0, message: "'break' or 'continue' outside a loop")
        }
        return output
    }

    private func render(_ nodes: [JinjaNode], into output: inout String) throws(JinjaError) -> Flow {
        for node in nodes {
            switch node {
            case .text(let text): try append(text, to: &output, line: 0)
            case .output(let expression): try append(JinjaBuiltins.stringify(try evaluate(expression)), to: &output, line: expression.line)
            case .conditional(let branches, let otherwise):
                var body = otherwise
                for branch in branches where try evaluate(branch.condition).isTruthy {
                    body = branch.body
                    break
                }
                let flow = try render(body, into: &output)
                if flow != .normal { return flow }
            case .loop(let loop): try run(loop, into: &output)
            case .assign(let names, let expression, let line): try assign(names, try evaluate(expression), line: line)
            case .assignAttribute(let name, let attribute, let expression, let line):
                guard case .namespace(let namespace) = lookup(name) else {
                    throw JinjaError(line: line, message: "cannot set '\(attribute)' on '\(name)', which is not a namespace")
                }
                let value = try evaluate(expression)
                if let index = namespace.attributes.firstIndex(where: { $0.key == attribute }) {
                    namespace.attributes[index].value = value
                } else {
                    namespace.attributes.append((attribute, value))
                }
            case .capture(let name, let body):
                var captured = ""
                _ = try render(body, into: &captured)
                frames[frames.count - 1][name] = .string(captured)
            case .macro(let macro): frames[frames.count - 1][macro.name] = .function(.macro(macro))
            case .breakLoop(let line), .continueLoop(let line):
                guard loopDepth > 0 else { throw JinjaError(line: line, message: "'break' or 'continue' outside a loop") }
                if case .breakLoop = node { return .breakLoop }
                return .continueLoop
            }
        }
        return .normal
    }

    private func append(_ text: String, to output: inout String, line: Int) throws(JinjaError) {
        output += text
        guard output.utf8.count <= Self.maximumOutput else {
            throw JinjaError(line: line, message: "the output grew past \(Self.maximumOutput) bytes")
        }
    }

    private func assign(_ names: [String], _ value: JinjaObject, line: Int) throws(JinjaError) {
        if names.count == 1 {
            frames[frames.count - 1][names[0]] = value
            return
        }
        guard case .list(let items) = value, items.count == names.count else {
            throw JinjaError(line: line, message: "cannot unpack \(value.typeName) into \(names.count) names")
        }
        for (name, item) in zip(names, items) { frames[frames.count - 1][name] = item }
    }

    /// Each iteration runs in a scope of its own (what it sets does not outlive it), with
    /// `loop` describing where it is.
    private func run(_ loop: JinjaLoop, into output: inout String) throws(JinjaError) {
        var items = try iterate(try evaluate(loop.iterable), line: loop.line)
        if let filter = loop.filter {
            var kept: [JinjaObject] = []
            for item in items {
                frames.append([:])
                defer { frames.removeLast() }
                try assign(loop.targets, item, line: loop.line)
                if try evaluate(filter).isTruthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try render(loop.otherwise, into: &output)
            return
        }
        loopDepth += 1
        defer { loopDepth -= 1 }
        for (index, item) in items.enumerated() {
            iterations += 1
            guard iterations <= Self.maximumIterations else {
                throw JinjaError(line: loop.line, message: "the loop ran away: more than \(Self.maximumIterations) iterations")
            }
            let state: [(key: String, value: JinjaObject)] = [
                ("index", .int(index + 1)), ("index0", .int(index)), ("revindex", .int(items.count - index)),
                ("revindex0", .int(items.count - index - 1)), ("first", .bool(index == 0)), ("last", .bool(index == items.count - 1)),
                ("length", .int(items.count)), ("depth", .int(1)), ("depth0", .int(0)),
                ("previtem", index > 0 ? items[index - 1] : .undefined("loop.previtem")),
                ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined("loop.nextitem"))
            ]
            frames.append(["loop": .dictionary(state)])
            defer { frames.removeLast() }
            try assign(loop.targets, item, line: loop.line)
            if try render(loop.body, into: &output) == .breakLoop { break }
        }
    }

    /// The items a `for` loop or filter walks: a list's items, a dictionary's keys, a string's
    /// characters; nothing for an undefined value.
    func iterate(_ value: JinjaObject, line: Int) throws(JinjaError) -> [JinjaObject] {
        switch value {
        case .undefined: return []
        case .list(let items): return items
        case .dictionary(let pairs): return pairs.map { .string($0.key) }
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        default: throw JinjaError(line: line, message: "'\(value.typeName)' object is not iterable")
        }
    }

    private func lookup(_ name: String) -> JinjaObject {
        for frame in frames.reversed() {
            if let value = frame[name] { return value }
        }
        if JinjaBuiltins.globals.contains(name) { return .function(.global(name)) }
        return .undefined("'\(name)' is undefined")
    }

    // MARK: Expressions

    func evaluate(_ expression: JinjaExpression) throws(JinjaError) -> JinjaObject {
        switch expression {
        case .literal(let value): return JinjaObject(value)
        case .name(let name, _): return lookup(name)
        case .list(let items): return .list(try items.map { item throws(JinjaError) in try evaluate(item) })
        case .dictionary(let pairs, let line):
            var result: [(key: String, value: JinjaObject)] = []
            for pair in pairs {
                guard case .string(let key) = try evaluate(pair.key) else {
                    throw JinjaError(line: line, message: "dictionary keys must be strings")
                }
                let value = try evaluate(pair.value)
                if let index = result.firstIndex(where: { $0.key == key }) {
                    result[index].value = value
                } else {
                    result.append((key, value))
                }
            }
            return .dictionary(result)
        case .attribute(let base, let name, let line): return try attribute(name, of: try evaluate(base), line: line)
        case .item(let base, let index, let line): return try item(try evaluate(index), of: try evaluate(base), line: line)
        case .slice(let base, let start, let stop, let step, let line):
            return try slice(
                try evaluate(base), start: try start.map { e throws(JinjaError) in try evaluate(e) },
                stop: try stop.map { e throws(JinjaError) in try evaluate(e) },
                step: try step.map { e throws(JinjaError) in try evaluate(e) },
                line: line)
        case .call(let callee, let arguments, let line):
            let function = try evaluate(callee)
            let (positional, named) = try evaluate(arguments)
            guard case .function(let target) = function else {
                if case .undefined(let reason) = function { throw JinjaError(line: line, message: reason) }
                throw JinjaError(line: line, message: "'\(function.typeName)' object is not callable")
            }
            return try call(target, positional, named, line: line)
        case .filter(let base, let name, let arguments, let line):
            let (positional, named) = try evaluate(arguments)
            return try JinjaBuiltins.filter(name, try evaluate(base), positional, named, line: line, interpreter: self)
        case .test(let base, let name, let arguments, let negated, let line):
            let (positional, _) = try evaluate(arguments)
            return .bool(try JinjaBuiltins.test(name, try evaluate(base), positional, line: line) != negated)
        case .not(let operand): return .bool(!(try evaluate(operand).isTruthy))
        case .negate(let operand, let line):
            switch try evaluate(operand) {
            case .int(let value) where value != .min: return .int(-value)
            case .bool(let value): return .int(value ? -1 : 0)
            case .double(let value): return .double(-value)
            case let value: throw JinjaError(line: line, message: "bad operand type for unary -: '\(value.typeName)'")
            }
        case .binary("and", let left, let right, _):
            let value = try evaluate(left)
            return value.isTruthy ? try evaluate(right) : value
        case .binary("or", let left, let right, _):
            let value = try evaluate(left)
            return value.isTruthy ? value : try evaluate(right)
        case .binary(let op, let left, let right, let line):
            return try JinjaBuiltins.arithmetic(op, try evaluate(left), try evaluate(right), line: line)
        case .compare(let first, let rest, let line):
            var left = try evaluate(first)
            for (op, operand) in rest {
                let right = try evaluate(operand)
                guard try JinjaBuiltins.compare(op, left, right, line: line) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(value) }
            return try otherwise.map { e throws(JinjaError) in try evaluate(e) } ?? .undefined("the conditional expression has no else")
        }
    }

    private func evaluate(_ arguments: JinjaArguments) throws(JinjaError) -> ([JinjaObject], [(String, JinjaObject)]) {
        let positional = try arguments.positional.map { e throws(JinjaError) in try evaluate(e) }
        let named = try arguments.named.map { pair throws(JinjaError) in (pair.name, try evaluate(pair.value)) }
        return (positional, named)
    }

    /// `value.name`: as Jinja does, an attribute (a method) first, then an item.
    func attribute(_ name: String, of value: JinjaObject, line: Int) throws(JinjaError) -> JinjaObject {
        switch value {
        case .undefined(let reason): throw JinjaError(line: line, message: reason)
        case .dictionary(let pairs):
            if JinjaBuiltins.dictionaryMethods.contains(name) { return .function(.method(value, name)) }
            return pairs.first { $0.key == name }?.value ?? .undefined("'dict object' has no attribute '\(name)'")
        case .string:
            if JinjaBuiltins.stringMethods.contains(name) { return .function(.method(value, name)) }
        case .list:
            if JinjaBuiltins.listMethods.contains(name) { return .function(.method(value, name)) }
        case .namespace(let namespace):
            if let found = namespace.attributes.first(where: { $0.key == name }) { return found.value }
        default: break
        }
        return .undefined("'\(value.typeName) object' has no attribute '\(name)'")
    }

    /// `value[key]`: an item first, then (for a string key) an attribute.
    func item(_ key: JinjaObject, of value: JinjaObject, line: Int) throws(JinjaError) -> JinjaObject {
        switch (value, key) {
        case (.undefined(let reason), _): throw JinjaError(line: line, message: reason)
        case (.list(let items), .int(let index)):
            let position = index < 0 ? items.count + index : index
            return items.indices.contains(position) ? items[position] : .undefined("list index \(index) is out of range")
        case (.string(let text), .int(let index)):
            let scalars = Array(text.unicodeScalars)
            let position = index < 0 ? scalars.count + index : index
            return scalars.indices.contains(position)
                ? .string(String(scalars[position])) : .undefined("string index \(index) is out of range")
        case (.dictionary(let pairs), .string(let name)):
            if let found = pairs.first(where: { $0.key == name }) { return found.value }
            return try attribute(name, of: value, line: line)
        case (_, .string(let name)): return try attribute(name, of: value, line: line)
        default: return .undefined("'\(value.typeName) object' has no item \(JinjaBuiltins.stringify(key))")
        }
    }

    /// Python's `value[start:stop:step]` on a list or string.
    private func slice(_ value: JinjaObject, start: JinjaObject?, stop: JinjaObject?, step: JinjaObject?, line: Int) throws(JinjaError)
        -> JinjaObject
    {
        func integer(_ bound: JinjaObject?) throws(JinjaError) -> Int? {
            switch bound {
            case nil, .none?: return nil
            case .int(let value)?: return value
            case let other?: throw JinjaError(line: line, message: "slice indices must be integers or None, not '\(other.typeName)'")
            }
        }
        let step = try integer(step) ?? 1
        guard step != 0 else { throw JinjaError(line: line, message: "slice step cannot be zero") }
        func indices(count: Int) throws(JinjaError) -> [Int] {
            func clamp(_ bound: Int?, _ defaultValue: Int) -> Int {
                guard let bound else { return defaultValue }
                let position = bound < 0 ? bound + count : bound
                return step > 0 ? min(max(position, 0), count) : min(max(position, -1), count - 1)
            }
            let first = clamp(try integer(start), step > 0 ? 0 : count - 1)
            let end = clamp(try integer(stop), step > 0 ? count : -1)
            return Array(stride(from: first, to: end, by: step))
        }
        switch value {
        case .list(let items): return .list(try indices(count: items.count).map { items[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            return .string(String(String.UnicodeScalarView(try indices(count: scalars.count).map { scalars[$0] })))
        case .undefined(let reason): throw JinjaError(line: line, message: reason)
        default: throw JinjaError(line: line, message: "'\(value.typeName)' object is not subscriptable")
        }
    }

    private func call(_ function: JinjaFunction, _ positional: [JinjaObject], _ named: [(String, JinjaObject)], line: Int)
        throws(JinjaError)
        -> JinjaObject
    {
        switch function {
        case .global(let name): return try JinjaBuiltins.callGlobal(name, positional, named, line: line, now: now)
        case .method(let receiver, let name): return try JinjaBuiltins.callMethod(name, on: receiver, positional, named, line: line)
        case .macro(let macro): return try call(macro, positional, named, line: line)
        }
    }

    /// A macro's output, rendered in a scope of the template's top level and its parameters, as
    /// Jinja does: it sees the top level as it is when called, not its caller's variables.
    /// Arguments are positional, then named for the parameters left; parameters not given then
    /// take their defaults in order, each default seeing the parameters set before it.
    private func call(_ macro: JinjaMacro, _ positional: [JinjaObject], _ named: [(String, JinjaObject)], line: Int) throws(JinjaError)
        -> JinjaObject
    {
        guard callDepth < Self.maximumCallDepth else {
            throw JinjaError(line: line, message: "macro '\(macro.name)' recursed deeper than \(Self.maximumCallDepth) calls")
        }
        guard positional.count <= macro.parameters.count else {
            throw JinjaError(line: line, message: "macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        let byName = macro.parameters.dropFirst(positional.count)
        if let unknown = named.first(where: { name in !byName.contains { $0.name == name.0 } }) {
            throw JinjaError(line: line, message: "macro '\(macro.name)' takes no keyword argument '\(unknown.0)'")
        }
        let saved = (frames, loopDepth)
        frames = [frames[0], [:]]
        loopDepth = 0
        callDepth += 1
        defer {
            (frames, loopDepth) = saved
            callDepth -= 1
        }
        var missing: [(name: String, defaultValue: JinjaExpression?)] = []
        for (index, parameter) in macro.parameters.enumerated() {
            if index < positional.count {
                frames[1][parameter.name] = positional[index]
            } else if let value = named.first(where: { $0.0 == parameter.name })?.1 {
                frames[1][parameter.name] = value
            } else {
                frames[1][parameter.name] = .undefined("parameter '\(parameter.name)' was not provided")
                missing.append(parameter)
            }
        }
        for parameter in missing {
            if let defaultValue = parameter.defaultValue { frames[1][parameter.name] = try evaluate(defaultValue) }
        }
        var output = ""
        _ = try render(macro.body, into: &output)
        return .string(output)
    }
}

extension JinjaExpression {
    /// The line the expression is on, for errors about its value (0 for a literal).
    var line: Int {
        switch self {
        case .literal, .list: 0
        case .name(_, let line), .dictionary(_, let line), .attribute(_, _, let line), .item(_, _, let line),
            .slice(_, _, _, _, let line), .call(_, _, let line), .filter(_, _, _, let line), .test(_, _, _, _, let line),
            .negate(_, let line), .binary(_, _, _, let line), .compare(_, _, let line):
            line
        case .not(let operand): operand.line
        case .conditional(let value, _, _): value.line
        }
    }
}
