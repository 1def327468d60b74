import ChronosFormats
import ChronosTensor
import Foundation

/// `config.json` of a DeepSeek-V2 or DeepSeek-V3 model (`model_type` `deepseek_v2` or
/// `deepseek_v3`), as transformers 5 reads it: multi-head latent attention (`LatentAttention`),
/// the first `first_k_dense_replace` layers with a dense MLP and the rest with fine-grained
/// routed experts plus one wide shared expert. V2 scores experts with a softmax and may limit
/// them to the best groups by their best expert; V3 with a sigmoid plus a selection bias,
/// always limited to the best groups by the sum of their best two.
///
/// Defaults are transformers' for the version named by `model_type`.
public struct DeepSeekConfiguration: Decodable, Sendable {
    /// `model_type`: `deepseek_v2` or `deepseek_v3`.
    public var modelType: String
    /// `architectures`, e.g. `["DeepseekV3ForCausalLM"]`.
    public var architectures: [String]?
    /// `vocab_size`.
    public var vocabSize: Int
    /// `hidden_size`: width of the residual stream.
    public var hiddenSize: Int
    /// `intermediate_size`: width of the dense MLP of the first layers.
    public var intermediateSize: Int
    /// `moe_intermediate_size`: width of one routed expert.
    public var moeIntermediateSize: Int
    /// `num_hidden_layers`.
    public var hiddenLayers: Int
    /// `num_attention_heads`.
    public var attentionHeads: Int
    /// `q_lora_rank`: width of the query latent; null for a direct query projection.
    public var qLoraRank: Int?
    /// `kv_lora_rank`: width of the cached key/value latent.
    public var kvLoraRank: Int
    /// `qk_nope_head_dim`: the no-RoPE width of each query and key head.
    public var qkNopeHeadDim: Int
    /// `qk_rope_head_dim`: the RoPE width of each query head and of the shared RoPE key.
    public var qkRopeHeadDim: Int
    /// `v_head_dim`: width of each value head.
    public var vHeadDim: Int
    /// `n_routed_experts` (also read as `num_experts` or `num_local_experts`).
    public var routedExperts: Int
    /// `num_experts_per_tok`.
    public var expertsPerToken: Int
    /// `n_shared_experts`: the shared MLP is this many experts wide.
    public var sharedExperts: Int
    /// `first_k_dense_replace`: layers before this one have a dense MLP.
    public var firstKDenseReplace: Int
    /// `moe_layer_freq`: only 1 (every layer from `first_k_dense_replace` on has experts).
    public var moeLayerFreq: Int
    /// `n_group`: the experts' groups for group-limited selection.
    public var nGroup: Int?
    /// `topk_group`: the groups chosen.
    public var topkGroup: Int?
    /// `topk_method`: `greedy` or `group_limited_greedy` (V2); `noaux_tc` (V3).
    public var topkMethod: String
    /// `scoring_func`: `softmax` (V2) or `sigmoid` (V3).
    public var scoringFunc: String
    /// `norm_topk_prob`: renormalise the chosen experts' scores (V3 only; transformers' V2 never does).
    public var normTopKProb: Bool
    /// `routed_scaling_factor`: the factor on the combine weights.
    public var routedScalingFactor: Float
    /// `attention_bias`: only false.
    public var attentionBias: Bool
    /// `rope_interleave` (V3): RoPE pairs are adjacent dimensions; V2 always pairs them so.
    public var ropeInterleave: Bool
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
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
        case qLoraRank = "q_lora_rank"
        case kvLoraRank = "kv_lora_rank"
        case qkNopeHeadDim = "qk_nope_head_dim"
        case qkRopeHeadDim = "qk_rope_head_dim"
        case vHeadDim = "v_head_dim"
        case routedExperts = "n_routed_experts"
        case experts = "num_experts"
        case localExperts = "num_local_experts"
        case expertsPerToken = "num_experts_per_tok"
        case sharedExperts = "n_shared_experts"
        case firstKDenseReplace = "first_k_dense_replace"
        case moeLayerFreq = "moe_layer_freq"
        case nGroup = "n_group"
        case topkGroup = "topk_group"
        case topkMethod = "topk_method"
        case scoringFunc = "scoring_func"
        case normTopKProb = "norm_topk_prob"
        case routedScalingFactor = "routed_scaling_factor"
        case attentionBias = "attention_bias"
        case ropeInterleave = "rope_interleave"
        case rmsNormEps = "rms_norm_eps"
        case tieWordEmbeddings = "tie_word_embeddings"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    /// The configuration in `directory`'s `config.json`; errors name the file and the field at fault.
    public init(directory: URL) throws {
        let url = ModelDirectory(directory).config
        self = try ConfigurationFile.decode(DeepSeekConfiguration.self, from: ConfigurationFile.read(url), file: url.path)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decode(String.self, forKey: .modelType)
        // transformers' defaults differ between the versions.
        let v3 = modelType == DeepSeekV3.modelType
        func value<T: Decodable>(_ key: CodingKeys, v2: T, v3 v3Default: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? (v3 ? v3Default : v2)
        }
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try value(.intermediateSize, v2: 11008, v3: 18432)
        moeIntermediateSize = try value(.moeIntermediateSize, v2: 1407, v3: 2048)
        hiddenLayers = try c.decode(Int.self, forKey: .hiddenLayers)
        attentionHeads = try c.decode(Int.self, forKey: .attentionHeads)
        // Null means no query latent; absent means transformers' default width.
        qLoraRank = c.contains(.qLoraRank) ? try c.decodeIfPresent(Int.self, forKey: .qLoraRank) : 1536
        kvLoraRank = try value(.kvLoraRank, v2: 512, v3: 512)
        qkNopeHeadDim = try value(.qkNopeHeadDim, v2: 128, v3: 128)
        qkRopeHeadDim = try value(.qkRopeHeadDim, v2: 64, v3: 64)
        vHeadDim = try value(.vHeadDim, v2: 128, v3: 128)
        routedExperts =
            try c.decodeIfPresent(Int.self, forKey: .routedExperts) ?? c.decodeIfPresent(Int.self, forKey: .experts)
            ?? c.decodeIfPresent(Int.self, forKey: .localExperts) ?? (v3 ? 256 : 64)
        expertsPerToken = try c.decode(Int.self, forKey: .expertsPerToken)
        sharedExperts = try value(.sharedExperts, v2: 2, v3: 1)
        firstKDenseReplace = try value(.firstKDenseReplace, v2: 0, v3: 3)
        moeLayerFreq = try value(.moeLayerFreq, v2: 1, v3: 1)
        nGroup = c.contains(.nGroup) ? try c.decodeIfPresent(Int.self, forKey: .nGroup) : (v3 ? 8 : nil)
        topkGroup = c.contains(.topkGroup) ? try c.decodeIfPresent(Int.self, forKey: .topkGroup) : (v3 ? 4 : nil)
        topkMethod = try value(.topkMethod, v2: "greedy", v3: "noaux_tc")
        scoringFunc = try value(.scoringFunc, v2: "softmax", v3: "sigmoid")
        normTopKProb = try value(.normTopKProb, v2: false, v3: true)
        routedScalingFactor = try value(.routedScalingFactor, v2: 1, v3: 2.5)
        attentionBias = try value(.attentionBias, v2: false, v3: false)
        ropeInterleave = try value(.ropeInterleave, v2: true, v3: true)
        rope = try RoPEParameters.decode(from: decoder)
        rmsNormEps = try value(.rmsNormEps, v2: 1e-6, v3: 1e-6)
        tieWordEmbeddings = try value(.tieWordEmbeddings, v2: false, v3: false)
        hiddenAct = try value(.hiddenAct, v2: "silu", v3: "silu")
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }

