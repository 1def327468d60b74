import ChronosFormats
import ChronosTensor
import Foundation

/// The attention of one Chronos decoder layer (`layer_types` in `config.json`), written `mla`
/// or `sliding`; transformers' `full_attention` and `sliding_attention`, which a checkpoint
/// exported for transformers uses, are read as the same.
public enum ChronosAttentionKind: String, Codable, Sendable, CaseIterable {
    /// Multi-head latent attention over the whole prefix: caches one compressed latent and one
    /// shared RoPE key per position (see `LatentAttention`).
    case mla
    /// Grouped-query attention over the last `sliding_window` positions, RoPE over whole heads.
    case sliding

    /// transformers' name for this kind of layer.
    public var transformersName: String {
        switch self {
        case .mla: "full_attention"
        case .sliding: "sliding_attention"
        }
    }

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let kind = Self(rawValue: name) ?? Self.allCases.first(where: { $0.transformersName == name }) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "'\(name)' is not a layer type: mla, sliding, full_attention or sliding_attention"))
        }
        self = kind
    }
}

/// `config.json` of a Chronos-native model (`model_type` `chronos`): a decoder whose layers
/// alternate multi-head latent attention and sliding-window attention, every feed-forward a
/// mixture of routed SwiGLU experts plus always-on shared experts (the soft-fallback path), and
/// a lookahead router head that predicts the experts of the next `lookahead_steps` tokens.
///
/// Every field has a default (given on each property), so a configuration can be decoded from
/// a sparse JSON object or built in code with `init(…)` and edited field by field.
public struct ChronosConfiguration: Codable, Sendable, Equatable {
    /// The `model_type` that selects this architecture.
    public static let modelType = "chronos"

