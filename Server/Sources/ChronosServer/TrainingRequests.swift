import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation

/// The shapes a model trained from the web UI starts from; a request's `model` object changes
/// single `config.json` fields of the shape.
enum ModelShape: String, CaseIterable {
    /// A few thousand parameters: trains in seconds, for trying the pipeline out.
    case tiny
    /// Two layers of width 64 with 8 experts: minutes on a laptop.
    case small
    /// `chronos train pretrain`'s default shape: four layers of width 256 with 8 experts.
    case base

    var configuration: ChronosConfiguration {
        switch self {
        case .tiny:
            ChronosConfiguration(
                hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8, kvLatentDim: 8, ropeDim: 4,
                slidingWindow: 8, experts: 4, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 16,
                sharedExpertIntermediateSize: 16, lookaheadSteps: 2)
        case .small:
            ChronosConfiguration(
                hiddenSize: 64, hiddenLayers: 2, attentionHeads: 4, keyValueHeads: 2, headDim: 16, kvLatentDim: 32, ropeDim: 8,
                slidingWindow: 64, experts: 8, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 128,
                sharedExpertIntermediateSize: 128, lookaheadSteps: 2)
        case .base:
            ChronosConfiguration(
                hiddenSize: 256, hiddenLayers: 4, attentionHeads: 8, keyValueHeads: 4, headDim: 32, kvLatentDim: 64, ropeDim: 16,
                slidingWindow: 128, experts: 8, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 512,
                sharedExpertIntermediateSize: 512, lookaheadSteps: 4)
        }
    }

    /// The `config.json` fields a request's `model` object may set.
    static let fields: Set<String> = [
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "kv_latent_dim", "rope_dim",
        "sliding_window", "num_experts", "num_experts_per_tok", "num_shared_experts", "moe_intermediate_size",
        "shared_expert_intermediate_size", "lookahead_steps"
    ]
}

/// The settings a training or tuning request shares: the data, the tokenizer, the model's shape
/// and the optimisation of each run, named as in a pipeline configuration (`batch_size`,
/// `learning_rate`, `seq_len`), every path inside the workspace.
struct PretrainRequest {
    /// The run's settings; `output` is set by the job (the run, or each trial's directory).
    var settings: PretrainSettings
    /// The tokenizer directory the request names, nil when one is trained on the data.
    var tokenizer: URL?
    /// The vocabulary of a tokenizer trained on the data.
    var vocabularySize: Int
    /// What the request asked for, as the job list shows it.
    var summary: [String: JSONValue]

    /// The keys every training and tuning request may have.
    static let keys: Set<String> = [
        "data", "heldout", "tokenizer", "vocab_size", "shape", "model", "steps", "batch_size", "learning_rate", "warmup_steps", "seed",
        "seq_len", "eval_every", "eval_sequences"
    ]

    /// The vocabulary sizes a tokenizer trained here may have: the 256 bytes and the special
    /// tokens, up to the largest vocabulary a configuration takes.
    static let vocabularyRange = (256 + TokenizerTrainer.chatSpecialTokens.count)...ConfigurationLimits.vocabulary.upperBound

