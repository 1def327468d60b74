import ChronosTensor
import Foundation

/// The tensor names of a Chronos checkpoint: the Hugging Face layout where one exists, and the
/// one place the names are spelled.
///
///     model.embed_tokens.weight                              [vocab, H]
///     model.layers.L.input_layernorm.weight                  [H]
///     model.layers.L.post_attention_layernorm.weight         [H]
///   MLA layers (per head the RoPE rows come first in q_proj):
///     model.layers.L.self_attn.q_proj.weight                 [heads·(rope_dim + head_dim), H]
///     model.layers.L.self_attn.kv_down_proj.weight           [kv_latent_dim, H]
///     model.layers.L.self_attn.kv_norm.weight                [kv_latent_dim]
///     model.layers.L.self_attn.k_rope_proj.weight            [rope_dim, H]
///     model.layers.L.self_attn.k_up_proj.weight              [heads·head_dim, kv_latent_dim]
///     model.layers.L.self_attn.v_up_proj.weight              [heads·head_dim, kv_latent_dim]
///     model.layers.L.self_attn.o_proj.weight                 [H, heads·head_dim]
///   sliding layers:
///     model.layers.L.self_attn.{q,k,v,o}_proj.weight         [heads·head_dim, H], [kv_heads·head_dim, H] ×2, [H, heads·head_dim]
///   MoE:
///     model.layers.L.mlp.gate.weight                         [E, H]: the router
///     model.layers.L.mlp.experts.E.{gate,up}_proj.weight     [moe_intermediate_size, H]
///     model.layers.L.mlp.experts.E.down_proj.weight          [H, moe_intermediate_size]
///     model.layers.L.mlp.shared_experts.S.{gate,up,down}_proj.weight   (same with shared_expert_intermediate_size)
///   head:
///     model.norm.weight                                      [H]
///     lm_head.weight                                         [vocab, H] (absent when tied)
///     lookahead.fc1.weight, lookahead.fc1.bias               [H/4, H], [H/4]
///     lookahead.fc2.weight, lookahead.fc2.bias               [(K+1)·E, H/4], [(K+1)·E]
public enum ChronosWeightNames {
    /// The token embedding table.
    public static let embedding = "model.embed_tokens.weight"
    /// The final RMSNorm weight.
    public static let finalNorm = "model.norm.weight"
    /// The untied LM head.
    public static let lmHead = "lm_head.weight"
    /// Prefix of the lookahead router's first layer (`.weight`, `.bias`).
    public static let lookaheadHidden = CheckpointKeys.lookaheadHidden
    /// Prefix of the lookahead router's output layer (`.weight`, `.bias`).
    public static let lookaheadOutput = CheckpointKeys.lookaheadOutput

    private static let keys = CheckpointKeys.chronos

    /// A tensor of decoder layer `layer`, e.g. `self_attn.q_proj.weight`.
    public static func layer(_ layer: Int, _ name: String) -> String { keys.layer(layer, name) }

    /// The router `[E, H]` of layer `layer`.
    public static func router(layer: Int) -> String { keys.router(layer: layer) }

    /// The projections of a routed expert.
    public static func expert(_ key: ExpertKey) -> ExpertWeightNames { keys.expert(key) }

    /// The projections of shared expert `index` of layer `layer`.
    public static func sharedExpert(layer: Int, index: Int) -> ExpertWeightNames {
        keys.sharedExpert(layer: layer, index: index)
    }
}

extension TransformerLanguageModel {
    /// Every parameter a Chronos model of `configuration` has, by checkpoint name and shape, in
    /// checkpoint order (routed experts included): for sizing a model before building it.
    public static func parameterShapes(configuration: ChronosConfiguration) throws -> [(name: String, shape: [Int])] {
        try configuration.transformerConfiguration(file: "configuration")
            .parameterLayout(keys: ChronosConfiguration.checkpointKeys).map { ($0.name, $0.shape) }
    }

    /// Fresh f32 weights for a Chronos model of `configuration`, the same for the same `seed`:
    /// projections N(0, 0.02²), residual-stream outputs (`o_proj`, `down_proj`) N(0, 0.02²/2L),
    /// norm weights 1, biases 0.
    public static func initialize(configuration: ChronosConfiguration, seed: UInt64) throws -> [String: Tensor] {
        var generator = SplitMix64(seed: seed)
        var weights: [String: Tensor] = [:]
        for spec in try configuration.transformerConfiguration(file: "configuration").parameterLayout(
            keys: ChronosConfiguration.checkpointKeys)
        {
            weights[spec.name] = Tensor(shape: spec.shape, values: spec.randomValues(&generator))
        }
        return weights
    }
}
