import ChronosFormats
import ChronosTensor
import Foundation

/// The attention of one Chronos decoder layer (`layer_types` in `config.json`).
public enum ChronosAttentionKind: String, Codable, Sendable, CaseIterable {
    /// Multi-head latent attention over the whole prefix: caches one compressed latent and one
    /// shared RoPE key per position (see `LatentAttention`).
    case mla
    /// Grouped-query attention over the last `sliding_window` positions, RoPE over whole heads.
    case sliding
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
    public init(vocabSize: Int = 32000, hiddenSize: Int = 512, hiddenLayers: Int = 8, attentionHeads: Int = 8,
                keyValueHeads: Int = 2, headDim: Int = 64, kvLatentDim: Int = 128, ropeDim: Int = 32,
                slidingWindow: Int = 512, layerTypes: [ChronosAttentionKind]? = nil, experts: Int = 16,
                expertsPerToken: Int = 2, sharedExperts: Int = 1, moeIntermediateSize: Int = 512,
                sharedExpertIntermediateSize: Int = 512, normTopKProb: Bool = true, lookaheadSteps: Int = 4,
                rmsNormEps: Float = 1e-6, ropeTheta: Float = 10_000, tieWordEmbeddings: Bool = true,
                maxPositionEmbeddings: Int? = 4096, bosTokenId: Int? = nil, eosTokenId: [Int] = [], padTokenId: Int? = nil) {
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
            throw DecodingError.dataCorruptedError(forKey: .ropeTheta, in: c,
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

    /// The attention of each layer: `layer_types`, or `mla` on even layers and `sliding` on odd.
    public var attentionKinds: [ChronosAttentionKind] {
        layerTypes ?? (0..<hiddenLayers).map { $0 % 2 == 0 ? .mla : .sliding }
    }

    /// Checks the sizes fit together and lie within `ConfigurationLimits`; errors name the
    /// `config.json` field at fault and the range it may take.
    public func validate(file: String = "config.json") throws {
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
        try check(keyValueHeads > 0 && attentionHeads % keyValueHeads == 0, .keyValueHeads,
                  "\(keyValueHeads) must be positive and divide num_attention_heads (\(attentionHeads))")
        try within(headDim, Limits.headWidth, .headDim)
        try check(headDim % 2 == 0, .headDim, "must be even for RoPE, got \(headDim)")
        try within(kvLatentDim, Limits.width, .kvLatentDim)
        try within(ropeDim, Limits.headWidth, .ropeDim)
        try check(ropeDim % 2 == 0, .ropeDim, "must be even, got \(ropeDim)")
        try within(slidingWindow, Limits.positions, .slidingWindow)
        try check(attentionKinds.count == hiddenLayers, .layerTypes,
                  "has \(attentionKinds.count) entries for \(hiddenLayers) layers")
        try within(experts, Limits.experts, .experts)
        try check(expertsPerToken > 0 && expertsPerToken <= experts, .expertsPerToken,
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
        let attention = heads * (Double(ropeDim) + head) * hidden + Double(kvLatentDim + ropeDim) * hidden
            + 2 * heads * head * Double(kvLatentDim) + hidden * heads * head + 2 * Double(keyValueHeads) * head * hidden
        let experts = Double(experts) * 3 * hidden * Double(moeIntermediateSize)
            + Double(sharedExperts) * 3 * hidden * Double(sharedExpertIntermediateSize) + Double(self.experts) * hidden
        let lookahead = Double(LookaheadRouter.width(hiddenSize: hiddenSize)) * (hidden + Double((lookaheadSteps + 1) * self.experts))
        return Double(vocabSize) * hidden * (tieWordEmbeddings ? 1 : 2) + Double(hiddenLayers) * (attention + experts) + lookahead
    }

    /// What `chronos inspect` shows.
    var summary: ModelSummary {
        ModelSummary(modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
                     layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads, headDim: headDim,
                     expertsPerLayer: Array(repeating: experts, count: hiddenLayers), expertsPerToken: expertsPerToken,
                     hasSharedExpert: sharedExperts > 0, tiedEmbeddings: tieWordEmbeddings, bosTokenId: bosTokenId,
                     eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}

/// How a Chronos forward pass treats routed experts beyond what the `ExpertProvider` says.
public struct ChronosForwardOptions: Sendable {
    /// Availability a ∈ [0, 1] of routed experts by (layer, expert); absent ones are 1. An
    /// expert the provider does not have is 0 whatever this says. Where a < 1 the shared path
    /// takes over the rest of its weight (soft fallback; see `MoEBlock`).
    public var availability: [ExpertKey: Float]
    /// For training the fallback: each selected (token, expert) slot is made unavailable with
    /// this probability, drawn from `SplitMix64(seed: fallbackMaskSeed)` layer by layer, token
    /// by token, slot by slot.
    public var fallbackMaskProbability: Float
    /// Seed of the generator behind `fallbackMaskProbability`; change it every step.
    public var fallbackMaskSeed: UInt64
    /// Whether the lookahead head reads a detached copy of the block-0 hidden state, so that
    /// a loss on its predictions trains only the head (as for a frozen model).
    public var detachesLookaheadInput: Bool

    /// Options with every field given or defaulted (everything available, no dropping).
    public init(availability: [ExpertKey: Float] = [:], fallbackMaskProbability: Float = 0, fallbackMaskSeed: UInt64 = 0,
                detachesLookaheadInput: Bool = false) {
        self.availability = availability
        self.fallbackMaskProbability = fallbackMaskProbability
        self.fallbackMaskSeed = fallbackMaskSeed
        self.detachesLookaheadInput = detachesLookaheadInput
    }
}

/// What one Chronos MoE layer did with a batch of tokens. Tensors are recorded for gradients
/// when the forward pass ran under `Autograd.recording`.
public struct ChronosLayerRouting: Sendable {
    /// Decoder layer index.
    public let layer: Int
    /// The MoE block's input `[T, hidden]` (the post-attention RMSNorm of the residual stream):
    /// run a frozen reference router on it to compare routings on the same inputs.
    public let input: Tensor
    /// Router logits `[T, E]`.
    public let routerLogits: Tensor
    /// Router distribution softmax(logits) `[T, E]`.
    public let routerProbabilities: Tensor
    /// The top-k experts of each token, in descending probability: T rows of k.
    public let selectedExperts: [[Int]]
    /// The combine weights w of the selected experts `[T, k]`, before any fallback; the
    /// gradient reaches the router through them.
    public let combineWeights: Tensor
    /// The availability a each selected slot had: T rows of k.
    public let availability: [[Float]]
}

/// Everything a Chronos forward pass computed, for training losses and the runtime.
public struct ChronosForwardOutput: Sendable {
    /// Position of the first token.
    public let positionOffset: Int
    /// Next-token logits `[T, vocab]`.
    public let logits: Tensor
    /// Routing of each layer, in layer order.
    public let layers: [ChronosLayerRouting]
    /// The residual stream after decoder layer 0 `[T, hidden]`: what the lookahead router reads.
    public let blockZeroHidden: Tensor
    /// Lookahead router logits `[T, K+1, E]`.
    public let lookaheadLogits: Tensor
    /// log Q^{(k)}_t: log-softmax over experts per offset `[T, K+1, E]`.
    public let lookaheadLogProbabilities: Tensor
    /// Q^{(k)}_t: softmax over experts per offset `[T, K+1, E]`; offset 0 predicts token t's
    /// experts, offset k those of token t+k.
    public let lookaheadProbabilities: Tensor

    /// Q^{(offset)} `[T, E]`.
    public func lookaheadProbabilities(offset: Int) -> Tensor {
        Self.offsetSlice(lookaheadProbabilities, offset)
    }

    /// log Q^{(offset)} `[T, E]`.
    public func lookaheadLogProbabilities(offset: Int) -> Tensor {
        Self.offsetSlice(lookaheadLogProbabilities, offset)
    }

    /// The `count` most probable experts predicted for token t + `offset`, for each t, best first.
    public func predictedExperts(offset: Int, count: Int) -> [[Int]] {
        let probabilities = lookaheadProbabilities(offset: offset)
        let experts = probabilities.shape[1], values = probabilities.floats
        return values.withUnsafeBufferPointer { p in
            (0..<probabilities.shape[0]).map { t in
                Selection.topK(p.baseAddress! + t * experts, count: experts, k: count).map(\.index)
            }
        }
    }

    /// P_t, the lookahead router's target: the mean over MoE layers of the router
    /// distributions `[T, E]` (recorded; stop its gradient in a lookahead loss).
    public var meanRouterProbabilities: Tensor {
        let sum = layers.dropFirst().reduce(layers[0].routerProbabilities) { $0 + $1.routerProbabilities }
        return sum.scaled(by: 1 / Float(layers.count))
    }

    private static func offsetSlice(_ tensor: Tensor, _ offset: Int) -> Tensor {
        let tokens = tensor.shape[0], experts = tensor.shape[2]
        return tensor.slice(offset..<(offset + 1), axis: 1).contiguous().reshaped([tokens, experts])
    }
}

/// One Chronos decoder layer: `h = x + Attention(RMSNorm(x))`, `out = h + MoE(RMSNorm(h))`.
struct ChronosDecoderLayer: Sendable {
    enum Mixer: Sendable {
        case latent(LatentAttention)
        case sliding(Attention)
    }

    let inputNorm: Tensor
    let postAttentionNorm: Tensor
    let normEps: Float
    let mixer: Mixer
    let moe: MoEBlock

    /// `[T, hidden]` at positions `cache.offset…` → `[T, hidden]`, with the MoE input and routing;
    /// `beforeRouted` is handed the residual stream as it stands before any routed expert is
    /// asked for (attention and the shared experts added).
    func callAsFunction(_ x: Tensor, cache: any KVCache, observer: RoutingObserver?,
                        availability: ((_ slot: Int, _ expert: Int) -> Float)?, beforeRouted: ((Tensor) -> Void)? = nil)
        -> (output: Tensor, moeInput: Tensor, routing: MoEBlock.Routing) {
        let positionOffset = cache.offset
        let normed = x.rmsNorm(weight: inputNorm, eps: normEps)
        let attended = switch mixer {
        case let .latent(attention): attention(normed, cache: cache)
        case let .sliding(attention): attention(normed, cache: cache)
        }
        let h = x + attended
        let moeInput = h.rmsNorm(weight: postAttentionNorm, eps: normEps)
        let routing = moe.route(moeInput, positionOffset: positionOffset, observer: observer, availability: availability,
                                beforeRouted: beforeRouted.map { handler in { shared in handler(shared.map { h + $0 } ?? h) } })
        return (h + routing.output, moeInput, routing)
    }
}

/// The Chronos-native model: embedding, hybrid MLA / sliding-window decoder layers with MoE
/// feed-forwards and soft fallback, final RMSNorm, LM head (tied by default) and the lookahead
/// router head on the hidden state after layer 0.
///
/// Written only with `Tensor` ops, so the same forward trains with autograd: build the model
/// from `requiringGradient()` copies of its weights (`initialize(configuration:seed:)`), run
/// `forward(_:cache:options:)` under `Autograd.recording`, and update `namedParameters()` in
/// place. Routed experts come from the `ExpertProvider` (all resident by default). Tensor names
/// are listed in `ChronosWeightNames`.
public final class ChronosLanguageModel: LanguageModel {
    /// The configuration the model was built from.
    public let configuration: ChronosConfiguration
    public let summary: ModelSummary
    public let parameterCounts: ParameterCounts
    public let experts: any ExpertProvider
    /// Every parameter's name and shape, in checkpoint order, routed experts included.
    private let layout: [ChronosParameterSpec]
    /// The non-routed parameters by name.
    private let dense: [String: Tensor]
    let embedding: Tensor
    let layers: [ChronosDecoderLayer]
    let finalNorm: Tensor
    /// `[vocab, hidden]`: the embedding table itself when tied.
    let lmHead: Tensor
    let lookahead: LookaheadRouter

    /// A model over `weights` (names as in `ChronosWeightNames`; extra tensors are ignored),
    /// each checked against the shape `configuration` implies. Routed experts come from
    /// `experts`, or from `weights` (all resident) when it is nil.
    public convenience init(configuration: ChronosConfiguration, weights: [String: Tensor],
                            experts: (any ExpertProvider)? = nil) throws {
        try configuration.validate(file: "configuration")
        try self.init(validated: configuration, weights: weights, experts: experts, location: "the weights given")
    }

    /// Loads the model directory `directory` (`config.json` and the safetensors checkpoint);
    /// routed experts come from `experts`, else from the checkpoint, or from the expert cache
    /// when the checkpoint was stripped of them.
    public convenience init(directory: URL, experts: (any ExpertProvider)? = nil) throws {
        let configURL = directory.appendingPathComponent("config.json")
        try self.init(config: ConfigurationFile.read(configURL), file: configURL.path, directory: directory, experts: experts)
    }

    /// Decodes `config` (read from `file`), then loads the weights from the checkpoint in `directory`.
    convenience init(config: Data, file: String, directory: URL, experts: (any ExpertProvider)?) throws {
        let configuration = try ConfigurationFile.decode(ChronosConfiguration.self, from: config, file: file)
        try configuration.validate(file: file)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        var experts = experts
        if experts == nil, StrippedCheckpoint.isStripped(checkpoint) {
            let mixtures = (0..<configuration.hiddenLayers).map { ($0, configuration.experts, configuration.moeIntermediateSize) }
            experts = try StrippedCheckpoint.cachedExperts(directory: directory, hiddenSize: configuration.hiddenSize, mixtures: mixtures)
        }
        var tensors: [String: Tensor] = [:]
        for name in checkpoint.tensorNames { tensors[name] = try checkpoint.tensor(named: name) }
        try self.init(validated: configuration, weights: tensors, experts: experts, location: checkpoint.directory.path)
    }

    private init(validated c: ChronosConfiguration, weights: [String: Tensor], experts provider: (any ExpertProvider)?,
                 location: String) throws {
        let layout = ChronosParameterSpec.layout(c)
        let names = Set(layout.map(\.name))
        if let unused = weights.keys.sorted().first(where: { !names.contains($0) }) {
            throw ModelError.unusedTensor(name: unused, directory: location)
        }
        var dense: [String: Tensor] = [:], residentExperts: [ExpertKey: ExpertWeights] = [:]
        var denseParameters = 0, denseBytes = 0
        for spec in layout where spec.expert == nil || provider == nil {
            guard let tensor = weights[spec.name] else {
                throw ModelError.missingTensor(name: spec.name, directory: location)
            }
            guard tensor.dtype.isFloatingPoint else {
                throw ModelError.unsupportedDType(tensor: spec.name, dtype: tensor.dtype.rawValue)
            }
            guard tensor.shape == spec.shape else {
                throw ModelError.shapeMismatch(tensor: spec.name, expected: spec.shape, found: tensor.shape)
            }
            if spec.expert == nil {
                dense[spec.name] = tensor
                denseParameters += tensor.count
                denseBytes += tensor.byteCount
            }
        }
        if provider == nil {
            for layer in 0..<c.hiddenLayers {
                for expert in 0..<c.experts {
                    let key = ExpertKey(layer: layer, expert: expert), names = ChronosWeightNames.expert(key)
                    residentExperts[key] = ExpertWeights(gate: weights[names.gate]!, up: weights[names.up]!, down: weights[names.down]!)
                }
            }
        }
        let resolved: any ExpertProvider = provider ?? ResidentExperts(residentExperts)
        let perExpert = 3 * c.hiddenSize * c.moeIntermediateSize
        let routedParameters = c.hiddenLayers * c.experts * perExpert
        let expertBytes = (resolved as? ResidentExperts)?.byteCount
            ?? routedParameters * dense[ChronosWeightNames.router(layer: 0)]!.dtype.byteSize

        func take(_ name: String) -> Tensor { dense[name]! }
        func linear(_ name: String, bias: Bool = false) -> Linear {
            Linear(weight: take("\(name).weight"), bias: bias ? take("\(name).bias") : nil)
        }
        var layers: [ChronosDecoderLayer] = []
        for (index, kind) in c.attentionKinds.enumerated() {
            let attention = { (name: String) in ChronosWeightNames.layer(index, "self_attn.\(name)") }
            let mixer: ChronosDecoderLayer.Mixer
            switch kind {
            case .mla:
                let keyUp = take(attention("k_up_proj.weight"))
                mixer = .latent(LatentAttention(
                    heads: c.attentionHeads, headDim: c.headDim, ropeDim: c.ropeDim, latentDim: c.kvLatentDim,
                    query: linear(attention("q_proj")), latentDown: linear(attention("kv_down_proj")),
                    latentNorm: take(attention("kv_norm.weight")), ropeKey: linear(attention("k_rope_proj")),
                    // The absorbed query product is a matmul, which needs f32.
                    keyUp: keyUp.dtype == .f32 ? keyUp : keyUp.converted(to: .f32),
                    valueUp: take(attention("v_up_proj.weight")), output: linear(attention("o_proj")),
                    normEps: c.rmsNormEps, ropeTheta: c.ropeTheta))
            case .sliding:
                mixer = .sliding(Attention(
                    heads: c.attentionHeads, kvHeads: c.keyValueHeads, headDim: c.headDim,
                    query: linear(attention("q_proj")), key: linear(attention("k_proj")), value: linear(attention("v_proj")),
                    output: linear(attention("o_proj")), queryKeyNorm: .none, normEps: c.rmsNormEps,
                    ropeTheta: c.ropeTheta, window: c.slidingWindow))
            }
            let shared = (0..<c.sharedExperts).map { s in
                let names = ChronosWeightNames.sharedExpert(layer: index, index: s)
                return GatedMLP(ExpertWeights(gate: take(names.gate), up: take(names.up), down: take(names.down)))
            }
            // Chronos sums its shared experts without a gate; their path also takes the soft fallback.
            let mixture = MixtureConfiguration(expertCount: c.experts, topK: c.expertsPerToken, intermediateSize: c.moeIntermediateSize,
                                               normalizeTopK: c.normTopKProb,
                                               sharedExpertIntermediateSize: c.sharedExperts > 0 ? c.sharedExpertIntermediateSize : nil)
            let moe = MoEBlock(layer: index, configuration: mixture, router: take(ChronosWeightNames.router(layer: index)),
                               shared: shared.isEmpty ? nil : MoEBlock.SharedExperts(mlps: shared, gate: nil), experts: resolved)
            layers.append(ChronosDecoderLayer(
                inputNorm: take(ChronosWeightNames.layer(index, "input_layernorm.weight")),
                postAttentionNorm: take(ChronosWeightNames.layer(index, "post_attention_layernorm.weight")),
                normEps: c.rmsNormEps, mixer: mixer, moe: moe))
        }

        configuration = c
        self.layout = layout
        self.dense = dense
        experts = resolved
        embedding = take(ChronosWeightNames.embedding)
        self.layers = layers
        finalNorm = take(ChronosWeightNames.finalNorm)
        lmHead = c.tieWordEmbeddings ? embedding : take(ChronosWeightNames.lmHead)
        lookahead = LookaheadRouter(hidden: linear(ChronosWeightNames.lookaheadHidden, bias: true),
                                    output: linear(ChronosWeightNames.lookaheadOutput, bias: true),
                                    steps: c.lookaheadSteps, experts: c.experts)
        summary = c.summary
        parameterCounts = ParameterCounts(
            dense: denseParameters, expert: routedParameters,
            activePerToken: denseParameters + c.hiddenLayers * c.expertsPerToken * perExpert,
            denseBytes: denseBytes, expertBytes: expertBytes)
    }

    public func makeCache() -> ModelCache {
        let c = configuration
        return ModelCache(layers: c.attentionKinds.map { kind -> any KVCache in
            switch kind {
            case .mla: LatentKVCache(latentDim: c.kvLatentDim, ropeDim: c.ropeDim)
            case .sliding: SlidingWindowKVCache(window: c.slidingWindow)
            }
        })
    }

    public func forward(_ ids: [Int], cache: ModelCache) throws -> Tensor {
        try forward(ids, cache: cache, options: ChronosForwardOptions()).logits
    }

    /// Runs `ids` at positions `cache.offset…` (each attending to the cached prefix and the ids
    /// before it), advances the cache, and returns the logits with every layer's routing and
    /// the lookahead predictions. Under `Autograd.recording` every tensor of the output is in
    /// the gradient graph.
    public func forward(_ ids: [Int], cache: ModelCache, options: ChronosForwardOptions) throws -> ChronosForwardOutput {
        guard cache.layers.count == layers.count else {
            throw ModelError.cacheMismatch(expectedLayers: layers.count, foundLayers: cache.layers.count)
        }
        let c = configuration
        if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ModelError.tokenOutOfRange(id: bad, vocabSize: c.vocabSize)
        }
        let tokens = ids.count, k = c.expertsPerToken, offset = cache.offset
        guard tokens > 0 else { return emptyOutput(offset: offset) }

        var generator = SplitMix64(seed: options.fallbackMaskSeed)
        var h = Tensor.embedding(embedding, ids: ids)
        var blockZero = h
        var routings: [ChronosLayerRouting] = []
        for (index, layer) in layers.enumerated() {
            var dropped: [Bool]? = nil
            if options.fallbackMaskProbability > 0 {
                let p = Double(options.fallbackMaskProbability)
                dropped = (0..<(tokens * k)).map { _ in generator.nextUnit() < p }
            }
            let mask = options.availability
            let availability: ((Int, Int) -> Float)? = mask.isEmpty && dropped == nil ? nil : { slot, expert in
                if let dropped, dropped[slot] { return 0 }
                return mask[ExpertKey(layer: index, expert: expert)] ?? 1
            }
            var beforeRouted: ((Tensor) -> Void)? = nil
            if let preview = cache.nextLayerObserver, index + 1 < layers.count {
                let next = layers[index + 1]
                beforeRouted = { stream in
                    preview(index + 1, next.moe.previewExperts(stream: stream, norm: next.postAttentionNorm, eps: next.normEps))
                }
            }
            let step = layer(h, cache: cache.layers[index], observer: cache.routingObserver, availability: availability,
                             beforeRouted: beforeRouted)
            h = step.output
            if index == 0 { blockZero = h }
            cache.hiddenObserver?(index, h)
            let routing = step.routing
            routings.append(ChronosLayerRouting(
                layer: index, input: step.moeInput, routerLogits: routing.logits, routerProbabilities: routing.probabilities,
                selectedExperts: (0..<tokens).map { Array(routing.selected[($0 * k)..<(($0 + 1) * k)]) },
                combineWeights: routing.combine.reshaped([tokens, k]),
                availability: (0..<tokens).map { Array(routing.availability[($0 * k)..<(($0 + 1) * k)]) }))
        }
        if let failure = experts.failure { throw failure }
        cache.advance(by: tokens)

        let logits = Tensor.linear(h.rmsNorm(weight: finalNorm, eps: c.rmsNormEps), weight: lmHead)
        let lookaheadLogits = lookahead(options.detachesLookaheadInput ? blockZero.detached() : blockZero)
        return ChronosForwardOutput(
            positionOffset: offset, logits: logits, layers: routings, blockZeroHidden: blockZero,
            lookaheadLogits: lookaheadLogits, lookaheadLogProbabilities: lookaheadLogits.logSoftmax(),
            lookaheadProbabilities: lookaheadLogits.softmax())
    }

    /// The output of a forward pass over no tokens: every tensor with 0 rows.
    private func emptyOutput(offset: Int) -> ChronosForwardOutput {
        let c = configuration
        let experts = Tensor(zeros: [0, c.experts]), lookahead = Tensor(zeros: [0, c.lookaheadSteps + 1, c.experts])
        return ChronosForwardOutput(
            positionOffset: offset, logits: Tensor(zeros: [0, c.vocabSize]),
            layers: (0..<c.hiddenLayers).map {
                ChronosLayerRouting(layer: $0, input: Tensor(zeros: [0, c.hiddenSize]), routerLogits: experts,
                                    routerProbabilities: experts, selectedExperts: [],
                                    combineWeights: Tensor(zeros: [0, c.expertsPerToken]), availability: [])
            },
            blockZeroHidden: Tensor(zeros: [0, c.hiddenSize]), lookaheadLogits: lookahead,
            lookaheadLogProbabilities: lookahead, lookaheadProbabilities: lookahead)
    }

    public func checkpointNames(for key: ExpertKey) -> ExpertWeightNames? {
        guard key.layer >= 0, key.layer < configuration.hiddenLayers, key.expert >= 0, key.expert < configuration.experts else {
            return nil
        }
        return ChronosWeightNames.expert(key)
    }

    /// Every parameter tensor the model computes with, by checkpoint name and in checkpoint
    /// order: the very tensors (not copies), so updating them in place updates the model.
    /// Routed experts are those the provider returns now; a non-resident one is left out.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        layout.compactMap { spec in
            guard let key = spec.expert else { return (spec.name, dense[spec.name]!) }
            return expertTensor(spec.name, key: key).map { (spec.name, $0) }
        }
    }

    /// Writes `config.json` and every parameter, routed experts included, as
    /// `model.safetensors` into `directory` (created if needed); each file is replaced
    /// atomically, the weights first. Fails if the provider does not have every expert.
    public func save(to directory: URL) throws {
        let tensors = try layout.map { spec -> (name: String, tensor: Tensor) in
            guard let key = spec.expert else { return (spec.name, dense[spec.name]!) }
            guard let tensor = expertTensor(spec.name, key: key) else {
                throw ModelError.missingTensor(name: spec.name, directory: "the expert provider")
            }
            return (spec.name, tensor)
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                    to: directory.appendingPathComponent(SafetensorsCheckpoint.singleFileName))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(configuration), to: directory.appendingPathComponent("config.json"))
    }

    /// The projection `name` of routed expert `key`, if the provider has it.
    private func expertTensor(_ name: String, key: ExpertKey) -> Tensor? {
        guard let weights = experts.weights(for: key) else { return nil }
        let names = ChronosWeightNames.expert(key)
        return name == names.gate ? weights.gate : name == names.up ? weights.up : weights.down
    }
}
