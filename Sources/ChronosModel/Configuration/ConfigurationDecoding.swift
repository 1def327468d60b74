import ChronosFormats
import Foundation

/// RoPE settings in either `config.json` form: transformers 5 writes a `rope_parameters`
/// object holding `rope_theta`, `rope_type` and the scaling fields; transformers 4 a top-level
/// `rope_theta` with an optional `rope_scaling` object holding `type` (or `rope_type`) and the
/// scaling fields. `rotaryEmbedding` checks them and turns them into what the model runs.
public struct RoPEParameters: Codable, Sendable, Equatable {
    /// Base of the rotary frequencies θ_i = base^(−2i/d).
    public var ropeTheta: Float
    /// `default` for plain RoPE; `linear`, `llama3` and `yarn` are scaled variants; others
    /// (`dynamic`, `longrope`, …) are refused by name.
    public var ropeType: String
    /// `factor`: how many times the pretraining context is stretched (linear, llama3, yarn).
    public var factor: Double?
    /// `low_freq_factor` (llama3).
    public var lowFreqFactor: Double?
    /// `high_freq_factor` (llama3).
    public var highFreqFactor: Double?
    /// `original_max_position_embeddings`: the pretraining context (llama3, yarn); defaults to
    /// `max_position_embeddings`.
    public var originalMaxPositionEmbeddings: Int?
    /// `attention_factor` (yarn): the factor on cos and sin; derived from `factor`, `mscale` and
    /// `mscale_all_dim` when absent.
    public var attentionFactor: Double?
    /// `beta_fast` (yarn; default 32).
    public var betaFast: Double?
    /// `beta_slow` (yarn; default 1).
    public var betaSlow: Double?
    /// `mscale` (yarn).
    public var mscale: Double?
    /// `mscale_all_dim` (yarn): DeepSeek's multi-head latent attention also scales its softmax by it.
    public var mscaleAllDim: Double?
    /// `truncate` (yarn; default true): round the correction range outwards to whole dimensions.
    public var truncate: Bool?
    /// `partial_rotary_factor`: the share of each head's dimensions that rotate, the leading
    /// ones (GLM-4.5); also read from the top level of `config.json`, where hub configs keep it.
    public var partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
        case ropeTheta = "rope_theta"
        case ropeType = "rope_type"
        case type
        case factor
        case lowFreqFactor = "low_freq_factor"
        case highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case attentionFactor = "attention_factor"
        case betaFast = "beta_fast"
        case betaSlow = "beta_slow"
        case mscale
        case mscaleAllDim = "mscale_all_dim"
        case truncate
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// The keys of both forms as they appear at the top level of `config.json`.
    private enum ConfigKeys: String, CodingKey {
        case ropeParameters = "rope_parameters"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// RoPE with base `ropeTheta`, of type `ropeType`, its scaling fields unset.
    public init(ropeTheta: Float, ropeType: String = "default") {
        self.ropeTheta = ropeTheta
        self.ropeType = ropeType
    }

    /// Reads a `rope_parameters` (or `rope_scaling`) object; `rope_theta` defaults to
    /// `defaultTheta` when it has none.
    init(nested c: KeyedDecodingContainer<CodingKeys>, defaultTheta: Float) throws {
        ropeTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? defaultTheta
        ropeType =
            try c.decodeIfPresent(String.self, forKey: .ropeType)
            ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
        factor = try c.decodeIfPresent(Double.self, forKey: .factor)
        lowFreqFactor = try c.decodeIfPresent(Double.self, forKey: .lowFreqFactor)
        highFreqFactor = try c.decodeIfPresent(Double.self, forKey: .highFreqFactor)
        originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
        attentionFactor = try c.decodeIfPresent(Double.self, forKey: .attentionFactor)
        betaFast = try c.decodeIfPresent(Double.self, forKey: .betaFast)
        betaSlow = try c.decodeIfPresent(Double.self, forKey: .betaSlow)
        mscale = try c.decodeIfPresent(Double.self, forKey: .mscale)
        mscaleAllDim = try c.decodeIfPresent(Double.self, forKey: .mscaleAllDim)
        truncate = try c.decodeIfPresent(Bool.self, forKey: .truncate)
        partialRotaryFactor = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
    }

    public init(from decoder: any Decoder) throws {
        try self.init(nested: decoder.container(keyedBy: CodingKeys.self), defaultTheta: 10_000)
    }

    /// Writes the transformers 5 `rope_parameters` form.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(ropeType, forKey: .ropeType)
        try c.encodeIfPresent(factor, forKey: .factor)
        try c.encodeIfPresent(lowFreqFactor, forKey: .lowFreqFactor)
        try c.encodeIfPresent(highFreqFactor, forKey: .highFreqFactor)
        try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        try c.encodeIfPresent(attentionFactor, forKey: .attentionFactor)
        try c.encodeIfPresent(betaFast, forKey: .betaFast)
        try c.encodeIfPresent(betaSlow, forKey: .betaSlow)
        try c.encodeIfPresent(mscale, forKey: .mscale)
        try c.encodeIfPresent(mscaleAllDim, forKey: .mscaleAllDim)
        try c.encodeIfPresent(truncate, forKey: .truncate)
        try c.encodeIfPresent(partialRotaryFactor, forKey: .partialRotaryFactor)
    }

