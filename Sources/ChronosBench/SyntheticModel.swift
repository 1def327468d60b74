import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Models with random weights, written in the Hugging Face layout, for benchmarks run without a
/// trained model: they have a real model's shape, so its bytes and arithmetic, not its quality.
public enum SyntheticModel {
    /// A model shape `bench decode` measures with random weights.
    public enum Shape: String, CaseIterable, Sendable {
        /// Mixtral: vocab 32000, hidden 1024, 8 layers (8 query and 2 key/value heads), 8
        /// experts top-2 of width 2816.
        case mixtral
        /// DeepSeek-V3: vocab 32000, hidden 1024, 8 layers of latent attention (8 heads, query
        /// latent 384, key/value latent 256), the first dense (width 2816), the others 64 routed
        /// experts top-6 of width 512 and one shared, sigmoid routing in 8 groups of which 4 are kept.
        case deepSeekV3 = "deepseek-v3"

        /// What the shape is, in words.
        public var summary: String {
            switch self {
            case .mixtral: "Mixtral-shaped (hidden 1024, 8 layers, 8 experts top-2 of width 2816)"
            case .deepSeekV3: "DeepSeek-V3-shaped (hidden 1024, 8 latent-attention layers, 64 experts top-6 of width 512 + 1 shared)"
            }
        }

        /// The `config.json` of this shape.
        public var config: [String: Any] {
            let common: [String: Any] = [
                "vocab_size": 32000, "hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 8,
                "rope_theta": 1e4, "tie_word_embeddings": false, "max_position_embeddings": 4096, "bos_token_id": 1,
                "eos_token_id": 2
            ]
            let specific: [String: Any]
            switch self {
            case .mixtral:
                specific = [
                    "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "intermediate_size": 2816,
                    "num_key_value_heads": 2, "head_dim": 128, "num_local_experts": 8, "num_experts_per_tok": 2, "rms_norm_eps": 1e-5
                ]
            case .deepSeekV3:
                specific = [
                    "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "intermediate_size": 2816,
                    "moe_intermediate_size": 512, "num_key_value_heads": 8, "q_lora_rank": 384, "kv_lora_rank": 256,
                    "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64, "n_routed_experts": 64,
                    "num_experts_per_tok": 6, "n_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 8, "topk_group": 4,
                    "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true, "routed_scaling_factor": 2.5,
                    "rms_norm_eps": 1e-6
                ]
            }
            return common.merging(specific) { $1 }
        }
    }

    /// Writes `config` as `config.json` and random weights of `dtype` for it (any architecture
    /// Chronos loads; `ModelRegistry.writeRandomWeights`, routers scaled so routing is decisive).
    public static func write(config: [String: Any], dtype: DType, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(
            JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), to: ModelDirectory(directory).config)
        try ModelRegistry.writeRandomWeights(directory: directory, dtype: dtype, seed: 1, routerScale: 50)
    }

    /// The Chronos-native shape of the offload benchmark without `--model`: 8 layers of 8 experts
    /// top-2 and a shared expert, hidden 512, expert width 1024, a 4-token lookahead head.
    public static let offloadConfiguration = ChronosConfiguration(
        vocabSize: 8000, hiddenSize: 512, hiddenLayers: 8, attentionHeads: 8, keyValueHeads: 2, headDim: 64, kvLatentDim: 128,
        ropeDim: 32, slidingWindow: 256, experts: 8, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 1024,
        sharedExpertIntermediateSize: 1024, lookaheadSteps: 4)

    /// Writes a random Chronos-native model of `configuration` (with an untrained lookahead
    /// head) in bf16.
    public static func writeChronos(_ configuration: ChronosConfiguration = offloadConfiguration, to directory: URL) throws {
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 11)
        for (name, tensor) in weights {
            // Routers are scaled up so routing is decisive, as in a trained model.
            let scaled = name.hasSuffix("mlp.gate.weight") ? Tensor(shape: tensor.shape, values: tensor.floats.map { $0 * 50 }) : tensor
            weights[name] = scaled.converted(to: .bf16)
        }
        try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: directory)
    }
}
