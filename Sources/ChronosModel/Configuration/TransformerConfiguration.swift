/// The decoder-only transformer every architecture here is an instance of, with the points
/// where the families differ made explicit. Each architecture's configuration maps its
/// `config.json` onto one of these.
struct TransformerConfiguration: Sendable {
    /// How queries and keys are normalised between projection and RoPE.
    enum QueryKeyNorm: Sendable {
        /// No normalisation (Llama, Mixtral, Qwen2-MoE).
        case none
        /// RMSNorm over each head's `headDim` values (Qwen3-MoE).
        case perHead
        /// RMSNorm over the whole projection, all heads at once (OLMoE).
        case acrossHeads
    }

    /// The attention of one decoder layer.
    enum LayerAttention: Sendable, Equatable {
        /// Grouped-query attention over the whole prefix, or over the last `window` positions.
        case grouped(window: Int?)
        /// Multi-head latent attention (`LatentAttention`), caching one latent and one shared
        /// RoPE key per position.
        case latent(LatentAttentionConfiguration)
    }

    /// The feed-forward block of one decoder layer.
    enum FeedForward: Sendable, Equatable {
        /// A SwiGLU MLP of this intermediate width.
        case dense(intermediateSize: Int)
        /// A routed mixture of SwiGLU experts.
        case mixture(MixtureConfiguration)
    }

    var modelType: String
    var architecture: String?
    var vocabSize: Int
    var hiddenSize: Int
    var layerCount: Int
    var attentionHeads: Int
    var keyValueHeads: Int
    var headDim: Int
    /// The rotary position embedding of every layer.
    var rope: RotaryEmbedding
    /// How many leading dimensions of each grouped-query head RoPE rotates (GLM-4.5's
    /// `partial_rotary_factor`); nil: the whole head.
    var rotaryDim: Int? = nil
    var rmsNormEps: Float
    var tieWordEmbeddings: Bool
    /// Whether q, k and v projections have biases.
    var queryKeyValueBias: Bool
    /// Whether the attention output projection has a bias.
    var outputBias: Bool
    /// Whether dense MLP projections have biases.
    var mlpBias: Bool
    var queryKeyNorm: QueryKeyNorm
    /// The attention of each layer.
    var attention: [LayerAttention]
    /// Feed-forward block of each layer.
    var feedForward: [FeedForward]
    var bosTokenId: Int?
    var eosTokenIds: [Int]
    var maxPositionEmbeddings: Int?
    /// The lookahead router head, when the model has one.
    var lookahead: LookaheadConfiguration? = nil
    /// Whether each grouped-query attention head has a learned sink logit in its softmax
    /// denominator (`self_attn.sinks`, gpt-oss).
    var attentionSinks = false