    /// `model_type`: always `chronos`.
    public var modelType: String
    /// `architectures`; default `["ChronosForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`; default 32000.
    public var vocabSize: Int
    /// `hidden_size`: width H of the residual stream; default 512.
    public var hiddenSize: Int
    /// `num_hidden_layers`; default 8.
    public var hiddenLayers: Int
    /// `num_attention_heads`: query heads of every layer; default 8.
    public var attentionHeads: Int
    /// `num_key_value_heads`: key/value heads of sliding layers (MLA layers project keys and
    /// values up per query head); default 2.
    public var keyValueHeads: Int
    /// `head_dim`: head width of sliding layers, and the no-RoPE query/key width and the value
    /// width of MLA heads; default 64.
    public var headDim: Int
    /// `kv_latent_dim`: width of the compressed key/value latent MLA caches; default 128.
    public var kvLatentDim: Int
    /// `rope_dim`: width of the decoupled RoPE part of each MLA query head and of the shared
    /// RoPE key; MLA scores are scaled by 1/√(head_dim + rope_dim); default 32.
    public var ropeDim: Int
    /// `sliding_window`: a sliding layer's query sees this many positions, itself included;
    /// default 512.
    public var slidingWindow: Int
    /// `layer_types`: `mla` or `sliding` per layer; nil (the default) means `mla` on even
    /// layers and `sliding` on odd ones (see `attentionKinds`).
    public var layerTypes: [ChronosAttentionKind]?
    /// `num_experts`: routed experts E per layer; default 16.
    public var experts: Int
    /// `num_experts_per_tok`: top-k; default 2.
    public var expertsPerToken: Int
    /// `num_shared_experts`: always-on SwiGLU experts per layer, summed without a gate;
    /// default 1. With none there is no soft fallback (see `MoEBlock`).
    public var sharedExperts: Int
    /// `moe_intermediate_size`: width of one routed expert; default 512.
    public var moeIntermediateSize: Int
    /// `shared_expert_intermediate_size`: width of one shared expert; default 512.
    public var sharedExpertIntermediateSize: Int
    /// `norm_topk_prob`: renormalise the top-k probabilities to sum to 1; default true.
    public var normTopKProb: Bool
    /// `lookahead_steps`: K, the furthest future token the lookahead router predicts; default 4.
    public var lookaheadSteps: Int
    /// `rms_norm_eps`; default 1e-6.
    public var rmsNormEps: Float
    /// `rope_theta` (or `rope_parameters.rope_theta`); default 10000.
    public var ropeTheta: Float
    /// `tie_word_embeddings`: the LM head is the embedding table; default true.
    public var tieWordEmbeddings: Bool
    /// `max_position_embeddings`; default 4096.
    public var maxPositionEmbeddings: Int?
    /// `bos_token_id`; default none.
    public var bosTokenId: Int?
    /// `eos_token_id` (one id or several); default none.
    public var eosTokenId: [Int]
    /// `pad_token_id`; default none.
    public var padTokenId: Int?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case architectures
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case hiddenLayers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case kvLatentDim = "kv_latent_dim"
        case ropeDim = "rope_dim"
        case slidingWindow = "sliding_window"
        case layerTypes = "layer_types"
        case experts = "num_experts"
        case expertsPerToken = "num_experts_per_tok"
        case sharedExperts = "num_shared_experts"
        case moeIntermediateSize = "moe_intermediate_size"
        case sharedExpertIntermediateSize = "shared_expert_intermediate_size"
        case normTopKProb = "norm_topk_prob"
        case lookaheadSteps = "lookahead_steps"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case tieWordEmbeddings = "tie_word_embeddings"
        case maxPositionEmbeddings = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
    }

    /// A configuration with every field given or defaulted.
    public init(
        vocabSize: Int = 32000, hiddenSize: Int = 512, hiddenLayers: Int = 8, attentionHeads: Int = 8,
        keyValueHeads: Int = 2, headDim: Int = 64, kvLatentDim: Int = 128, ropeDim: Int = 32,
        slidingWindow: Int = 512, layerTypes: [ChronosAttentionKind]? = nil, experts: Int = 16,
        expertsPerToken: Int = 2, sharedExperts: Int = 1, moeIntermediateSize: Int = 512,
        sharedExpertIntermediateSize: Int = 512, normTopKProb: Bool = true, lookaheadSteps: Int = 4,
        rmsNormEps: Float = 1e-6, ropeTheta: Float = 10_000, tieWordEmbeddings: Bool = true,
        maxPositionEmbeddings: Int? = 4096, bosTokenId: Int? = nil, eosTokenId: [Int] = [], padTokenId: Int? = nil
    ) {
        modelType = Self.modelType
        architectures = ["ChronosForCausalLM"]
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.hiddenLayers = hiddenLayers
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
        self.kvLatentDim = kvLatentDim
        self.ropeDim = ropeDim
        self.slidingWindow = slidingWindow
        self.layerTypes = layerTypes
        self.experts = experts
        self.expertsPerToken = expertsPerToken
        self.sharedExperts = sharedExperts
        self.moeIntermediateSize = moeIntermediateSize
        self.sharedExpertIntermediateSize = sharedExpertIntermediateSize
        self.normTopKProb = normTopKProb
        self.lookaheadSteps = lookaheadSteps
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
    }

    public init(from decoder: any Decoder) throws {
        let defaults = ChronosConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        modelType = try value(.modelType, Self.modelType)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures) ?? defaults.architectures
        vocabSize = try value(.vocabSize, defaults.vocabSize)
        hiddenSize = try value(.hiddenSize, defaults.hiddenSize)
        hiddenLayers = try value(.hiddenLayers, defaults.hiddenLayers)
        attentionHeads = try value(.attentionHeads, defaults.attentionHeads)
        keyValueHeads = try value(.keyValueHeads, defaults.keyValueHeads)
        headDim = try value(.headDim, defaults.headDim)
        kvLatentDim = try value(.kvLatentDim, defaults.kvLatentDim)
        ropeDim = try value(.ropeDim, defaults.ropeDim)
        slidingWindow = try value(.slidingWindow, defaults.slidingWindow)
        layerTypes = try c.decodeIfPresent([ChronosAttentionKind].self, forKey: .layerTypes)
        experts = try value(.experts, defaults.experts)
        expertsPerToken = try value(.expertsPerToken, defaults.expertsPerToken)
        sharedExperts = try value(.sharedExperts, defaults.sharedExperts)
        moeIntermediateSize = try value(.moeIntermediateSize, defaults.moeIntermediateSize)
        sharedExpertIntermediateSize = try value(.sharedExpertIntermediateSize, defaults.sharedExpertIntermediateSize)
        normTopKProb = try value(.normTopKProb, defaults.normTopKProb)
        lookaheadSteps = try value(.lookaheadSteps, defaults.lookaheadSteps)
        rmsNormEps = try value(.rmsNormEps, defaults.rmsNormEps)
        // Either form of the RoPE settings is read; only plain RoPE is implemented.
        let rope = try RoPEParameters.decode(from: decoder, defaultTheta: defaults.ropeTheta)
        guard rope.ropeType == "default" else {
            throw DecodingError.dataCorruptedError(
                forKey: .ropeTheta, in: c,
                debugDescription: "rope type '\(rope.ropeType)' is not supported")
        }
        ropeTheta = rope.ropeTheta
        tieWordEmbeddings = try value(.tieWordEmbeddings, defaults.tieWordEmbeddings)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? defaults.maxPositionEmbeddings
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
    }

    /// Writes every field, `layer_types` resolved per layer and `eos_token_id` as one id when
    /// there is one.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encodeIfPresent(architectures, forKey: .architectures)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(hiddenLayers, forKey: .hiddenLayers)
        try c.encode(attentionHeads, forKey: .attentionHeads)
        try c.encode(keyValueHeads, forKey: .keyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(kvLatentDim, forKey: .kvLatentDim)
        try c.encode(ropeDim, forKey: .ropeDim)
        try c.encode(slidingWindow, forKey: .slidingWindow)
        try c.encode(attentionKinds, forKey: .layerTypes)
        try c.encode(experts, forKey: .experts)
        try c.encode(expertsPerToken, forKey: .expertsPerToken)
        try c.encode(sharedExperts, forKey: .sharedExperts)
        try c.encode(moeIntermediateSize, forKey: .moeIntermediateSize)
        try c.encode(sharedExpertIntermediateSize, forKey: .sharedExpertIntermediateSize)
        try c.encode(normTopKProb, forKey: .normTopKProb)
        try c.encode(lookaheadSteps, forKey: .lookaheadSteps)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        if eosTokenId.count == 1 {
            try c.encode(eosTokenId[0], forKey: .eosTokenId)
        } else if !eosTokenId.isEmpty {
            try c.encode(eosTokenId, forKey: .eosTokenId)
        }
        try c.encodeIfPresent(padTokenId, forKey: .padTokenId)
    }

    /// The configuration in `directory`'s `config.json`, validated: errors name the file and
    /// the field at fault, and a directory of another architecture is refused.
    public init(directory: URL) throws {
        let url = ModelDirectory(directory).config
        self = try ConfigurationFile.decode(ChronosConfiguration.self, from: ConfigurationFile.read(url), file: url.path)
        try validate(file: url.path)
    }

    /// The attention of each layer: `layer_types`, or `mla` on even layers and `sliding` on odd.
    public var attentionKinds: [ChronosAttentionKind] {
        layerTypes ?? (0..<hiddenLayers).map { $0 % 2 == 0 ? .mla : .sliding }
    }

    /// Checks the sizes fit together and lie within `ConfigurationLimits`; errors name the
    /// `config.json` field at fault and the range it may take.
    public func validate(file: String = ModelDirectory.Name.config) throws {
        func check(_ condition: Bool, _ field: CodingKeys, _ reason: String) throws {
            if !condition { throw ModelError.malformedConfig(file: file, field: field.rawValue, reason: reason) }
        }
        func within(_ value: Int, _ range: ClosedRange<Int>, _ field: CodingKeys) throws {
            try ConfigurationLimits.check(value, in: range, field: field.rawValue, file: file)
        }
        typealias Limits = ConfigurationLimits
        try check(modelType == Self.modelType, .modelType, "must be '\(Self.modelType)', got '\(modelType)'")
        try within(vocabSize, Limits.vocabulary, .vocabSize)
        try within(hiddenSize, Limits.width, .hiddenSize)
        try within(hiddenLayers, Limits.layers, .hiddenLayers)
        try within(attentionHeads, Limits.heads, .attentionHeads)
        try check(
            keyValueHeads > 0 && attentionHeads % keyValueHeads == 0, .keyValueHeads,
            "\(keyValueHeads) must be positive and divide num_attention_heads (\(attentionHeads))")
        try within(headDim, Limits.headWidth, .headDim)
        try check(headDim % 2 == 0, .headDim, "must be even for RoPE, got \(headDim)")
        try within(kvLatentDim, Limits.width, .kvLatentDim)
        try within(ropeDim, Limits.headWidth, .ropeDim)
        try check(ropeDim % 2 == 0, .ropeDim, "must be even, got \(ropeDim)")
        try within(slidingWindow, Limits.positions, .slidingWindow)
        try check(
            attentionKinds.count == hiddenLayers, .layerTypes,
            "has \(attentionKinds.count) entries for \(hiddenLayers) layers")
        try within(experts, Limits.experts, .experts)
        try check(
            expertsPerToken > 0 && expertsPerToken <= experts, .expertsPerToken,
            "\(expertsPerToken) must be between 1 and the number of experts (\(experts))")
        try within(sharedExperts, 0...Limits.experts.upperBound, .sharedExperts)
        try within(moeIntermediateSize, Limits.width, .moeIntermediateSize)
        if sharedExperts > 0 { try within(sharedExpertIntermediateSize, Limits.width, .sharedExpertIntermediateSize) }
        try within(lookaheadSteps, 0...Limits.layers.upperBound, .lookaheadSteps)
        try check(rmsNormEps > 0 && rmsNormEps < 1, .rmsNormEps, "must be between 0 and 1 (exclusive), got \(rmsNormEps)")
        try check(ropeTheta > 0 && ropeTheta.isFinite, .ropeTheta, "must be positive and finite, got \(ropeTheta)")
        if let maxPositionEmbeddings { try within(maxPositionEmbeddings, Limits.positions, .maxPositionEmbeddings) }
    }

    /// The number of parameters a model of this configuration has, counted in floating point
    /// so that no configuration overflows: for sizing a model before it is built.
    public var approximateParameterCount: Double {
        let hidden = Double(hiddenSize), heads = Double(attentionHeads), head = Double(headDim)
        let attention =
            heads * (Double(ropeDim) + head) * hidden + Double(kvLatentDim + ropeDim) * hidden
            + 2 * heads * head * Double(kvLatentDim) + hidden * heads * head + 2 * Double(keyValueHeads) * head * hidden
        let experts =
            Double(experts) * 3 * hidden * Double(moeIntermediateSize)
            + Double(sharedExperts) * 3 * hidden * Double(sharedExpertIntermediateSize) + Double(self.experts) * hidden
        let lookahead = Double(LookaheadRouter.width(hiddenSize: hiddenSize)) * (hidden + Double((lookaheadSteps + 1) * self.experts))
        return Double(vocabSize) * hidden * (tieWordEmbeddings ? 1 : 2) + Double(hiddenLayers) * (attention + experts) + lookahead
    }
}

