import ChronosFormats
import Foundation

/// RoPE settings in either `config.json` form: transformers 5 writes a `rope_parameters`
/// object; transformers 4 a top-level `rope_theta` with an optional `rope_scaling` object.
public struct RoPEParameters: Codable, Sendable, Equatable {
    /// Base of the rotary frequencies θ_i = base^(−2i/d).
    public var ropeTheta: Float
    /// `default` for plain RoPE; scaled variants (`linear`, `dynamic`, `yarn`, `llama3`, …)
    /// are recognised but not implemented.
    public var ropeType: String

    enum CodingKeys: String, CodingKey {
        case ropeTheta = "rope_theta"
        case ropeType = "rope_type"
    }

    /// The keys of both forms as they appear at the top level of `config.json`.
    private enum ConfigKeys: String, CodingKey {
        case ropeParameters = "rope_parameters"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
    }

    /// The keys inside `rope_parameters` or `rope_scaling`.
    private enum NestedKeys: String, CodingKey {
        case ropeTheta = "rope_theta"
        case ropeType = "rope_type"
        case type
    }

    /// Plain RoPE with base `ropeTheta`.
    public init(ropeTheta: Float, ropeType: String = "default") {
        self.ropeTheta = ropeTheta
        self.ropeType = ropeType
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: NestedKeys.self)
        ropeTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? 10_000
        ropeType =
            try c.decodeIfPresent(String.self, forKey: .ropeType)
            ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
    }

    /// Reads the settings from the top level of a `config.json` decoder, with `defaultTheta`
    /// when neither form gives a base.
    static func decode(from decoder: any Decoder, defaultTheta: Float = 10_000) throws -> RoPEParameters {
        let c = try decoder.container(keyedBy: ConfigKeys.self)
        let topLevelTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta)
        if c.contains(.ropeParameters), try !c.decodeNil(forKey: .ropeParameters) {
            let nested = try c.nestedContainer(keyedBy: NestedKeys.self, forKey: .ropeParameters)
            let theta = try nested.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? topLevelTheta ?? defaultTheta
            let type =
                try nested.decodeIfPresent(String.self, forKey: .ropeType)
                ?? nested.decodeIfPresent(String.self, forKey: .type) ?? "default"
            return RoPEParameters(ropeTheta: theta, ropeType: type)
        }
        var type = "default"
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling) {
            let scaling = try c.nestedContainer(keyedBy: NestedKeys.self, forKey: .ropeScaling)
            type =
                try scaling.decodeIfPresent(String.self, forKey: .ropeType)
                ?? scaling.decodeIfPresent(String.self, forKey: .type) ?? "default"
        }
        return RoPEParameters(ropeTheta: topLevelTheta ?? defaultTheta, ropeType: type)
    }

    /// The base, or an error when a scaled variant is asked for.
    func plainTheta(file: String) throws -> Float {
        guard ropeType == "default" else {
            throw ModelError.unsupportedConfig(file: file, field: "rope_parameters.rope_type", value: "'\(ropeType)'")
        }
        return ropeTheta
    }
}

extension KeyedDecodingContainer {
    /// A token id field that holds one id, a list of ids, or null.
    func decodeTokenIDs(forKey key: Key) throws -> [Int] {
        guard contains(key), try !decodeNil(forKey: key) else { return [] }
        if let single = try? decode(Int.self, forKey: key) { return [single] }
        return try decode([Int].self, forKey: key)
    }
}

/// Reading `config.json` and turning decoding failures into `ModelError.malformedConfig`
/// naming the file and the field.
/// The sizes a `config.json` may give: beyond any published model, and small enough that no
/// count or product of counts made from them overflows or asks for memory before the
/// checkpoint's tensors are checked against them.
public enum ConfigurationLimits {
    /// Tokens in the vocabulary.
    public static let vocabulary = 1...(1 << 22)
    /// Hidden, intermediate and latent widths.
    public static let width = 1...(1 << 18)
    /// Widths of one attention head.
    public static let headWidth = 1...4096
    /// Decoder layers.
    public static let layers = 1...1024
    /// Attention heads.
    public static let heads = 1...4096
    /// Routed experts per layer.
    public static let experts = 1...65_536
    /// Positions of the context and sliding windows.
    public static let positions = 1...(1 << 24)

