import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Models with random weights, written in the Hugging Face layout, for benchmarks run without a
/// trained model: they have a real model's shape, so its bytes and arithmetic, not its quality.
public enum SyntheticModel {
    /// The shape of the synthetic Mixtral-style model.
    public struct MixtralShape: Sendable {
        /// Vocabulary, hidden width, decoder layers, query and key/value heads.
        public var vocab = 32000, hidden = 1024, layers = 8, heads = 8, kvHeads = 2
        /// Routed experts per layer, experts per token and the width of one expert.
        public var experts = 8, topK = 2, expertWidth = 2816
        /// Weight type of every tensor.
        public var dtype = DType.bf16

        /// The default shape: vocab 32000, hidden 1024, 8 layers, 8 experts top-2 of width 2816, bf16.
        public init() {}
    }

    /// Writes `config.json` and `model.safetensors` of a Mixtral with random weights.
    public static func writeMixtral(_ shape: MixtralShape, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let headDim = shape.hidden / shape.heads
        let config: [String: Any] = [
            "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "vocab_size": shape.vocab,
            "hidden_size": shape.hidden, "intermediate_size": shape.expertWidth, "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads, "num_key_value_heads": shape.kvHeads, "head_dim": headDim,
            "num_local_experts": shape.experts, "num_experts_per_tok": shape.topK, "rms_norm_eps": 1e-5,
            "rope_theta": 1e6, "tie_word_embeddings": false, "max_position_embeddings": 4096,
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": shape.dtype == .bf16 ? "bfloat16" : "float32"
        ]
        try AtomicFile.write(
            JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
            to: ModelDirectory(directory).config)
        var seed: UInt64 = 1
        func random(_ dims: [Int], scale: Float = 0.04) -> Tensor {
            seed += 1
            var generator = SplitMix64(seed: seed)
            let values = (0..<dims.reduce(1, *)).map { _ in (Float(generator.nextUnit()) - 0.5) * scale }
            return Tensor(shape: dims, values: values, dtype: shape.dtype)
        }
        func ones(_ n: Int) -> Tensor { Tensor(shape: [n], values: [Float](repeating: 1, count: n), dtype: shape.dtype) }
        var tensors: [(name: String, tensor: Tensor)] = [
            ("model.embed_tokens.weight", random([shape.vocab, shape.hidden])),
            ("model.norm.weight", ones(shape.hidden)),
            ("lm_head.weight", random([shape.vocab, shape.hidden]))
        ]
        for l in 0..<shape.layers {
            let p = "model.layers.\(l)."
            tensors += [
                (p + "input_layernorm.weight", ones(shape.hidden)),
                (p + "post_attention_layernorm.weight", ones(shape.hidden)),
                (p + "self_attn.q_proj.weight", random([shape.heads * headDim, shape.hidden])),
                (p + "self_attn.k_proj.weight", random([shape.kvHeads * headDim, shape.hidden])),
                (p + "self_attn.v_proj.weight", random([shape.kvHeads * headDim, shape.hidden])),
                (p + "self_attn.o_proj.weight", random([shape.hidden, shape.heads * headDim])),
                (p + "block_sparse_moe.gate.weight", random([shape.experts, shape.hidden], scale: 1))
            ]
            for e in 0..<shape.experts {
                let q = p + "block_sparse_moe.experts.\(e)."
                tensors += [
                    (q + "w1.weight", random([shape.expertWidth, shape.hidden])),
                    (q + "w3.weight", random([shape.expertWidth, shape.hidden])),
                    (q + "w2.weight", random([shape.hidden, shape.expertWidth]))
                ]
            }
        }
        try SafetensorsWriter.write(tensors, to: ModelDirectory(directory).checkpoint)
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