    /// Checks the sizes fit together and lie within `ConfigurationLimits`; errors name the
    /// `config.json` field at fault and the range it may take.
    func validate(file: String) throws {
        func check(_ condition: Bool, _ field: String, _ reason: String) throws {
            if !condition { throw ModelError.malformedConfig(file: file, field: field, reason: reason) }
        }
        func within(_ value: Int, _ range: ClosedRange<Int>, _ field: String) throws {
            try ConfigurationLimits.check(value, in: range, field: field, file: file)
        }
        typealias Limits = ConfigurationLimits
        try within(vocabSize, Limits.vocabulary, "vocab_size")
        try within(hiddenSize, Limits.width, "hidden_size")
        try within(layerCount, Limits.layers, "num_hidden_layers")
        try within(attentionHeads, Limits.heads, "num_attention_heads")
        try check(
            keyValueHeads > 0 && attentionHeads % keyValueHeads == 0, "num_key_value_heads",
            "\(keyValueHeads) must be positive and divide num_attention_heads (\(attentionHeads))")
        try within(headDim, Limits.headWidth, "head_dim")
        if attention.contains(where: { if case .grouped = $0 { true } else { false } }) {
            try check(headDim % 2 == 0, "head_dim", "must be even for RoPE, got \(headDim)")
        }
        if let rotaryDim {
            try check(
                rotaryDim >= 2 && rotaryDim <= headDim && rotaryDim % 2 == 0, "partial_rotary_factor",
                "rotates \(rotaryDim) dimensions; RoPE needs an even number between 2 and head_dim (\(headDim))")
        }
        try check(rmsNormEps > 0 && rmsNormEps < 1, "rms_norm_eps", "must be between 0 and 1 (exclusive), got \(rmsNormEps)")
        try check(rope.theta > 0 && rope.theta.isFinite, "rope_theta", "must be positive and finite, got \(rope.theta)")
        if let maxPositionEmbeddings { try within(maxPositionEmbeddings, Limits.positions, "max_position_embeddings") }
        try check(
            attention.count == layerCount && feedForward.count == layerCount, "num_hidden_layers",
            "\(layerCount) layers, but \(attention.count) attention and \(feedForward.count) feed-forward entries")
        for layer in attention {
            switch layer {
            case .grouped(let window):
                if let window { try within(window, Limits.positions, "sliding_window") }
            case .latent(let latent):
                let names = latent.fieldNames
                try within(latent.latentDim, Limits.width, names.latentDim)
                try within(latent.ropeDim, Limits.headWidth, names.ropeDim)
                try check(latent.ropeDim % 2 == 0, names.ropeDim, "must be even, got \(latent.ropeDim)")
                try within(latent.valueDim, Limits.headWidth, names.valueDim)
                if let queryLatentDim = latent.queryLatentDim { try within(queryLatentDim, Limits.width, "q_lora_rank") }
            }
        }
        for case .mixture(let mixture) in feedForward {
            try within(mixture.expertCount, Limits.experts, "num_experts")
            try check(
                mixture.topK > 0 && mixture.topK <= mixture.expertCount, "num_experts_per_tok",
                "\(mixture.topK) must be between 1 and the number of experts (\(mixture.expertCount))")
            try within(mixture.intermediateSize, Limits.width, "moe_intermediate_size")
            if let shared = mixture.shared { try within(shared.intermediateSize, Limits.width, "shared_expert_intermediate_size") }
            if let groups = mixture.groups {
                try check(
                    groups.count > 0 && mixture.expertCount % groups.count == 0, "n_group",
                    "\(groups.count) must be positive and divide the number of experts (\(mixture.expertCount))")
                let perGroup = mixture.expertCount / groups.count
                try check(
                    groups.selected > 0 && groups.selected <= groups.count, "topk_group",
                    "\(groups.selected) must be between 1 and n_group (\(groups.count))")
                try check(
                    mixture.topK <= groups.selected * perGroup, "num_experts_per_tok",
                    "\(mixture.topK) exceeds the \(groups.selected * perGroup) experts of the topk_group groups chosen")
                if groups.rank == .topTwoSum {
                    try check(perGroup >= 2, "n_group", "leaves \(perGroup) expert per group; groups are ranked by their best two")
                }
            }
            try check(
                mixture.weightScale > 0 && mixture.weightScale.isFinite, "routed_scaling_factor",
                "must be positive and finite, got \(mixture.weightScale)")
        }
        for case .dense(let size) in feedForward {
            try within(size, Limits.width, "intermediate_size")
        }
    }

    /// What `chronos inspect` shows.
    var summary: ModelSummary {
        let mixtures = feedForward.compactMap { if case .mixture(let m) = $0 { m } else { nil } }
        return ModelSummary(
            modelType: modelType, architecture: architecture, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: layerCount, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads, headDim: headDim,
            expertsPerLayer: feedForward.map { if case .mixture(let m) = $0 { m.expertCount } else { 0 } },
            expertsPerToken: mixtures.map(\.topK).max() ?? 0,
            hasSharedExpert: mixtures.contains { $0.shared != nil }, tiedEmbeddings: tieWordEmbeddings,
            bosTokenId: bosTokenId, eosTokenIds: eosTokenIds, maxPositionEmbeddings: maxPositionEmbeddings,
            lookaheadSteps: lookahead?.steps)
    }
}

/// The multi-head latent attention of one layer (`LatentAttention`): its widths, and how its
/// checkpoint lays its projections out.
struct LatentAttentionConfiguration: Sendable, Equatable {
    /// How the checkpoint names and arranges the projections.
    enum Layout: Sendable, Equatable {
        /// Chronos: `q_proj` (per head the RoPE rows first), `kv_down_proj`, `kv_norm`,
        /// `k_rope_proj`, `k_up_proj`, `v_up_proj`; half-split RoPE pairs.
        case chronos
        /// DeepSeek-V2/V3: `q_proj`, or `q_a_proj`, `q_a_layernorm`, `q_b_proj` with a query
        /// latent (per head the RoPE rows last); `kv_a_proj_with_mqa` (the latent's rows, then
        /// the RoPE key's), `kv_a_layernorm`, `kv_b_proj` (per head its key rows, then its value
        /// rows); RoPE pairs interleaved when `interleavedRoPE`.
        case deepSeek(interleavedRoPE: Bool)
    }

