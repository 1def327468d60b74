import Foundation

/// `config.json` of a Llama-family dense model (`model_type` `llama`).
public struct LlamaConfiguration: Codable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["LlamaForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of the MLP.
    public var intermediateSize: Int
    /// `num_hidden_layers`.
    public var hiddenLayers: Int
    /// `num_attention_heads`.
    public var attentionHeads: Int
    /// `num_key_value_heads`; defaults to `attentionHeads` (no grouping).
    public var keyValueHeads: Int
    /// `head_dim`; null or absent means `hiddenSize / attentionHeads`.
    public var headDim: Int?
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
    /// `tie_word_embeddings`: the LM head is the embedding table.
    public var tieWordEmbeddings: Bool
    /// `attention_bias`: biases on the q, k, v and o projections.
    public var attentionBias: Bool
    /// `mlp_bias`: biases on the MLP projections.
    public var mlpBias: Bool
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
        case rmsNormEps = "rms_norm_eps"
        case rope = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
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
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        rope = try RoPEParameters.decode(from: decoder)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension LlamaConfiguration: TransformerArchitecture {
    static let modelType = "llama"

    /// Llama checkpoints use the Hugging Face names the layers are written against.
    static let checkpointKeys = CheckpointKeys()

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads,
            headDim: try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file),
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            // Llama's attention_bias covers all four projections.
            queryKeyValueBias: attentionBias, outputBias: attentionBias, mlpBias: mlpBias, queryKeyNorm: .none,
            attention: Array(repeating: .grouped(window: nil), count: hiddenLayers),
            feedForward: Array(repeating: .dense(intermediateSize: intermediateSize), count: hiddenLayers),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}
