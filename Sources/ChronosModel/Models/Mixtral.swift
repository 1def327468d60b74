import Foundation

/// `config.json` of a Mixtral sparse MoE model (`model_type` `mixtral`): every layer routes
/// each token to `num_experts_per_tok` of `num_local_experts` SwiGLU experts.
public struct MixtralConfiguration: Codable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["MixtralForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of one expert.
    public var intermediateSize: Int
    /// `num_hidden_layers`.
    public var hiddenLayers: Int
    /// `num_attention_heads`.
    public var attentionHeads: Int
    /// `num_key_value_heads`; defaults to `attentionHeads`.
    public var keyValueHeads: Int
    /// `head_dim`; null or absent means `hiddenSize / attentionHeads`.
    public var headDim: Int?
    /// `num_local_experts`.
    public var localExperts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
    /// `sliding_window`: keys further back are masked; null means full attention.
    public var slidingWindow: Int?
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
        case localExperts = "num_local_experts"
        case expertsPerToken = "num_experts_per_tok"
        case rmsNormEps = "rms_norm_eps"
        case rope = "rope_parameters"
        case slidingWindow = "sliding_window"
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
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        localExperts = try c.decodeIfPresent(Int.self, forKey: .localExperts) ?? 8
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 2
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-5
        rope = try RoPEParameters.decode(from: decoder, defaultTheta: 1e6)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension MixtralConfiguration: TransformerArchitecture {
    static let modelType = "mixtral"

    /// Mixtral keeps its MoE block in `block_sparse_moe` and names the expert projections
    /// w1 (gate), w3 (up) and w2 (down).
    static let checkpointKeys = CheckpointKeys(
        mixtureModule: "block_sparse_moe", expertProjections: ExpertWeightNames(gate: "w1", up: "w3", down: "w2"))

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        // Mixtral always renormalises the top-k probabilities and has no shared expert.
        let mixture = MixtureConfiguration(
            expertCount: localExperts, topK: expertsPerToken, intermediateSize: intermediateSize,
            normalizeTopK: true, shared: nil)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads,
            headDim: try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file),
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: false, outputBias: false, mlpBias: false, queryKeyNorm: .none,
            // Mixtral applies its sliding window (when set) in every layer.
            attention: Array(repeating: .grouped(window: slidingWindow), count: hiddenLayers),
            feedForward: Array(repeating: .mixture(mixture), count: hiddenLayers),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }
}
