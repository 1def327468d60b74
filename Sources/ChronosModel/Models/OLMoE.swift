import Foundation

/// `config.json` of an OLMoE model (`model_type` `olmoe`): every layer routes to
/// `num_experts_per_tok` of `num_experts` experts, and queries and keys pass through an RMSNorm
/// over their whole projection before RoPE.
public struct OLMoEConfiguration: Codable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["OlmoeForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of one expert.
    public var intermediateSize: Int
    /// `num_hidden_layers`.
    public var hiddenLayers: Int
    /// `num_attention_heads`; the head width is `hiddenSize / attentionHeads`.
    public var attentionHeads: Int
    /// `num_key_value_heads`; defaults to `attentionHeads`.
    public var keyValueHeads: Int
    /// `num_experts`.
    public var experts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `norm_topk_prob`: renormalise the top-k probabilities to sum to 1.
    public var normTopKProb: Bool
    /// `clip_qkv`: clamp q, k and v to ±this (not supported when set).
    public var clipQKV: Float?
    /// `attention_bias`: biases on the q, k, v and o projections.
    public var attentionBias: Bool
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
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
        case experts = "num_experts"
        case expertsPerToken = "num_experts_per_tok"
        case normTopKProb = "norm_topk_prob"
        case clipQKV = "clip_qkv"
        case attentionBias = "attention_bias"
        case rmsNormEps = "rms_norm_eps"
        case rope = "rope_parameters"
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
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        experts = try c.decodeIfPresent(Int.self, forKey: .experts) ?? 64
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 8
        normTopKProb = try c.decodeIfPresent(Bool.self, forKey: .normTopKProb) ?? false
        clipQKV = try c.decodeIfPresent(Float.self, forKey: .clipQKV)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-5
        rope = try RoPEParameters.decode(from: decoder)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension OLMoEConfiguration: TransformerArchitecture {
    static let modelType = "olmoe"

    /// OLMoE checkpoints use the Hugging Face names, with `self_attn.q_norm` and `self_attn.k_norm`.
    static let checkpointKeys = CheckpointKeys()

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        if let clipQKV {
            throw ModelError.unsupportedConfig(file: file, field: "clip_qkv", value: "\(clipQKV)")
        }
        // OLMoE's q_norm spans hidden_size, so the heads must tile the hidden width exactly.
        let headDim = try TransformerConfiguration.headDim(nil, hiddenSize: hiddenSize, heads: attentionHeads, file: file)
        // OLMoE has no shared expert; it renormalises the top-k only when norm_topk_prob is set.
        let mixture = MixtureConfiguration(
            expertCount: experts, topK: expertsPerToken, intermediateSize: intermediateSize,
            normalizeTopK: normTopKProb, shared: nil)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads, headDim: headDim,
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: attentionBias, outputBias: attentionBias, mlpBias: false,
            // OLMoE normalises the whole q projection (hidden_size wide) and the whole k projection
            // (kvHeads·headDim wide), not each head.
            queryKeyNorm: .acrossHeads,
            // OLMoE has no sliding window.
            attention: Array(repeating: .grouped(window: nil), count: hiddenLayers),
            feedForward: Array(repeating: .mixture(mixture), count: hiddenLayers),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}
