import Foundation

/// `config.json` of a Qwen2-MoE model (`model_type` `qwen2_moe`): routed experts plus one
/// sigmoid-gated shared expert per MoE layer, and biases on the q, k, v projections.
public struct Qwen2MoEConfiguration: Codable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["Qwen2MoeForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of the dense MLP of layers without experts.
    public var intermediateSize: Int
    /// `num_hidden_layers`.
    public var hiddenLayers: Int
    /// `num_attention_heads`.
    public var attentionHeads: Int
    /// `num_key_value_heads`; defaults to `attentionHeads`.
    public var keyValueHeads: Int
    /// `head_dim`; null or absent means `hiddenSize / attentionHeads`.
    public var headDim: Int?
    /// `num_experts`.
    public var experts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `moe_intermediate_size`: width of one routed expert.
    public var moeIntermediateSize: Int
    /// `shared_expert_intermediate_size`: width of the shared expert.
    public var sharedExpertIntermediateSize: Int
    /// `norm_topk_prob`: renormalise the top-k probabilities to sum to 1.
    public var normTopKProb: Bool
    /// `decoder_sparse_step`: every this many layers is an MoE layer.
    public var decoderSparseStep: Int
    /// `mlp_only_layers`: layers with a dense MLP regardless of the step.
    public var mlpOnlyLayers: [Int]
    /// `qkv_bias` (transformers 5; always on in transformers 4).
    public var qkvBias: Bool
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
    /// `use_sliding_window`.
    public var useSlidingWindow: Bool
    /// `sliding_window`.
    public var slidingWindow: Int?
    /// `max_window_layers`: with sliding windows on and no `layer_types`, layers from this one slide.
    public var maxWindowLayers: Int
    /// `layer_types` (transformers 5): `full_attention` or `sliding_attention` per layer.
    public var layerTypes: [String]?
    /// `tie_word_embeddings`.
    public var tieWordEmbeddings: Bool
    /// `hidden_act`; only `silu` is supported.
    public var hiddenAct: String
    /// `max_position_embeddings`.
    public var maxPositionEmbeddings: Int?
    /// `bos_token_id`.
    public var bosTokenId: Int?
    /// `eos_token_id` (one id or several).
    public var eosTokenId: [Int]

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case architectures
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case hiddenLayers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case experts = "num_experts"
        case expertsPerToken = "num_experts_per_tok"
        case moeIntermediateSize = "moe_intermediate_size"
        case sharedExpertIntermediateSize = "shared_expert_intermediate_size"
        case normTopKProb = "norm_topk_prob"
        case decoderSparseStep = "decoder_sparse_step"
        case mlpOnlyLayers = "mlp_only_layers"
        case qkvBias = "qkv_bias"
        case rmsNormEps = "rms_norm_eps"
        case rope = "rope_parameters"
        case useSlidingWindow = "use_sliding_window"
        case slidingWindow = "sliding_window"
        case maxWindowLayers = "max_window_layers"
        case layerTypes = "layer_types"
        case tieWordEmbeddings = "tie_word_embeddings"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? Self.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 5632
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        experts = try c.decodeIfPresent(Int.self, forKey: .experts) ?? 60
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 4
        moeIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .moeIntermediateSize) ?? 1408
        sharedExpertIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .sharedExpertIntermediateSize) ?? 5632
        normTopKProb = try c.decodeIfPresent(Bool.self, forKey: .normTopKProb) ?? false
        decoderSparseStep = try c.decodeIfPresent(Int.self, forKey: .decoderSparseStep) ?? 1
        mlpOnlyLayers = try c.decodeIfPresent([Int].self, forKey: .mlpOnlyLayers) ?? []
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? true
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        rope = try RoPEParameters.decode(from: decoder)
        useSlidingWindow = try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) ?? false
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        maxWindowLayers = try c.decodeIfPresent(Int.self, forKey: .maxWindowLayers) ?? 28
        layerTypes = try c.decodeIfPresent([String].self, forKey: .layerTypes)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension Qwen2MoEConfiguration: TransformerArchitecture {
    static let modelType = "qwen2_moe"

    /// Qwen2-MoE checkpoints use the Hugging Face names, with `mlp.shared_expert` and
    /// `mlp.shared_expert_gate` beside the routed experts.
    static let checkpointKeys = CheckpointKeys()

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        // Qwen2-MoE adds a sigmoid-gated shared expert to every MoE layer.
        let mixture = MixtureConfiguration(
            expertCount: experts, topK: expertsPerToken, intermediateSize: moeIntermediateSize,
            normalizeTopK: normTopKProb,
            shared: SharedExpertConfiguration(count: 1, intermediateSize: sharedExpertIntermediateSize, gated: true))
        let layout = QwenLayerLayout(
            layers: hiddenLayers, experts: experts, decoderSparseStep: decoderSparseStep,
            mlpOnlyLayers: mlpOnlyLayers, layerTypes: layerTypes, file: file)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads,
            headDim: try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file),
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            // Qwen2-MoE has biases on q, k and v but not on the output projection.
            queryKeyValueBias: qkvBias, outputBias: false, mlpBias: false, queryKeyNorm: .none,
            // Without layer_types, Qwen2-MoE slides only from layer max_window_layers on.
            attention: try layout.attention(
                use: useSlidingWindow, window: slidingWindow,
                defaultSliding: { $0 >= maxWindowLayers }),
            feedForward: try layout.feedForward(mixture: mixture, denseIntermediateSize: intermediateSize),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}

/// Which layers of a Qwen MoE model have experts and which slide their attention window; the
/// same rules for Qwen2-MoE and Qwen3-MoE.
struct QwenLayerLayout {
    let layers: Int
    let experts: Int
    let decoderSparseStep: Int
    let mlpOnlyLayers: [Int]
    let layerTypes: [String]?
    let file: String

    /// Layer i has experts unless it is in `mlp_only_layers`, or there are none, or
    /// (i + 1) is not a multiple of `decoder_sparse_step`.
    func feedForward(mixture: MixtureConfiguration, denseIntermediateSize: Int) throws -> [TransformerConfiguration.FeedForward] {
        guard decoderSparseStep > 0 else {
            throw ModelError.malformedConfig(file: file, field: "decoder_sparse_step", reason: "must be positive, got \(decoderSparseStep)")
        }
        return (0..<layers).map { i in
            let sparse = !mlpOnlyLayers.contains(i) && experts > 0 && (i + 1) % decoderSparseStep == 0
            return sparse ? .mixture(mixture) : .dense(intermediateSize: denseIntermediateSize)
        }
    }

    /// Each layer's window: none unless `use_sliding_window`; then the layers `layer_types`
    /// marks `sliding_attention`, or those `defaultSliding` picks when it is absent.
    func attention(use: Bool, window: Int?, defaultSliding: (Int) -> Bool) throws -> [TransformerConfiguration.LayerAttention] {
        guard use, let window else { return Array(repeating: .grouped(window: nil), count: layers) }
        if let layerTypes {
            guard layerTypes.count == layers else {
                throw ModelError.malformedConfig(
                    file: file, field: "layer_types",
                    reason: "has \(layerTypes.count) entries for \(layers) layers")
            }
            return layerTypes.map { .grouped(window: $0 == "sliding_attention" ? window : nil) }
        }
        return (0..<layers).map { .grouped(window: defaultSliding($0) ? window : nil) }
    }
}