    /// The shared transformer this configuration describes; `v3` says which version's routing
    /// and RoPE pairing it has. Errors name the field of `file` at fault.
    func transformerConfiguration(v3: Bool, file: String) throws -> TransformerConfiguration {
        func unsupported(_ field: String, _ value: String) -> ModelError {
            .unsupportedConfig(file: file, field: field, value: value)
        }
        func positive(_ value: Int, _ field: String) throws {
            try ConfigurationLimits.check(value, in: ConfigurationLimits.width, field: field, file: file)
        }
        try TransformerConfiguration.requireSiLU(hiddenAct, file: file)
        guard !attentionBias else { throw unsupported("attention_bias", "true") }
        guard moeLayerFreq == 1 else { throw unsupported("moe_layer_freq", "\(moeLayerFreq)") }
        try ConfigurationLimits.check(firstKDenseReplace, in: 0...hiddenLayers, field: "first_k_dense_replace", file: file)
        try ConfigurationLimits.check(sharedExperts, in: 0...ConfigurationLimits.experts.upperBound, field: "n_shared_experts", file: file)
        try positive(moeIntermediateSize, "moe_intermediate_size")
        if sharedExperts > 0 { try positive(sharedExperts * moeIntermediateSize, "n_shared_experts") }

        // V3 scores with a sigmoid, biased for selection, its groups ranked by their best two;
        // V2 with a softmax, its groups (if any) ranked by their best expert.
        let scoring: RouterScoring, rank: ExpertGroups.Rank?
        if v3 {
            guard scoringFunc == "sigmoid" else { throw unsupported("scoring_func", "'\(scoringFunc)'") }
            guard topkMethod == "noaux_tc" else { throw unsupported("topk_method", "'\(topkMethod)'") }
            (scoring, rank) = (.sigmoid, .topTwoSum)
        } else {
            guard scoringFunc == "softmax" else { throw unsupported("scoring_func", "'\(scoringFunc)'") }
            // transformers' DeepSeek-V2 router never renormalises the chosen scores.
            guard !normTopKProb else { throw unsupported("norm_topk_prob", "true") }
            switch topkMethod {
            case "greedy": (scoring, rank) = (.softmax, nil)
            case "group_limited_greedy": (scoring, rank) = (.softmax, .best)
            default: throw unsupported("topk_method", "'\(topkMethod)'")
            }
        }
        var groups: ExpertGroups? = nil
        if let rank {
            guard let nGroup else { throw ModelError.malformedConfig(file: file, field: "n_group", reason: "is missing") }
            guard let topkGroup else { throw ModelError.malformedConfig(file: file, field: "topk_group", reason: "is missing") }
            groups = ExpertGroups(count: nGroup, selected: topkGroup, rank: rank)
        }
        let mixture = MixtureConfiguration(
            expertCount: routedExperts, topK: expertsPerToken, intermediateSize: moeIntermediateSize,
            normalizeTopK: v3 && normTopKProb,
            // DeepSeek's n_shared_experts form one ungated MLP, n times as wide as a routed expert.
            shared: sharedExperts > 0
                ? SharedExpertConfiguration(count: 1, intermediateSize: sharedExperts * moeIntermediateSize, gated: false) : nil,
            scoring: scoring, groups: groups, selectionBias: v3, weightScale: routedScalingFactor)

        if let qLoraRank { try positive(qLoraRank, "q_lora_rank") }
        let rope = try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file)
        let latent = LatentAttentionConfiguration(
            latentDim: kvLoraRank, ropeDim: qkRopeHeadDim, valueDim: vHeadDim, queryLatentDim: qLoraRank,
            // transformers' DeepSeek-V2 rotates interleaved pairs as complex numbers; V3 when rope_interleave.
            layout: .deepSeek(interleavedRoPE: !v3 || ropeInterleave),
            // The query and key/value latent norms keep transformers' default ε whatever rms_norm_eps says.
            normEps: 1e-6,
            // With YaRN's mscale_all_dim the scores are scaled for the no-RoPE dimensions too.
            scoreScale: rope.latentScoreScale)
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: attentionHeads, headDim: qkNopeHeadDim,
            rope: rope, rmsNormEps: rmsNormEps, tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: false, outputBias: false, mlpBias: false, queryKeyNorm: .none,
            attention: Array(repeating: .latent(latent), count: hiddenLayers),
            feedForward: (0..<hiddenLayers).map {
                $0 < firstKDenseReplace ? .dense(intermediateSize: intermediateSize) : .mixture(mixture)
            },
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings)
    }

    /// `weights` without the multi-token-prediction layers some checkpoints append after the
    /// last decoder layer (`model.layers.N…` for N ≥ `num_hidden_layers`), which decoding does not run.
    static func droppingPredictionLayers(_ weights: [String: Tensor], layers: Int) -> [String: Tensor] {
        weights.filter { name, _ in
            guard name.hasPrefix("model.layers.") else { return true }
            let index = name.dropFirst("model.layers.".count).prefix { $0.isNumber }
            return Int(index).map { $0 < layers } ?? true
        }
    }
}

