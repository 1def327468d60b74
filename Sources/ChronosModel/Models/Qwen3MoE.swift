import Foundation

/// `config.json` of a Qwen3-MoE model (`model_type` `qwen3_moe`): routed experts without a
/// shared expert, and a per-head RMSNorm of queries and keys before RoPE.
public struct Qwen3MoEConfiguration: Codable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["Qwen3MoeForCausalLM"]`.
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
    /// `num_experts` (transformers 4) or `num_local_experts` (transformers 5).
    public var experts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `moe_intermediate_size`: width of one routed expert.
    public var moeIntermediateSize: Int
    /// `norm_topk_prob`: renormalise the top-k probabilities to sum to 1.
    public var normTopKProb: Bool
    /// `decoder_sparse_step`: every this many layers is an MoE layer.
    public var decoderSparseStep: Int
    /// `mlp_only_layers`: layers with a dense MLP regardless of the step.
    public var mlpOnlyLayers: [Int]
    /// `attention_bias`: biases on the q, k, v and o projections.
    public var attentionBias: Bool
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
    /// `use_sliding_window`.
    public var useSlidingWindow: Bool
    /// `sliding_window`.
    public var slidingWindow: Int?
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
        case normTopKProb = "norm_topk_prob"
        case decoderSparseStep = "decoder_sparse_step"
        case mlpOnlyLayers = "mlp_only_layers"
        case attentionBias = "attention_bias"
        case rmsNormEps = "rms_norm_eps"
        case rope = "rope_parameters"
        case useSlidingWindow = "use_sliding_window"
        case slidingWindow = "sliding_window"
        case layerTypes = "layer_types"
        case tieWordEmbeddings = "tie_word_embeddings"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    /// Transformers 5 writes the expert count under Mixtral's name.
    private enum RenamedKeys: String, CodingKey {
        case localExperts = "num_local_experts"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? Self.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 6144
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        let renamed = try decoder.container(keyedBy: RenamedKeys.self)
        experts =
            try c.decodeIfPresent(Int.self, forKey: .experts)
            ?? renamed.decodeIfPresent(Int.self, forKey: .localExperts) ?? 128
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 8
        moeIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .moeIntermediateSize) ?? 768
        normTopKProb = try c.decodeIfPresent(Bool.self, forKey: .normTopKProb) ?? false
        decoderSparseStep = try c.decodeIfPresent(Int.self, forKey: .decoderSparseStep) ?? 1
        mlpOnlyLayers = try c.decodeIfPresent([Int].self, forKey: .mlpOnlyLayers) ?? []
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        rope = try RoPEParameters.decode(from: decoder)
        useSlidingWindow = try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) ?? false
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        layerTypes = try c.decodeIfPresent([String].self, forKey: .layerTypes)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension Qwen3MoEConfiguration: TransformerArchitecture {
    static let modelType = "qwen3_moe"

    /// Qwen3-MoE checkpoints use the Hugging Face names, with `self_attn.q_norm` and `self_attn.k_norm`.
    static let checkpointKeys = CheckpointKeys()

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        // Qwen3-MoE has no shared expert.
        let mixture = MixtureConfiguration(
            expertCount: experts, topK: expertsPerToken, intermediateSize: moeIntermediateSize,
            normalizeTopK: normTopKProb, shared: nil)
        let layout = QwenLayerLayout(
            layers: hiddenLayers, experts: experts, decoderSparseStep: decoderSparseStep,
            mlpOnlyLayers: mlpOnlyLayers, layerTypes: layerTypes, file: file)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads,
            headDim: try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file),
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: attentionBias, outputBias: attentionBias, mlpBias: false,
            // Qwen3-MoE normalises each head of q and k on its own, after projection and before RoPE.
            queryKeyNorm: .perHead,
            // Without layer_types, Qwen3-MoE slides in every layer when sliding windows are on.
            attention: try layout.attention(use: useSlidingWindow, window: slidingWindow, defaultSliding: { _ in true }),
            feedForward: try layout.feedForward(mixture: mixture, denseIntermediateSize: intermediateSize),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}