    /// Reads the settings from the top level of a `config.json` decoder, with `defaultTheta`
    /// when neither form gives a base.
    static func decode(from decoder: any Decoder, defaultTheta: Float = 10_000) throws -> RoPEParameters {
        let c = try decoder.container(keyedBy: ConfigKeys.self)
        let theta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? defaultTheta
        let partial = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        var parameters = RoPEParameters(ropeTheta: theta)
        for key in [ConfigKeys.ropeParameters, .ropeScaling] where c.contains(key) {
            if try c.decodeNil(forKey: key) { continue }
            parameters = try RoPEParameters(nested: c.nestedContainer(keyedBy: CodingKeys.self, forKey: key), defaultTheta: theta)
            break
        }
        parameters.partialRotaryFactor = parameters.partialRotaryFactor ?? partial
        return parameters
    }

    /// How many leading dimensions of a `headDim`-wide head rotate: `headDim ·
    /// partial_rotary_factor` rounded down, as transformers computes it, with `defaultFactor`
    /// when the config gives no factor. The factor must lie in (0, 1] and the width be even.
    func rotaryWidth(headDim: Int, defaultFactor: Double, file: String) throws -> Int {
        let factor = partialRotaryFactor ?? defaultFactor
        guard factor > 0, factor <= 1 else {
            throw ModelError.malformedConfig(
                file: file, field: "partial_rotary_factor", reason: "must be above 0 and at most 1, got \(factor)")
        }
        let width = Int(Double(headDim) * factor)
        guard width >= 2, width % 2 == 0 else {
            throw ModelError.malformedConfig(
                file: file, field: "partial_rotary_factor",
                reason: "\(factor) of head_dim \(headDim) rotates \(width) dimensions; RoPE needs an even number, at least 2")
        }
        return width
    }

    /// The checked rotary embedding these settings describe; a model whose context is
    /// `maxPositionEmbeddings` positions. Errors name the field of `file` at fault.
    func rotaryEmbedding(maxPositionEmbeddings: Int?, file: String) throws -> RotaryEmbedding {
        func field(_ key: CodingKeys) -> String { "rope_parameters.\(key.rawValue)" }
        func positive(_ value: Double?, _ key: CodingKeys) throws -> Double {
            guard let value else { throw ModelError.malformedConfig(file: file, field: field(key), reason: "is missing") }
            guard value > 0, value.isFinite else {
                throw ModelError.malformedConfig(file: file, field: field(key), reason: "must be positive and finite, got \(value)")
            }
            return value
        }
        func originalContext() throws -> Int {
            guard let context = originalMaxPositionEmbeddings ?? maxPositionEmbeddings else {
                throw ModelError.malformedConfig(file: file, field: field(.originalMaxPositionEmbeddings), reason: "is missing")
            }
            try ConfigurationLimits.check(
                context, in: ConfigurationLimits.positions, field: field(.originalMaxPositionEmbeddings), file: file)
            return context
        }
        let scaling: RotaryEmbedding.Scaling
        switch ropeType {
        case "default":
            scaling = .none
        case "linear":
            scaling = .linear(factor: try positive(factor, .factor))
        case "llama3":
            let low = try positive(lowFreqFactor, .lowFreqFactor), high = try positive(highFreqFactor, .highFreqFactor)
            guard high > low else {
                throw ModelError.malformedConfig(
                    file: file, field: field(.highFreqFactor), reason: "must exceed low_freq_factor (\(low)), got \(high)")
            }
            scaling = .llama3(
                factor: try positive(factor, .factor), lowFrequencyFactor: low, highFrequencyFactor: high,
                originalContext: try originalContext())
        case "yarn":
            let context = try originalContext()
            // DeepSeek-V3-style configs may leave the factor out: it is then the context's growth.
            let factor = try positive(factor ?? maxPositionEmbeddings.map { Double($0) / Double(context) }, .factor)
            for (value, key) in [(betaFast, CodingKeys.betaFast), (betaSlow, .betaSlow), (mscale, .mscale), (mscaleAllDim, .mscaleAllDim)] {
                if let value, !value.isFinite || value < 0 {
                    throw ModelError.malformedConfig(file: file, field: field(key), reason: "must be finite and not negative, got \(value)")
                }
            }
            if attentionFactor != nil { _ = try positive(attentionFactor, .attentionFactor) }
            // transformers treats 0 like an absent beta.
            let betaFast = self.betaFast.flatMap { $0 == 0 ? nil : $0 } ?? 32, betaSlow = self.betaSlow.flatMap { $0 == 0 ? nil : $0 } ?? 1
            let mscale = self.mscale ?? 0, mscaleAllDim = self.mscaleAllDim ?? 0
            let attention =
                attentionFactor
                ?? (mscale != 0 && mscaleAllDim != 0
                    ? RotaryEmbedding.yarnMscale(factor, mscale) / RotaryEmbedding.yarnMscale(factor, mscaleAllDim)
                    : RotaryEmbedding.yarnMscale(factor, 1))
            scaling = .yarn(
                factor: factor, originalContext: context, betaFast: betaFast, betaSlow: betaSlow, attentionFactor: attention,
                truncate: truncate ?? true, mscaleAllDim: mscaleAllDim)
        default:
            throw ModelError.unsupportedConfig(file: file, field: "rope_parameters.rope_type", value: "'\(ropeType)'")
        }
        return RotaryEmbedding(theta: ropeTheta, scaling: scaling)
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