/// DeepSeek-V2 (`model_type` `deepseek_v2`; see `DeepSeekConfiguration`).
struct DeepSeekV2: TransformerArchitecture {
    static let modelType = "deepseek_v2"
    static let checkpointKeys = CheckpointKeys.deepSeek
    let configuration: DeepSeekConfiguration

    init(from decoder: any Decoder) throws { configuration = try DeepSeekConfiguration(from: decoder) }

    var hiddenLayers: Int { configuration.hiddenLayers }

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try configuration.transformerConfiguration(v3: false, file: file)
    }
}

/// DeepSeek-V3 (`model_type` `deepseek_v3`; see `DeepSeekConfiguration`).
struct DeepSeekV3: TransformerArchitecture {
    static let modelType = "deepseek_v3"
    static let checkpointKeys = CheckpointKeys.deepSeek
    let configuration: DeepSeekConfiguration

    init(from decoder: any Decoder) throws { configuration = try DeepSeekConfiguration(from: decoder) }

    var hiddenLayers: Int { configuration.hiddenLayers }

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        try configuration.transformerConfiguration(v3: true, file: file)
    }

    /// The Hugging Face conventions, after dropping the multi-token-prediction layers that
    /// DeepSeek-V3 checkpoints carry.
    static func sanitize(
        _ weights: [String: Tensor], configuration: TransformerConfiguration,
        location: String
    ) throws -> [String: Tensor] {
        try HuggingFaceWeights.sanitize(
            DeepSeekConfiguration.droppingPredictionLayers(weights, layers: configuration.layerCount), configuration: configuration,
            keys: checkpointKeys, location: location)
    }
}
