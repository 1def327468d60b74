import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// `chronos bench decode`: decode tokens/s with every weight resident, beside the bound set
/// by the bytes one token must read and the streaming-read bandwidth measured in the same run.
struct DecodeBench {
    /// The shape of the synthetic Mixtral-style model built when no `--model` is given.
    struct Shape {
        var vocab = 32000, hidden = 1024, layers = 8, heads = 8, kvHeads = 2, experts = 8, topK = 2, expertWidth = 2816
        var dtype = DType.bf16
    }

    let report: BenchReport
    var promptTokens = 16
    var decodeTokens = 64

    /// Benchmarks the model in `directory`, or a synthetic one of `shape` written to `keepingAt`
    /// (reused when it already holds one) or else to a temporary directory.
    func run(directory: String?, shape: Shape, keepingAt kept: String? = nil) throws {
        var temporary: URL?
        defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
        let modelDirectory: URL
        if let directory {
            modelDirectory = URL(fileURLWithPath: directory)
        } else if let kept, FileManager.default.fileExists(atPath: URL(fileURLWithPath: kept).appendingPathComponent("model.safetensors").path) {
            modelDirectory = URL(fileURLWithPath: kept)
        } else {
            let dir = kept.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("chronos-bench-\(UUID().uuidString)")
            report.progress("writing a random Mixtral-shaped model (hidden \(shape.hidden), \(shape.layers) layers, \(shape.experts) experts top-\(shape.topK), width \(shape.expertWidth), \(shape.dtype)) to \(dir.path)")
            try Self.writeSyntheticMixtral(shape, to: dir)
            if kept == nil { temporary = dir }
            modelDirectory = dir
        }
        report.progress("loading \(modelDirectory.path)")
        let model = try ModelRegistry.load(directory: modelDirectory)
        report.progress("streaming read over 1 GiB")
        let bandwidth = MemoryBandwidth.streamingRead()
        report.add(Measurement(name: "streaming read", value: bandwidth, unit: "GB/s", bound: nil, boundName: nil))

        let bytesPerToken = Self.bytesReadPerToken(model)
        report.add(Measurement(name: "weight bytes read per token", value: Double(bytesPerToken) / 1e6, unit: "MB", bound: nil, boundName: nil))
        let bound = bandwidth * 1e9 / Double(bytesPerToken)

        report.progress("decoding \(decodeTokens) tokens after a \(promptTokens)-token prompt")
        let vocab = model.summary.vocabSize
        let prompt = (0..<promptTokens).map { ($0 * 7919 + 13) % vocab }
        let generator = Generator(model: model, tokenizer: nil)
        _ = try generator.generate(GenerationRequest(promptIds: prompt, maxTokens: 4, ignoreEOS: true))  // warm-up
        let result = try generator.generate(GenerationRequest(promptIds: prompt, maxTokens: decodeTokens, ignoreEOS: true))
        report.add(Measurement(name: "prefill", value: result.metrics.prefillTokensPerSecond, unit: "tokens/s", bound: nil, boundName: nil))
        report.add(Measurement(name: "decode (all resident)", value: result.metrics.decodeTokensPerSecond, unit: "tokens/s",
                               bound: bound, boundName: "bytes per token / read bandwidth"))
    }

    /// Weight bytes one decode step must read: every dense weight except the embedding table
    /// (of which it reads one row, unless the output head shares it), plus top-k experts per MoE layer.
    static func bytesReadPerToken(_ model: any LanguageModel) -> Int {
        let s = model.summary, p = model.parameterCounts
        let elementBytes = p.total > 0 ? Double(p.totalBytes) / Double(p.total) : 4
        let embedding = Int(Double(s.vocabSize * s.hiddenSize) * elementBytes)
        let embeddingRead = s.tiedEmbeddings ? 0 : embedding - Int(Double(s.hiddenSize) * elementBytes)
        let expertsTotal = s.expertsPerLayer.reduce(0, +)
        let moeLayers = s.expertsPerLayer.filter { $0 > 0 }.count
        let expertBytesPerToken = expertsTotal == 0 ? 0 : p.expertBytes / expertsTotal * s.expertsPerToken * moeLayers
        return p.denseBytes - embeddingRead + expertBytesPerToken
    }

    /// Writes `config.json` and `model.safetensors` of a Mixtral with random weights.
    static func writeSyntheticMixtral(_ shape: Shape, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let headDim = shape.hidden / shape.heads
        let config: [String: Any] = [
            "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "vocab_size": shape.vocab,
            "hidden_size": shape.hidden, "intermediate_size": shape.expertWidth, "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads, "num_key_value_heads": shape.kvHeads, "head_dim": headDim,
            "num_local_experts": shape.experts, "num_experts_per_tok": shape.topK, "rms_norm_eps": 1e-5,
            "rope_theta": 1e6, "tie_word_embeddings": false, "max_position_embeddings": 4096,
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": shape.dtype == .bf16 ? "bfloat16" : "float32",
        ]
        try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                             to: directory.appendingPathComponent("config.json"))
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
            ("lm_head.weight", random([shape.vocab, shape.hidden])),
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
                (p + "block_sparse_moe.gate.weight", random([shape.experts, shape.hidden], scale: 1)),
            ]
            for e in 0..<shape.experts {
                let q = p + "block_sparse_moe.experts.\(e)."
                tensors += [
                    (q + "w1.weight", random([shape.expertWidth, shape.hidden])),
                    (q + "w3.weight", random([shape.expertWidth, shape.hidden])),
                    (q + "w2.weight", random([shape.hidden, shape.expertWidth])),
                ]
            }
        }
        try SafetensorsWriter.write(tensors, to: directory.appendingPathComponent("model.safetensors"))
    }
}