    /// Reads the shared settings of `fields`, resolving paths in `workspace`; `output` is where
    /// the run (or study) goes. Every value is checked against the range training accepts.
    init(_ fields: RequestFields, workspace: TrainingWorkspace, output: URL) throws(APIError) {
        let data = try workspace.resolve(fields.requiredString("data"), field: "data", existing: true)
        let heldOut = try fields.string("heldout").map { path throws(APIError) in
            try workspace.resolve(path, field: "heldout", existing: true)
        }
        let tokenizerPath = try fields.string("tokenizer")
        tokenizer = try tokenizerPath.map { path throws(APIError) in try workspace.resolve(path, field: "tokenizer", existing: true) }
        if let tokenizerPath, let tokenizer, !ModelDirectory(tokenizer).hasTokenizer {
            throw .invalid(
                "tokenizer", "tokenizer \(tokenizerPath.debugDescription) has no tokenizer.json: expected a tokenizer directory")
        }
        vocabularySize = try fields.int("vocab_size") ?? 2048
        guard Self.vocabularyRange.contains(vocabularySize) else {
            throw .invalid(
                "vocab_size",
                "vocab_size \(vocabularySize) is invalid: expected \(Self.vocabularyRange.lowerBound) (the bytes and special tokens) to \(Self.vocabularyRange.upperBound)"
            )
        }
        let shapeName = try fields.string("shape") ?? ModelShape.small.rawValue
        guard let shape = ModelShape(rawValue: shapeName) else {
            throw .invalid(
                "shape",
                "shape \(shapeName.debugDescription) is invalid: expected one of \(ModelShape.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let model = try Self.model(shape, changes: fields.object("model"))

        var optimization = TrainingStage.pretrain.defaultOptimization
        optimization.steps = try fields.int("steps") ?? 200
        optimization.batchSize = try fields.int("batch_size") ?? 8
        optimization.learningRate = try fields.double("learning_rate").map { Float($0) } ?? optimization.learningRate
        optimization.warmupSteps = try fields.int("warmup_steps") ?? min(optimization.warmupSteps, optimization.steps / 10)
        let seed = try fields.int("seed") ?? 0
        guard seed >= 0 else { throw .invalid("seed", "seed \(seed) is invalid: expected a whole number from 0") }
        optimization.seed = UInt64(seed)
        settings = PretrainSettings(
            model: model, optimization: optimization, data: data, heldOut: heldOut, tokenizer: output, output: output)
        settings.model.vocabSize = vocabularySize
        settings.sequenceLength = try fields.int("seq_len") ?? 128
        settings.evaluateEvery = try fields.int("eval_every") ?? max(1, optimization.steps / 10)
        settings.evaluationSequences = try fields.int("eval_sequences") ?? 16
        summary = [
            "data": .string(workspace.relative(data)), "heldout": heldOut.map { .string(workspace.relative($0)) } ?? nil,
            "tokenizer": tokenizer.map { .string(workspace.relative($0)) } ?? nil, "vocab_size": .number(Double(vocabularySize)),
            "shape": .string(shapeName), "model": .object(Self.shapeJSON(model)), "steps": .number(Double(optimization.steps)),
            "batch_size": .number(Double(optimization.batchSize)), "learning_rate": .number(Double(optimization.learningRate)),
            "warmup_steps": .number(Double(optimization.warmupSteps)), "seed": .number(Double(optimization.seed)),
            "seq_len": .number(Double(settings.sequenceLength)), "eval_every": .number(Double(settings.evaluateEvery)),
            "eval_sequences": .number(Double(settings.evaluationSequences))
        ]
    }

    /// Throws the first setting outside its range (pretraining's own checks), named as the request names it.
    static func validate(_ settings: PretrainSettings) throws(APIError) {
        do {
            try settings.validate()
        } catch let error as InvalidSetting {
            let field = error.name == "model size" ? "model" : error.name
            throw .invalid(field, error.description)
        } catch ModelError.malformedConfig(_, let field, let reason) {
            let name = field == "vocab_size" ? "vocab_size" : "model.\(field)"
            throw .invalid(name, "\(name) is invalid: \(reason)")
        } catch {
            throw .invalid("model", "\(error)")
        }
    }

    /// `shape`'s configuration with the fields `changes` sets.
    static func model(_ shape: ModelShape, changes: [String: Any]?) throws(APIError) -> ChronosConfiguration {
        guard let changes, !changes.isEmpty else { return shape.configuration }
        if let unknown = changes.keys.sorted().first(where: { !ModelShape.fields.contains($0) }) {
            throw .invalid(
                "model.\(unknown)",
                "model.\(unknown) is not a shape field: expected one of \(ModelShape.fields.sorted().joined(separator: ", "))")
        }
        for key in changes.keys.sorted() {
            guard let number = changes[key] as? NSNumber, number.doubleValue == number.doubleValue.rounded(), abs(number.doubleValue) < 1e9
            else {
                throw .invalid("model.\(key)", "model.\(key) is invalid: expected a whole number")
            }
        }
        do {
            var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(shape.configuration)) as? [String: Any] ?? [:]
            object.merge(changes) { _, change in change }
            return try JSONDecoder().decode(ChronosConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
        } catch {
            throw .invalid("model", "model is not a Chronos configuration: \(error)")
        }
    }

    /// The shape fields of `model`, for the job list.
    static func shapeJSON(_ model: ChronosConfiguration) -> [String: JSONValue] {
        guard let data = try? JSONEncoder().encode(model), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        var shape: [String: JSONValue] = [:]
        for key in ModelShape.fields { if let number = object[key] as? NSNumber { shape[key] = .number(number.doubleValue) } }
        return shape
    }
}

/// The fields of a JSON request body, read with errors that name the field, its value and what
/// it accepts; a key the endpoint does not know is refused.
struct RequestFields {
    /// The body's members.
    let values: [String: Any]

    /// The members of `body`, which must be a JSON object with no key outside `allowed`.
    init(_ body: Data, allowed: Set<String>) throws(APIError) {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body) } catch {
            throw .malformedJSON("\(error.localizedDescription)")
        }
        guard let object = parsed as? [String: Any] else { throw .invalid("", "the request body must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .invalid(
                unknown, "\(unknown) is not a field of this request: expected one of \(allowed.sorted().joined(separator: ", "))")
        }
        values = object.filter { !($0.value is NSNull) }
    }

    /// A non-empty string, if present.
    func string(_ key: String) throws(APIError) -> String? {
        guard let value = values[key] else { return nil }
        guard let text = value as? String, !text.isEmpty else { throw .invalid(key, "\(key) must be a non-empty string") }
        return text
    }

    /// A non-empty string that must be present.
    func requiredString(_ key: String) throws(APIError) -> String {
        guard let text = try string(key) else { throw .invalid(key, "\(key) is required") }
        return text
    }

    /// A number, if present.
    func double(_ key: String) throws(APIError) -> Double? {
        guard let value = values[key] else { return nil }
        guard let number = value as? NSNumber, number.doubleValue.isFinite else {
            throw .invalid(key, "\(key) must be a number")
        }
        return number.doubleValue
    }

    /// A whole number, if present (at most 2⁵³ in size, which every JSON number converts to exactly).
    func int(_ key: String) throws(APIError) -> Int? {
        guard let value = try double(key) else { return nil }
        guard value == value.rounded(), abs(value) <= 9_007_199_254_740_992 else {
            throw .invalid(key, "\(key) \(value) is invalid: expected a whole number")
        }
        return Int(value)
    }

    /// True or false, if present.
    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let value = values[key] else { return nil }
        guard let flag = value as? Bool else { throw .invalid(key, "\(key) must be true or false") }
        return flag
    }

    /// An object, if present.
    func object(_ key: String) throws(APIError) -> [String: Any]? {
        guard let value = values[key] else { return nil }
        guard let object = value as? [String: Any] else { throw .invalid(key, "\(key) must be an object") }
        return object
    }

    /// A list of strings, if present.
    func strings(_ key: String) throws(APIError) -> [String]? {
        guard let value = values[key] else { return nil }
        guard let list = value as? [String] else { throw .invalid(key, "\(key) must be a list of strings") }
        return list
    }
}
