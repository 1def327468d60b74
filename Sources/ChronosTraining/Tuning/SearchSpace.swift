import ChronosTensor
import Foundation

/// One value a tuned parameter takes: a number (integers are whole numbers) or a category name.
public enum ParameterValue: Hashable, Sendable, CustomStringConvertible {
    /// A number: the value of a float or integer parameter, or a numeric category.
    case number(Double)
    /// A category given by name.
    case text(String)

    /// The value as JSON writes it.
    public var jsonValue: Any {
        switch self {
        case .number(let value): value.rounded() == value && abs(value) < 1e15 ? Int(value) as Any : value as Any
        case .text(let value): value
        }
    }

    /// The value a JSON scalar holds, if it is a number or a string.
    public init?(json: Any) {
        if let text = json as? String {
            self = .text(text)
        } else if let number = json as? NSNumber, number.exactDouble.isFinite {
            self = .number(number.exactDouble)
        } else {
            return nil
        }
    }

    /// The number, if this is one.
    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// The value as a user reads it.
    public var description: String {
        switch self {
        case .number(let value): value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
        case .text(let value): "\"\(value)\""
        }
    }
}

/// The values one parameter may take.
public enum ParameterDomain: Sendable, Equatable {
    /// A real number in `low...high`, searched on a log scale when `log`.
    case float(low: Double, high: Double, log: Bool)
    /// An integer in `low...high`, searched on a log scale when `log`.
    case integer(low: Int, high: Int, log: Bool)
    /// One of a list of values, in no order.
    case categorical([ParameterValue])

    /// Whether `value` lies in the domain.
    public func contains(_ value: ParameterValue) -> Bool {
        switch self {
        case .float(let low, let high, _): value.number.map { (low...high).contains($0) } ?? false
        case .integer(let low, let high, _):
            value.number.map { $0.rounded() == $0 && (Double(low)...Double(high)).contains($0) } ?? false
        case .categorical(let choices): choices.contains(value)
        }
    }
}

/// A parameter that is active only when another parameter, earlier in the space, takes one of
/// some values.
public struct ParameterCondition: Sendable, Equatable {
    /// The parameter this one depends on.
    public var parent: String
    /// The parent's values under which this parameter is active.
    public var values: [ParameterValue]

    /// A condition on `parent` taking one of `values`.
    public init(parent: String, values: [ParameterValue]) {
        self.parent = parent
        self.values = values
    }
}

/// One tuned parameter: a name, a domain and an optional condition.
public struct SearchParameter: Sendable, Equatable {
    /// The parameter's name.
    public var name: String
    /// The values it may take.
    public var domain: ParameterDomain
    /// When set, the parameter is active only under this condition.
    public var condition: ParameterCondition?

    /// A parameter `name` over `domain`, active always or under `condition`.
    public init(name: String, domain: ParameterDomain, condition: ParameterCondition? = nil) {
        self.name = name
        self.domain = domain
        self.condition = condition
    }
}

/// The parameters of a study, in order: a condition names an earlier parameter.
///
/// As JSON (a search-space file):
///
///     {"parameters": [
///       {"name": "lambda_balance", "type": "float", "low": 0.001, "high": 0.1, "log": true},
///       {"name": "experts", "type": "int", "low": 4, "high": 16},
///       {"name": "top_k", "type": "categorical", "choices": [1, 2]},
///       {"name": "lambda_anchor", "type": "float", "low": 0, "high": 0.1,
///        "when": {"parameter": "top_k", "values": [2]}}
///     ]}
public struct SearchSpace: Sendable, Equatable {
    /// The parameters, parents before the parameters that depend on them.
    public var parameters: [SearchParameter]

    /// A space of `parameters`; throws the first parameter that cannot be searched.
    public init(parameters: [SearchParameter]) throws(InvalidSetting) {
        self.parameters = parameters
        try validate()
    }

    /// The parameter named `name`.
    public func parameter(_ name: String) -> SearchParameter? { parameters.first { $0.name == name } }

    /// Whether `parameter` is active given the values assigned so far.
    public func isActive(_ parameter: SearchParameter, in assignment: [String: ParameterValue]) -> Bool {
        guard let condition = parameter.condition else { return true }
        guard let parentValue = assignment[condition.parent] else { return false }
        return condition.values.contains(parentValue)
    }

    /// Throws the first parameter with an empty or unordered range, a duplicate name, or a
    /// condition on a parameter that is not earlier in the list or on values it cannot take.
    public func validate() throws(InvalidSetting) {
        guard !parameters.isEmpty else {
            throw InvalidSetting(name: "parameters", value: "[]", expected: "at least one parameter")
        }
        var seen: [String: SearchParameter] = [:]
        for (index, parameter) in parameters.enumerated() {
            let field = "parameters[\(index)]"
            guard !parameter.name.isEmpty else { throw InvalidSetting(name: "\(field).name", value: "\"\"", expected: "a name") }
            guard seen[parameter.name] == nil else {
                throw InvalidSetting(name: "\(field).name", value: "\"\(parameter.name)\"", expected: "a name no earlier parameter has")
            }
            let named = "\(field) (\(parameter.name))"
            switch parameter.domain {
            case .float(let low, let high, let log):
                guard low.isFinite, high.isFinite, low < high else {
                    throw InvalidSetting(name: "\(named).high", value: "\(high)", expected: "a finite number above low (\(low))")
                }
                if log && low <= 0 {
                    throw InvalidSetting(name: "\(named).low", value: "\(low)", expected: "above 0 on a log scale")
                }
            case .integer(let low, let high, let log):
                guard low <= high else {
                    throw InvalidSetting(name: "\(named).high", value: "\(high)", expected: "at least low (\(low))")
                }
                if log && low < 1 {
                    throw InvalidSetting(name: "\(named).low", value: "\(low)", expected: "at least 1 on a log scale")
                }
            case .categorical(let choices):
                guard !choices.isEmpty, Set(choices).count == choices.count else {
                    throw InvalidSetting(
                        name: "\(named).choices", value: "[\(choices.map(\.description).joined(separator: ", "))]",
                        expected: "a non-empty list without repeats")
                }
            }
            if let condition = parameter.condition {
                guard let parent = seen[condition.parent] else {
                    throw InvalidSetting(
                        name: "\(named).when.parameter", value: "\"\(condition.parent)\"", expected: "the name of an earlier parameter")
                }
                guard !condition.values.isEmpty else {
                    throw InvalidSetting(name: "\(named).when.values", value: "[]", expected: "at least one value of \(parent.name)")
                }
                if let bad = condition.values.first(where: { !parent.domain.contains($0) }) {
                    throw InvalidSetting(name: "\(named).when.values", value: bad.description, expected: "a value \(parent.name) can take")
                }
            }
            seen[parameter.name] = parameter
        }
    }
}

extension NSNumber {
    /// The nearest Double to the number `JSONSerialization` read. On Linux its `doubleValue`
    /// is often an ulp or two off (0.3696555471372057 reads back as 0.36965554713720566), which
    /// would let a resumed study draw other values than the run it continues; its
    /// `description` keeps the text's digits.
    var exactDouble: Double { Double(description) ?? doubleValue }
}