    /// Throws `malformedConfig` naming `field` of `file` unless `value` lies in `range`.
    static func check(_ value: Int, in range: ClosedRange<Int>, field: String, file: String) throws {
        guard range.contains(value) else {
            throw ModelError.malformedConfig(
                file: file, field: field,
                reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
    }
}

enum ConfigurationFile {
    /// The bytes of `url`, or an error naming it.
    static func read(_ url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ModelError.malformedConfig(file: url.path, field: "", reason: "cannot be read (\(FileSystemError.reason(error)))")
        }
    }

    /// `T` decoded from `data`, with decoding errors named by field.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
                let (field, value) = integerFieldHoldingNonInteger(T.self, in: data)
            {
                throw ModelError.malformedConfig(file: file, field: field, reason: "\(value) is not an integer (or is beyond 64 bits)")
            }
            throw malformed(error, file: file)
        }
    }

    /// Foundation's decoder refuses the whole document, naming no field, when a number does not
    /// fit the integer field it is decoded into (256.5, 1e30). This finds that field: the first
    /// fractional or huge number whose replacement by 0 lets decoding get past it.
    static func integerFieldHoldingNonInteger<T: Decodable>(_ type: T.Type, in data: Data) -> (field: String, value: Double)? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        var candidates: [([String], Double)] = []
        func collect(_ value: Any, at path: [String]) {
            if let dictionary = value as? [String: Any] {
                for (key, child) in dictionary { collect(child, at: path + [key]) }
            } else if !(value is String), !(value is Bool), let number = (value as? NSNumber)?.doubleValue,
                number.rounded() != number || Swift.abs(number) >= 0x1p63
            {
                candidates.append((path, number))
            }
        }
        collect(object, at: [])
        func replacing(_ path: ArraySlice<String>, in dictionary: [String: Any]) -> [String: Any] {
            guard let key = path.first else { return dictionary }
            var copy = dictionary
            if path.count == 1 {
                copy[key] = 0
            } else if let child = dictionary[key] as? [String: Any] {
                copy[key] = replacing(path.dropFirst(), in: child)
            }
            return copy
        }
        for (path, number) in candidates.sorted(by: { $0.0.lexicographicallyPrecedes($1.0) }) {
            guard let repaired = try? JSONSerialization.data(withJSONObject: replacing(path[...], in: object)) else { continue }
            do {
                _ = try JSONDecoder().decode(T.self, from: repaired)
            } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
                continue
            } catch {}
            return (path.joined(separator: "."), number)
        }
        return nil
    }

    /// `malformedConfig` for a decoding error, naming the JSON path of the field.
    static func malformed(_ error: DecodingError, file: String) -> ModelError {
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { path, key in
                if let index = key.intValue { return path + "[\(index)]" }
                return path.isEmpty ? key.stringValue : path + "." + key.stringValue
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .malformedConfig(file: file, field: path(context.codingPath + [key]), reason: "is missing")
        case .typeMismatch(let type, let context):
            return .malformedConfig(file: file, field: path(context.codingPath), reason: "expected \(describe(type))")
        case .valueNotFound(let type, let context):
            return .malformedConfig(file: file, field: path(context.codingPath), reason: "is null; expected \(describe(type))")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return .malformedConfig(file: file, field: "", reason: "is not a valid JSON object")
            }
            return .malformedConfig(file: file, field: path(context.codingPath), reason: context.debugDescription)
        @unknown default:
            return .malformedConfig(file: file, field: "", reason: "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        default: "\(type)"
        }
    }
}

/// The fields every `config.json` shares, read before the architecture is known.
struct ConfigurationHeader: Decodable {
    var modelType: String

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
    }
}
