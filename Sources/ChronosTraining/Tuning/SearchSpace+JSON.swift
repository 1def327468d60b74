import ChronosTensor
import Foundation

extension SearchSpace {
    /// Reads a search-space file (the format `SearchSpace` shows); errors name the field by
    /// its index and parameter name.
    public init(json data: Data) throws(InvalidSetting) {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw InvalidSetting(name: "search space", value: "(not a JSON object)", expected: "an object with a \"parameters\" list")
        }
        let unknown = Set(root.keys).subtracting(["parameters"])
        if let key = unknown.sorted().first {
            throw InvalidSetting(name: "search space key", value: "\"\(key)\"", expected: "only \"parameters\"")
        }
        guard let list = root["parameters"] as? [Any] else {
            throw InvalidSetting(name: "parameters", value: "(missing or not a list)", expected: "a list of parameter objects")
        }
        var parameters: [SearchParameter] = []
        for (index, item) in list.enumerated() {
            parameters.append(try Self.parameter(item, field: "parameters[\(index)]"))
        }
        try self.init(parameters: parameters)
    }

    /// The space as a JSON object of the search-space file format.
    public var jsonObject: [String: Any] {
        ["parameters": parameters.map(Self.object)]
    }

    static func object(_ parameter: SearchParameter) -> [String: Any] {
        var object: [String: Any] = ["name": parameter.name]
        switch parameter.domain {
        case .float(let low, let high, let log):
            object.merge(["type": "float", "low": low, "high": high, "log": log]) { $1 }
        case .integer(let low, let high, let log):
            object.merge(["type": "int", "low": low, "high": high, "log": log]) { $1 }
        case .categorical(let choices):
            object.merge(["type": "categorical", "choices": choices.map(\.jsonValue)]) { $1 }
        }
        if let condition = parameter.condition {
            object["when"] = ["parameter": condition.parent, "values": condition.values.map(\.jsonValue)]
        }
        return object
    }

    static func parameter(_ item: Any, field: String) throws(InvalidSetting) -> SearchParameter {
        guard let object = item as? [String: Any] else {
            throw InvalidSetting(name: field, value: "(not an object)", expected: "an object with \"name\" and \"type\"")
        }
        guard let name = object["name"] as? String else {
            throw InvalidSetting(name: "\(field).name", value: "(missing or not a string)", expected: "the parameter's name")
        }
        let named = "\(field) (\(name))"
        let type = object["type"] as? String
        let keys: Set<String>
        let domain: ParameterDomain
        switch type {
        case "float":
            keys = ["name", "type", "low", "high", "log", "when"]
            let log = try flag(object, "log", named)
            domain = .float(low: try number(object, "low", named), high: try number(object, "high", named), log: log)
        case "int":
            keys = ["name", "type", "low", "high", "log", "when"]
            let log = try flag(object, "log", named)
            domain = .integer(low: try integer(object, "low", named), high: try integer(object, "high", named), log: log)
        case "categorical":
            keys = ["name", "type", "choices", "when"]
            guard let list = object["choices"] as? [Any] else {
                throw InvalidSetting(name: "\(named).choices", value: "(missing or not a list)", expected: "a list of numbers or strings")
            }
            domain = .categorical(try values(list, "\(named).choices"))
        default:
            throw InvalidSetting(
                name: "\(named).type", value: type.map { "\"\($0)\"" } ?? "(missing)", expected: "\"float\", \"int\" or \"categorical\"")
        }
        if let key = Set(object.keys).subtracting(keys).sorted().first {
            throw InvalidSetting(name: "\(named) key", value: "\"\(key)\"", expected: "one of \(keys.sorted().joined(separator: ", "))")
        }
        var condition: ParameterCondition?
        if let when = object["when"] {
            guard let when = when as? [String: Any], let parent = when["parameter"] as? String, let list = when["values"] as? [Any],
                when.count == 2
            else {
                throw InvalidSetting(
                    name: "\(named).when", value: "(malformed)", expected: "{\"parameter\": NAME, \"values\": [values of NAME]}")
            }
            condition = ParameterCondition(parent: parent, values: try values(list, "\(named).when.values"))
        }
        return SearchParameter(name: name, domain: domain, condition: condition)
    }

    static func number(_ object: [String: Any], _ key: String, _ field: String) throws(InvalidSetting) -> Double {
        guard let value = object[key].flatMap(ParameterValue.init(json:))?.number else {
            throw InvalidSetting(name: "\(field).\(key)", value: describe(object[key]), expected: "a finite number")
        }
        return value
    }

    static func integer(_ object: [String: Any], _ key: String, _ field: String) throws(InvalidSetting) -> Int {
        let value = try number(object, key, field)
        guard value.rounded() == value, abs(value) < 1e15 else {
            throw InvalidSetting(name: "\(field).\(key)", value: "\(value)", expected: "a whole number")
        }
        return Int(value)
    }

    static func flag(_ object: [String: Any], _ key: String, _ field: String) throws(InvalidSetting) -> Bool {
        guard let value = object[key] else { return false }
        guard let flag = value as? Bool else {
            throw InvalidSetting(name: "\(field).\(key)", value: describe(value), expected: "true or false")
        }
        return flag
    }

    static func values(_ list: [Any], _ field: String) throws(InvalidSetting) -> [ParameterValue] {
        var values: [ParameterValue] = []
        for item in list {
            guard let value = ParameterValue(json: item) else {
                throw InvalidSetting(name: field, value: describe(item), expected: "numbers or strings")
            }
            values.append(value)
        }
        return values
    }

    static func describe(_ value: Any?) -> String {
        guard let value else { return "(missing)" }
        return "\(value)"
    }
}