extension ChronosConfiguration: TransformerArchitecture {
    static let checkpointKeys = CheckpointKeys.chronos

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try validate(file: file)
        // Chronos sums its shared experts without a gate; their path also takes the soft fallback.
        let shared =
            sharedExperts > 0
            ? SharedExpertConfiguration(count: sharedExperts, intermediateSize: sharedExpertIntermediateSize, gated: false) : nil
        let mixture = MixtureConfiguration(
            expertCount: experts, topK: expertsPerToken, intermediateSize: moeIntermediateSize,
            normalizeTopK: normTopKProb, shared: shared)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads, headDim: headDim,
            rope: .plain(theta: ropeTheta), rmsNormEps: rmsNormEps, tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: false, outputBias: false, mlpBias: false, queryKeyNorm: .none,
            // MLA layers cache one latent per position; sliding layers keep only their window.
            attention: attentionKinds.map { kind in
                switch kind {
                case .mla:
                    .latent(
                        LatentAttentionConfiguration(
                            latentDim: kvLatentDim, ropeDim: ropeDim, valueDim: headDim, layout: .chronos, normEps: rmsNormEps))
                case .sliding: .grouped(window: slidingWindow)
                }
            },
            feedForward: Array(repeating: .mixture(mixture), count: hiddenLayers),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings,
            // The lookahead head reads the residual stream after layer 0.
            lookahead: LookaheadConfiguration(steps: lookaheadSteps, experts: experts, inputLayer: 0))
    }

    /// Chronos checkpoints are written in the layout the model reads: nothing to rename.
    static func sanitize(
        _ weights: [String: Tensor], configuration: TransformerConfiguration,
        location: String
    ) throws -> [String: Tensor] {
        weights
    }
}

extension TransformerLanguageModel {
    /// A Chronos-native model over `weights` (names as in `ChronosWeightNames`), each checked
    /// against the shape `configuration` implies. Routed experts come from `experts`, or from
    /// `weights` (all resident) when it is nil.
    public convenience init(
        configuration: ChronosConfiguration, weights: [String: Tensor],
        experts: (any ExpertProvider)? = nil
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try self.init(
            configuration: configuration.transformerConfiguration(file: "configuration"),
            keys: ChronosConfiguration.checkpointKeys, configJSON: encoder.encode(configuration), weights: weights,
            experts: experts, location: "the weights given")
    }
}
