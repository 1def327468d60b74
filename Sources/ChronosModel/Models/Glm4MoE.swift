import ChronosTensor
import Foundation

/// `config.json` of a GLM-4.5 or GLM-4.5-Air model (`model_type` `glm4_moe`), as transformers 5
/// reads it: grouped-query attention with biases on q, k and v, an optional per-head RMSNorm of
/// queries and keys, RoPE over the leading `partial_rotary_factor` of each head; the first
/// `first_k_dense_replace` layers with a dense MLP and the rest with routed experts plus one
/// wide shared expert, scored by DeepSeek-V3's sigmoid router (a selection bias, groups ranked
/// by the sum of their best two, renormalised and scaled weights).
///
/// Defaults are transformers' `Glm4MoeConfig`.
public struct Glm4MoEConfiguration: Decodable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["Glm4MoeForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of the dense MLP of the first layers.
    public var intermediateSize: Int
    /// `moe_intermediate_size`: width of one routed expert.
    public var moeIntermediateSize: Int
    /// `num_hidden_layers`, without the multi-token-prediction layers.
    public var hiddenLayers: Int
    /// `num_attention_heads`.
    public var attentionHeads: Int
    /// `num_key_value_heads`.
    public var keyValueHeads: Int
    /// `head_dim`; null or absent means `hiddenSize / attentionHeads`.
    public var headDim: Int?
    /// `n_routed_experts` (also read as `num_local_experts`).
    public var routedExperts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `n_shared_experts`: the shared MLP is this many experts wide.
    public var sharedExperts: Int
    /// `first_k_dense_replace`: layers before this one have a dense MLP.
    public var firstKDenseReplace: Int
    /// `n_group`: the experts' groups for group-limited selection.
    public var nGroup: Int
    /// `topk_group`: the groups chosen.
    public var topkGroup: Int
    /// `norm_topk_prob`: renormalise the chosen experts' scores to sum to 1.
    public var normTopKProb: Bool
    /// `routed_scaling_factor`: the factor on the combine weights.
    public var routedScalingFactor: Float
    /// `use_qk_norm`: an RMSNorm over each head of the queries and keys before RoPE.
    public var useQKNorm: Bool
    /// `attention_bias`: biases on the q, k and v projections (never on o).
    public var attentionBias: Bool
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`), with
    /// `partial_rotary_factor` from either place.
    public var rope: RoPEParameters
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
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
        case moeIntermediateSize = "moe_intermediate_size"
        case hiddenLayers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case routedExperts = "n_routed_experts"
        case localExperts = "num_local_experts"
        case expertsPerToken = "num_experts_per_tok"
        case sharedExperts = "n_shared_experts"
        case firstKDenseReplace = "first_k_dense_replace"
        case nGroup = "n_group"
        case topkGroup = "topk_group"
        case normTopKProb = "norm_topk_prob"
        case routedScalingFactor = "routed_scaling_factor"
        case useQKNorm = "use_qk_norm"
        case attentionBias = "attention_bias"
        case rmsNormEps = "rms_norm_eps"
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
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 10944
        moeIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .moeIntermediateSize) ?? 1408
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? 8
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        routedExperts =
            try c.decodeIfPresent(Int.self, forKey: .routedExperts) ?? c.decodeIfPresent(Int.self, forKey: .localExperts) ?? 128
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 8
        sharedExperts = try c.decodeIfPresent(Int.self, forKey: .sharedExperts) ?? 1
        firstKDenseReplace = try c.decodeIfPresent(Int.self, forKey: .firstKDenseReplace) ?? 1
        nGroup = try c.decodeIfPresent(Int.self, forKey: .nGroup) ?? 1
        topkGroup = try c.decodeIfPresent(Int.self, forKey: .topkGroup) ?? 1
        normTopKProb = try c.decodeIfPresent(Bool.self, forKey: .normTopKProb) ?? true
        routedScalingFactor = try c.decodeIfPresent(Float.self, forKey: .routedScalingFactor) ?? 1
        useQKNorm = try c.decodeIfPresent(Bool.self, forKey: .useQKNorm) ?? false
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        rope = try RoPEParameters.decode(from: decoder)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-5
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension Glm4MoEConfiguration: TransformerArchitecture {
    static let modelType = "glm4_moe"

    /// GLM-4.5 names its tensors as DeepSeek-V3 does: router `mlp.gate` with its
    /// `e_score_correction_bias`, one wide `mlp.shared_experts` MLP.
    static let checkpointKeys = CheckpointKeys.deepSeek

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        try ConfigurationLimits.check(firstKDenseReplace, in: 0...hiddenLayers, field: "first_k_dense_replace", file: file)
        try ConfigurationLimits.check(sharedExperts, in: ConfigurationLimits.experts, field: "n_shared_experts", file: file)
        try ConfigurationLimits.check(moeIntermediateSize, in: ConfigurationLimits.width, field: "moe_intermediate_size", file: file)
        try ConfigurationLimits.check(
            sharedExperts * moeIntermediateSize, in: ConfigurationLimits.width, field: "n_shared_experts", file: file)
        let headDim = try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file)
        // transformers' Glm4MoeConfig rotates half of each head unless the config says otherwise.
        let rotaryDim = try rope.rotaryWidth(headDim: headDim, defaultFactor: 0.5, file: file)
        // GLM-4.5 always ranks groups by their best two biased sigmoid scores, as DeepSeek-V3's
        // noaux_tc; with n_group 1 (the published models) that leaves every expert in the running.
        let mixture = MixtureConfiguration(
            expertCount: routedExperts, topK: expertsPerToken, intermediateSize: moeIntermediateSize,
            normalizeTopK: normTopKProb,
            shared: SharedExpertConfiguration(count: 1, intermediateSize: sharedExperts * moeIntermediateSize, gated: false),
            scoring: .sigmoid, groups: ExpertGroups(count: nGroup, selected: topkGroup, rank: .topTwoSum), selectionBias: true,
            weightScale: routedScalingFactor)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads, headDim: headDim,
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rotaryDim: rotaryDim,
            rmsNormEps: rmsNormEps, tieWordEmbeddings: tieWordEmbeddings,
            // GLM-4.5's output projection has no bias whatever attention_bias says.
            queryKeyValueBias: attentionBias, outputBias: false, mlpBias: false, queryKeyNorm: useQKNorm ? .perHead : .none,
            attention: Array(repeating: .grouped(window: nil), count: hiddenLayers),
            feedForward: (0..<hiddenLayers).map {
                $0 < firstKDenseReplace ? .dense(intermediateSize: intermediateSize) : .mixture(mixture)
            },
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }

    /// The Hugging Face conventions, after dropping the multi-token-prediction layers that
    /// GLM-4.5 checkpoints carry after the last decoder layer (`num_nextn_predict_layers`).
    static func sanitize(
        _ weights: [String: Tensor], configuration: TransformerConfiguration, location: String
    ) throws -> [String: Tensor] {
        try HuggingFaceWeights.sanitize(
            DeepSeekConfiguration.droppingPredictionLayers(weights, layers: configuration.layerCount), configuration: configuration,
            keys: checkpointKeys, location: location)
    }
}