    /// Width l of the cached key/value latent.
    var latentDim: Int
    /// Width r of the decoupled RoPE part of each query head and of the shared RoPE key.
    var ropeDim: Int
    /// Width of each head's value.
    var valueDim: Int
    /// Width of the query latent, when queries are projected through one.
    var queryLatentDim: Int?
    var layout: Layout
    /// ε of the latent RMSNorms.
    var normEps: Float
    /// The factor on the scores beyond 1/√(head_dim + r) (YaRN's correction in DeepSeek).
    var scoreScale: Float = 1

    /// The `config.json` names of the widths, for errors.
    var fieldNames: (latentDim: String, ropeDim: String, valueDim: String) {
        switch layout {
        case .chronos: ("kv_latent_dim", "rope_dim", "head_dim")
        case .deepSeek: ("kv_lora_rank", "qk_rope_head_dim", "v_head_dim")
        }
    }
}

/// The routing of one MoE layer: how many experts, how many per token, and the family's
/// choices for the combine weights and the shared expert.
struct MixtureConfiguration: Sendable, Equatable {
    /// Routed experts in the layer.
    var expertCount: Int
    /// Experts each token is sent to.
    var topK: Int
    /// Intermediate width of one routed expert.
    var intermediateSize: Int
    /// Whether the top-k probabilities are renormalised to sum to 1.
    var normalizeTopK: Bool
    /// The always-active shared experts, if the family has them.
    var shared: SharedExpertConfiguration?
    /// How router logits become scores.
    var scoring: RouterScoring = .softmax
    /// Group-limited selection, where the family has it.
    var groups: ExpertGroups? = nil
    /// Whether a per-expert bias is added to the scores to choose experts, and only for that
    /// (DeepSeek-V3's `e_score_correction_bias`).
    var selectionBias = false
    /// The factor on every combine weight (`routed_scaling_factor`).
    var weightScale: Float = 1
    /// Whether the router's logits have a bias (gpt-oss).
    var routerBias = false
    /// Whether the routed experts' projections have biases, held beside the router (gpt-oss).
    var expertBias = false
    /// The routed experts' gated activation.
    var activation = GatedActivation.swiGLU
}

/// How a router turns its logits into per-expert scores.
enum RouterScoring: Sendable, Equatable {
    /// Softmax over all experts.
    case softmax
    /// An independent sigmoid per expert (DeepSeek-V3).
    case sigmoid
}

/// Group-limited expert selection: the experts are split into `count` equal groups of
/// consecutive indices, the best `selected` groups are chosen, and the top-k is taken among
/// their experts only.
struct ExpertGroups: Sendable, Equatable {
    /// How a group is ranked from its experts' selection scores.
    enum Rank: Sendable, Equatable {
        /// By its best expert (DeepSeek-V2's `group_limited_greedy`).
        case best
        /// By the sum of its best two (DeepSeek-V3's `noaux_tc`).
        case topTwoSum
    }

    var count: Int
    var selected: Int
    var rank: Rank
}

/// The shared experts of an MoE layer: summed, and scaled by σ(g·x) when gated.
struct SharedExpertConfiguration: Sendable, Equatable {
    /// How many shared SwiGLU experts (Qwen2-MoE: one; Chronos: `num_shared_experts`; DeepSeek:
    /// one, `n_shared_experts` times as wide).
    var count: Int
    /// Intermediate width of each.
    var intermediateSize: Int
    /// Whether their sum is scaled by a sigmoid gate (Qwen2-MoE) or added as is (Chronos, DeepSeek).
    var gated: Bool
}

/// The lookahead router head (`LookaheadRouter`): it reads the residual stream after decoder
/// layer `inputLayer` and predicts the experts of the next `steps` tokens.
struct LookaheadConfiguration: Sendable, Equatable {
    /// K: the furthest future token predicted.
    var steps: Int
    /// E: the experts per layer it chooses among.
    var experts: Int
    /// The decoder layer whose output it reads.
    var inputLayer: Int
}

extension TransformerConfiguration {
    /// Every expert here is a SwiGLU; other activations are refused rather than run wrongly.
    static func requireSiLU(_ activation: String, file: String) throws {
        guard activation == "silu" || activation == "swish" else {
            throw ModelError.unsupportedConfig(file: file, field: "hidden_act", value: "'\(activation)'")
        }
    }

    /// `head_dim` when the config gives one, else `hidden_size / num_attention_heads`.
    static func headDim(_ headDim: Int?, hiddenSize: Int, heads: Int, file: String) throws -> Int {
        if let headDim { return headDim }
        guard heads > 0, hiddenSize % heads == 0 else {
            throw ModelError.malformedConfig(
                file: file, field: "num_attention_heads",
                reason: "\(heads) does not divide hidden_size (\(hiddenSize)) and head_dim is not given")
        }
        return hiddenSize / heads
    }
}
