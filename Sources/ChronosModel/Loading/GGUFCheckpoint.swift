import ChronosFormats
import ChronosTensor
import Foundation

/// A GGUF file (llama.cpp's model format) read as a checkpoint of one of the Hugging Face
/// families: its `{arch}.*` metadata becomes the `config.json` that family's loader decodes,
/// and its tensors are renamed to the family's checkpoint names, so a GGUF model runs through
/// the same model code, and saves as the same directory, as a safetensors checkpoint.
///
/// Architectures: `llama` (dense, or Mixtral-style MoE when `llama.expert_count` is set, with
/// experts stacked as `blk.N.ffn_{gate,up,down}_exps` or one tensor per expert as
/// `blk.N.ffn_{gate,up,down}.E`), `qwen2moe`, `qwen3moe`, `olmoe`, the dense `qwen2` and `qwen3`,
/// which load as the Qwen MoE families with every layer dense (`mlp_only_layers`), and
/// `deepseek2` (DeepSeek-V2, or V3 where its gating is sigmoid), whose key and value
/// up-projections llama.cpp stores split and transposed (`attn_k_b`, `attn_v_b`) and are joined
/// back into `kv_b_proj`, and `glm4moe` (GLM-4.5), whose multi-token-prediction layers after
/// the last decoder layer are skipped. Tensors keep their GGUF
/// types, quantised ones included; llama.cpp's converter reorders the query and key rows of
/// `llama` models for its rotary layout, and that order is undone here.
public enum GGUFCheckpoint {
    /// The `general.architecture` values that load, sorted.
    public static var architectures: [String] { Family.allCases.map(\.rawValue).sorted() }

    /// The families a GGUF file can hold, by `general.architecture`.
    enum Family: String, CaseIterable {
        case llama, qwen2, qwen3, qwen2moe, qwen3moe, olmoe, deepseek2, glm4moe
    }

    /// The `config.json` `file`'s metadata amounts to, the architecture that decodes it, and
    /// its validated configuration.
    static func configuration(_ file: GGUFFile) throws
        -> (json: Data, architecture: any TransformerArchitecture.Type, configuration: TransformerConfiguration)
    {
        let metadata = Metadata(file: file)
        let name = try metadata.string("general.architecture")
        guard let family = Family(rawValue: name) else {
            throw ModelError.unsupportedConfig(
                file: metadata.path, field: "general.architecture",
                value: "'\(name)'; GGUF architectures that load: \(architectures.joined(separator: ", "))")
        }
        let json = try family.config(metadata)
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])
        let modelType = json["model_type"] as? String ?? ""
        guard let architecture = ModelRegistry.architectures.first(where: { $0.modelType == modelType }) else {
            throw ModelError.unknownModelType(modelType, known: ModelRegistry.modelTypes)
        }
        return (data, architecture, try architecture.configuration(config: data, file: metadata.path))
    }

    /// Every tensor of `file` under the family's checkpoint names (`keys`), stacked experts
    /// split into per-expert views and `llama` query/key rows put back in Hugging Face order.
    static func weights(_ file: GGUFFile, configuration c: TransformerConfiguration, keys: CheckpointKeys) throws -> [String: Tensor] {
        let reordersRotaryRows = c.modelType == "llama" || c.modelType == "mixtral"
        var weights: [String: Tensor] = [:]
        func put(_ name: String, _ tensor: Tensor) throws {
            guard weights.updateValue(tensor, forKey: name) == nil else {
                throw ModelError.malformedConfig(file: file.url.path, field: name, reason: "two tensors of the file map to it")
            }
        }
        // GLM-4.5's multi-token-prediction layers follow the decoder layers; decoding does not run them.
        let predictionLayers = c.layerCount..<(c.layerCount + (try Family.predictionLayerCount(Metadata(file: file))))
        // llama.cpp's DeepSeek files split each layer's kv_b_proj in two; they are joined below.
        var splitKeyValue: [Int: (key: Tensor?, value: Tensor?)] = [:]
        for info in file.tensorInfos {
            if let layer = blockIndex(info.name), predictionLayers.contains(layer) { continue }
            let tensor = try file.tensor(named: info.name)
            if let (layer, local) = layerTensor(info.name, layers: c.layerCount), local == "attn_k_b.weight" || local == "attn_v_b.weight" {
                if local == "attn_k_b.weight" {
                    splitKeyValue[layer, default: (nil, nil)].key = tensor
                } else {
                    splitKeyValue[layer, default: (nil, nil)].value = tensor
                }
                continue
            }
            switch info.name {
            case "token_embd.weight": try put(keys.embedding, tensor)
            case "output.weight": try put(keys.lmHead, tensor)
            case "output_norm.weight": try put(keys.finalNorm, tensor)
            case "rope_freqs.weight":
                throw ModelError.unsupportedConfig(file: file.url.path, field: info.name, value: "(scaled rotary frequencies)")
            default:
                guard let (layer, local) = layerTensor(info.name, layers: c.layerCount) else {
                    throw ModelError.unusedTensor(name: info.name, directory: file.url.path)
                }
                try mapLayerTensor(
                    local, layer: layer, tensor: tensor, info: info, configuration: c, keys: keys,
                    reordersRotaryRows: reordersRotaryRows, path: file.url.path, put: put)
            }
        }
        for (layer, parts) in splitKeyValue {
            guard let key = parts.key, let value = parts.value else {
                let missing = parts.key == nil ? "attn_k_b" : "attn_v_b"
                throw ModelError.missingTensor(name: "blk.\(layer).\(missing).weight", directory: file.url.path)
            }
            try put(
                keys.layer(layer, "self_attn.kv_b_proj.weight"),
                try joinedKeyValue(key: key, value: value, layer: layer, path: file.url.path))
        }
        return weights
    }

    /// DeepSeek's `kv_b_proj` `[heads·(nope + v), latent]` (each head's key rows, then its value
    /// rows) from llama.cpp's `attn_k_b` `[heads, latent, nope]` (transposed) and `attn_v_b`
    /// `[heads, v, latent]`, in f32.
    private static func joinedKeyValue(key: Tensor, value: Tensor, layer: Int, path: String) throws -> Tensor {
        guard key.rank == 3, value.rank == 3, key.shape[0] == value.shape[0], key.shape[1] == value.shape[2] else {
            throw ModelError.shapeMismatch(
                tensor: "blk.\(layer).attn_k_b.weight", expected: [value.shape[0], value.shape[2], key.shape.last ?? 0], found: key.shape)
        }
        let heads = key.shape[0], latent = key.shape[1], nope = key.shape[2], width = value.shape[1]
        let keys = key.floats, values = value.floats
        var joined = [Float](repeating: 0, count: heads * (nope + width) * latent)
        for head in 0..<heads {
            let base = head * (nope + width) * latent
            for row in 0..<nope {
                for column in 0..<latent { joined[base + row * latent + column] = keys[(head * latent + column) * nope + row] }
            }
            for row in 0..<width {
                let source = (head * width + row) * latent
                joined.replaceSubrange(
                    (base + (nope + row) * latent)..<(base + (nope + row + 1) * latent), with: values[source..<(source + latent)])
            }
        }
        return Tensor(shape: [heads * (nope + width), latent], values: joined)
    }

    /// N of a tensor named `blk.N.…`.
    private static func blockIndex(_ name: String) -> Int? {
        let parts = name.split(separator: ".", maxSplits: 2)
        return parts.count == 3 && parts[0] == "blk" ? Int(parts[1]) : nil
    }

    /// `blk.N.rest` as (N, rest), for N a layer of the model.
    private static func layerTensor(_ name: String, layers: Int) -> (Int, String)? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), (0..<layers).contains(layer) else { return nil }
        return (layer, String(parts[2]))
    }

    /// Puts the layer tensor `local` (`attn_q.weight`, `ffn_gate_exps.weight`, …) under its
    /// checkpoint name or names.
    private static func mapLayerTensor(
        _ local: String, layer: Int, tensor: Tensor, info: GGUFTensorInfo, configuration c: TransformerConfiguration,
        keys: CheckpointKeys, reordersRotaryRows: Bool, path: String, put: (String, Tensor) throws -> Void
    ) throws {
        let attention = { (name: String) in keys.layer(layer, "self_attn.\(name)") }
        let simple: [String: String] = [
            "attn_norm.weight": keys.layer(layer, "input_layernorm.weight"),
            "ffn_norm.weight": keys.layer(layer, "post_attention_layernorm.weight"),
            "attn_v.weight": attention("v_proj.weight"), "attn_v.bias": attention("v_proj.bias"),
            "attn_output.weight": attention("o_proj.weight"), "attn_output.bias": attention("o_proj.bias"),
            "attn_q_norm.weight": attention("q_norm.weight"), "attn_k_norm.weight": attention("k_norm.weight"),
            "ffn_gate.weight": keys.layer(layer, "mlp.gate_proj.weight"), "ffn_up.weight": keys.layer(layer, "mlp.up_proj.weight"),
            "ffn_down.weight": keys.layer(layer, "mlp.down_proj.weight"),
            "ffn_gate_inp.weight": keys.router(layer: layer),
            "ffn_gate_shexp.weight": keys.sharedExpert(layer: layer, index: 0).gate,
            "ffn_up_shexp.weight": keys.sharedExpert(layer: layer, index: 0).up,
            "ffn_down_shexp.weight": keys.sharedExpert(layer: layer, index: 0).down,
            "exp_probs_b.bias": keys.routerBias(layer: layer),
            "attn_q_a.weight": attention("q_a_proj.weight"), "attn_q_a_norm.weight": attention("q_a_layernorm.weight"),
            "attn_q_b.weight": attention("q_b_proj.weight"), "attn_kv_a_mqa.weight": attention("kv_a_proj_with_mqa.weight"),
            "attn_kv_a_norm.weight": attention("kv_a_layernorm.weight"), "attn_kv_b.weight": attention("kv_b_proj.weight")
        ]
        if let name = simple[local] { return try put(name, tensor) }
        switch local {
        case "post_attention_norm.weight" where c.modelType == Glm4MoEConfiguration.modelType:
            // llama.cpp names GLM-4.5's norm before the feed-forward after the attention it follows.
            try put(keys.layer(layer, "post_attention_layernorm.weight"), tensor)
        case "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias":
            let isQuery = local.hasPrefix("attn_q")
            let name = attention((isQuery ? "q_proj." : "k_proj.") + local.split(separator: ".")[1])
            let heads = isQuery ? c.attentionHeads : c.keyValueHeads
            try put(name, reordersRotaryRows ? try rotaryRowsToHuggingFace(tensor, heads: heads, name: info.name, path: path) : tensor)
        case "ffn_gate_inp_shexp.weight":
            // llama.cpp keeps the shared expert's gate as a vector; the model reads it as one row.
            try put(keys.sharedExpertGate(layer: layer), tensor.reshaped([1, tensor.count]))
        case "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight":
            guard case .mixture(let mixture) = c.feedForward[layer] else { throw ModelError.unusedTensor(name: info.name, directory: path) }
            let count = mixture.expertCount, width = mixture.intermediateSize
            let expected = local.hasPrefix("ffn_down") ? [count, c.hiddenSize, width] : [count, width, c.hiddenSize]
            guard tensor.shape == expected else {
                throw ModelError.shapeMismatch(tensor: info.name, expected: expected, found: tensor.shape)
            }
            let rows = expected[1]
            let stacked = tensor.reshaped([count * rows, tensor.shape[2]])
            for expert in 0..<count {
                let names = keys.expert(ExpertKey(layer: layer, expert: expert))
                let name = local.hasPrefix("ffn_gate") ? names.gate : local.hasPrefix("ffn_up") ? names.up : names.down
                try put(name, stacked.slice((expert * rows)..<((expert + 1) * rows)))
            }
        default:
            // The older Mixtral layout: one tensor per expert, `ffn_gate.E.weight`.
            let parts = local.split(separator: ".")
            guard parts.count == 3, parts[2] == "weight", let expert = Int(parts[1]), expert >= 0,
                ["ffn_gate", "ffn_up", "ffn_down"].contains(parts[0])
            else { throw ModelError.unusedTensor(name: info.name, directory: path) }
            let names = keys.expert(ExpertKey(layer: layer, expert: expert))
            try put(parts[0] == "ffn_gate" ? names.gate : parts[0] == "ffn_up" ? names.up : names.down, tensor)
        }
    }

    /// The rows of a `llama` query or key projection (weight or bias) in Hugging Face's order.
    /// llama.cpp's converter interleaves each head's two rotary halves: its row `2i + s` of a
    /// head is Hugging Face's row `s·d/2 + i`, for head width `d`. Rows are moved whole, so a
    /// quantised projection keeps its blocks.
    static func rotaryRowsToHuggingFace(_ tensor: Tensor, heads: Int, name: String, path: String) throws -> Tensor {
        let rows = tensor.shape[0]
        guard heads > 0, rows % (2 * heads) == 0, tensor.isContiguous else {
            throw ModelError.shapeMismatch(tensor: name, expected: [heads * 2], found: tensor.shape)
        }
        let width = rows / heads, half = width / 2
        let rowBytes = tensor.dtype.byteCount(tensor.count / rows)
        let out = Tensor(zeros: tensor.shape, dtype: tensor.dtype)
        for head in 0..<heads {
            for s in 0..<2 {
                for i in 0..<half {
                    let from = head * width + 2 * i + s, to = head * width + s * half + i
                    (out.rawPointer + to * rowBytes).copyMemory(from: tensor.rawPointer + from * rowBytes, byteCount: rowBytes)
                }
            }
        }
        return out
    }
}

extension GGUFCheckpoint.Family {
    /// The `config.json` of this family that `metadata` describes.
    func config(_ m: GGUFCheckpoint.Metadata) throws -> [String: Any] {
        let arch = rawValue
        let heads = try m.int("\(arch).attention.head_count", in: ConfigurationLimits.heads)
        let hidden = try m.int("\(arch).embedding_length", in: ConfigurationLimits.width)
        var config: [String: Any] = [
            "vocab_size": try m.vocabularySize(),
            "hidden_size": hidden,
            "num_hidden_layers": try m.int("\(arch).block_count", in: ConfigurationLimits.layers),
            "num_attention_heads": heads,
            "num_key_value_heads": try m.int("\(arch).attention.head_count_kv", in: ConfigurationLimits.heads, default: heads),
            "rms_norm_eps": try m.float("\(arch).attention.layer_norm_rms_epsilon", default: 1e-6),
            "rope_theta": try m.float("\(arch).rope.freq_base", default: 10_000),
            "tie_word_embeddings": !m.file.tensorNames.contains("output.weight"),
            "hidden_act": "silu"
        ]
        if let context = try m.optionalInt("\(arch).context_length", in: ConfigurationLimits.positions) {
            config["max_position_embeddings"] = context
        }
        if let bos = try m.optionalInt("tokenizer.ggml.bos_token_id", in: 0...Int(Int32.max)) { config["bos_token_id"] = bos }
        if let eos = try m.optionalInt("tokenizer.ggml.eos_token_id", in: 0...Int(Int32.max)) { config["eos_token_id"] = eos }
        if self != .deepseek2 {
            let headDim = try m.optionalInt("\(arch).attention.key_length", in: ConfigurationLimits.headWidth) ?? hidden / heads
            config["head_dim"] = headDim
            if let valueWidth = try m.optionalInt("\(arch).attention.value_length", in: ConfigurationLimits.headWidth),
                valueWidth != headDim
            {
                throw ModelError.unsupportedConfig(
                    file: m.path, field: "\(arch).attention.value_length", value: "\(valueWidth) (differs from key_length \(headDim))")
            }
            if let rotary = try m.optionalInt("\(arch).rope.dimension_count", in: 1...Int(Int32.max)), rotary != headDim {
                guard self == .glm4moe, rotary < headDim else {
                    throw ModelError.unsupportedConfig(
                        file: m.path, field: "\(arch).rope.dimension_count",
                        value: "\(rotary) (partial rotary; the head width is \(headDim))")
                }
                // Halfway between `rotary` and the next width, so that head_dim times the factor
                // rounds down to `rotary` however the division rounds.
                config["partial_rotary_factor"] = (Double(rotary) + 0.5) / Double(headDim)
            }
        }
        if let scaling = try m.ropeScaling(arch) { config["rope_scaling"] = scaling }
        let experts = try m.optionalInt("\(arch).expert_count", in: 0...ConfigurationLimits.experts.upperBound) ?? 0
        let perToken = { try m.int("\(arch).expert_used_count", in: 1...max(1, experts)) }
        switch self {
        case .llama:
            config["intermediate_size"] = try m.int("\(arch).feed_forward_length", in: ConfigurationLimits.width)
            if experts > 0 {
                config["model_type"] = "mixtral"
                config["num_local_experts"] = experts
                config["num_experts_per_tok"] = try perToken()
            } else {
                config["model_type"] = "llama"
            }
        case .qwen2moe, .qwen3moe:
            config["model_type"] = self == .qwen2moe ? "qwen2_moe" : "qwen3_moe"
            config["num_experts"] = try m.int("\(arch).expert_count", in: ConfigurationLimits.experts)
            config["num_experts_per_tok"] = try perToken()
            config["moe_intermediate_size"] = try m.int("\(arch).expert_feed_forward_length", in: ConfigurationLimits.width)
            // llama.cpp renormalises the chosen experts' weights for Qwen3-MoE, not for Qwen2-MoE.
            config["norm_topk_prob"] = self == .qwen3moe
            config["decoder_sparse_step"] = 1
            config["mlp_only_layers"] = [Int]()
            if self == .qwen2moe {
                let shared = try m.int("\(arch).expert_shared_feed_forward_length", in: ConfigurationLimits.width)
                config["shared_expert_intermediate_size"] = shared
                config["intermediate_size"] = shared
            } else {
                config["intermediate_size"] = try m.optionalInt("\(arch).feed_forward_length", in: ConfigurationLimits.width) ?? 1
            }
        case .qwen2, .qwen3:
            // Every layer in `mlp_only_layers` is dense, which is what the dense families are.
            let width = try m.int("\(arch).feed_forward_length", in: ConfigurationLimits.width)
            let layers = config["num_hidden_layers"] as? Int ?? 0
            config["model_type"] = self == .qwen2 ? "qwen2_moe" : "qwen3_moe"
            config["intermediate_size"] = width
            config["mlp_only_layers"] = Array(0..<layers)
            config["num_experts"] = 1
            config["num_experts_per_tok"] = 1
            config["moe_intermediate_size"] = width
            config["shared_expert_intermediate_size"] = width
        case .deepseek2:
            try deepSeekConfig(m, into: &config)
        case .glm4moe:
            try glm4MoEConfig(m, into: &config)
        case .olmoe:
            config["model_type"] = "olmoe"
            config["num_experts"] = try m.int("\(arch).expert_count", in: ConfigurationLimits.experts)
            config["num_experts_per_tok"] = try perToken()
            config["intermediate_size"] = try m.int("\(arch).feed_forward_length", in: ConfigurationLimits.width)
            config["norm_topk_prob"] = false
        }
        return config
    }
}

extension GGUFCheckpoint.Family {
    /// The multi-token-prediction layers a `glm4moe` file counts in its `block_count`
    /// (`nextn_predict_layers`); 0 for the other families.
    static func predictionLayerCount(_ m: GGUFCheckpoint.Metadata) throws -> Int {
        guard let name = m.metadata["general.architecture"]?.string, name == Self.glm4moe.rawValue else { return 0 }
        let blocks = try m.int("\(name).block_count", in: ConfigurationLimits.layers)
        return try m.optionalInt("\(name).nextn_predict_layers", in: 0...(blocks - 1)) ?? 0
    }

    /// The GLM-4.5 `config.json` fields of a `glm4moe` file: the decoder layers without the
    /// multi-token-prediction ones, routing as llama.cpp's converter writes it (sigmoid gating
    /// with the selection bias, groups, scale and renormalisation), and the q/k norms and
    /// attention biases the file's tensors show.
    fileprivate func glm4MoEConfig(_ m: GGUFCheckpoint.Metadata, into config: inout [String: Any]) throws {
        let arch = rawValue, width = ConfigurationLimits.width
        if let gating = try m.optionalInt("\(arch).expert_gating_func", in: 0...3), gating != 2 {
            throw ModelError.unsupportedConfig(
                file: m.path, field: "\(arch).expert_gating_func", value: "\(gating) (GLM-4.5 gates with a sigmoid, 2)")
        }
        let blocks = try m.int("\(arch).block_count", in: ConfigurationLimits.layers)
        config["model_type"] = Glm4MoEConfiguration.modelType
        config["num_hidden_layers"] = blocks - (try Self.predictionLayerCount(m))
        config["intermediate_size"] = try m.int("\(arch).feed_forward_length", in: width)
        config["moe_intermediate_size"] = try m.int("\(arch).expert_feed_forward_length", in: width)
        config["n_routed_experts"] = try m.int("\(arch).expert_count", in: ConfigurationLimits.experts)
        config["num_experts_per_tok"] = try m.int("\(arch).expert_used_count", in: ConfigurationLimits.experts)
        config["n_shared_experts"] = try m.int("\(arch).expert_shared_count", in: 0...ConfigurationLimits.experts.upperBound)
        config["first_k_dense_replace"] = try m.optionalInt("\(arch).leading_dense_block_count", in: 0...blocks) ?? 0
        config["n_group"] = try m.optionalInt("\(arch).expert_group_count", in: ConfigurationLimits.experts) ?? 1
        config["topk_group"] = try m.optionalInt("\(arch).expert_group_used_count", in: ConfigurationLimits.experts) ?? 1
        config["routed_scaling_factor"] = try m.float("\(arch).expert_weights_scale", default: 1)
        config["norm_topk_prob"] = try m.bool("\(arch).expert_weights_norm", default: false)
        config["use_qk_norm"] = m.file.tensorNames.contains("blk.0.attn_q_norm.weight")
        config["attention_bias"] = m.file.tensorNames.contains("blk.0.attn_q.bias")
        // A file whose rotary width is the whole head says no factor; transformers' default is half.
        if config["partial_rotary_factor"] == nil { config["partial_rotary_factor"] = 1.0 }
    }

    /// The DeepSeek-V2 or V3 `config.json` fields of a `deepseek2` file: multi-head latent
    /// attention (llama.cpp's `key_length_mla` and `value_length_mla`, or in older files
    /// `key_length` and `value_length`, are the per-head widths), routing (sigmoid gating
    /// means V3 with its `noaux_tc` groups) and YaRN's `yarn_log_multiplier`, which is
    /// `0.1 · mscale_all_dim`; llama.cpp takes `mscale` to equal it, as DeepSeek's checkpoints have.
    fileprivate func deepSeekConfig(_ m: GGUFCheckpoint.Metadata, into config: inout [String: Any]) throws {
        let arch = rawValue, width = ConfigurationLimits.width
        let sigmoid = try m.optionalInt("\(arch).expert_gating_func", in: 0...3) == 2
        let groups = try m.optionalInt("\(arch).expert_group_count", in: ConfigurationLimits.experts) ?? 1
        let rotary = try m.int("\(arch).rope.dimension_count", in: ConfigurationLimits.headWidth)
        let keyWidth =
            try m.optionalInt("\(arch).attention.key_length_mla", in: ConfigurationLimits.headWidth)
            ?? m.int("\(arch).attention.key_length", in: ConfigurationLimits.headWidth)
        guard keyWidth > rotary else {
            throw ModelError.malformedConfig(
                file: m.path, field: "\(arch).attention.key_length_mla", reason: "\(keyWidth) is not above the rotary width \(rotary)")
        }
        config["model_type"] = sigmoid ? "deepseek_v3" : "deepseek_v2"
        config["num_key_value_heads"] = config["num_attention_heads"]
        config["intermediate_size"] = try m.int("\(arch).feed_forward_length", in: width)
        config["moe_intermediate_size"] = try m.int("\(arch).expert_feed_forward_length", in: width)
        config["n_routed_experts"] = try m.int("\(arch).expert_count", in: ConfigurationLimits.experts)
        config["num_experts_per_tok"] = try m.int("\(arch).expert_used_count", in: ConfigurationLimits.experts)
        config["n_shared_experts"] = try m.optionalInt("\(arch).expert_shared_count", in: 0...ConfigurationLimits.experts.upperBound) ?? 0
        config["first_k_dense_replace"] = try m.optionalInt("\(arch).leading_dense_block_count", in: ConfigurationLimits.layers) ?? 0
        config["n_group"] = groups
        config["topk_group"] = try m.optionalInt("\(arch).expert_group_used_count", in: ConfigurationLimits.experts) ?? 1
        config["scoring_func"] = sigmoid ? "sigmoid" : "softmax"
        config["topk_method"] = sigmoid ? "noaux_tc" : groups > 1 ? "group_limited_greedy" : "greedy"
        config["routed_scaling_factor"] = try m.float("\(arch).expert_weights_scale", default: 1)
        config["norm_topk_prob"] = try m.bool("\(arch).expert_weights_norm", default: false)
        config["q_lora_rank"] = try m.optionalInt("\(arch).attention.q_lora_rank", in: width) ?? NSNull()
        config["kv_lora_rank"] = try m.int("\(arch).attention.kv_lora_rank", in: width)
        config["qk_rope_head_dim"] = rotary
        config["qk_nope_head_dim"] = keyWidth - rotary
        config["v_head_dim"] =
            try m.optionalInt("\(arch).attention.value_length_mla", in: ConfigurationLimits.headWidth)
            ?? m.int("\(arch).attention.value_length", in: ConfigurationLimits.headWidth)
        config["rope_interleave"] = true
        if var scaling = config["rope_scaling"] as? [String: Any], scaling["rope_type"] as? String == "yarn",
            m.metadata["\(arch).rope.scaling.yarn_log_multiplier"] != nil
        {
            let mscale = try m.float("\(arch).rope.scaling.yarn_log_multiplier", default: 0) / 0.1
            scaling["mscale"] = mscale
            scaling["mscale_all_dim"] = mscale
            config["rope_scaling"] = scaling
        }
    }
}

extension GGUFCheckpoint {
    /// Typed reads of a GGUF file's metadata; errors name the key.
    struct Metadata {
        let file: GGUFFile
        var metadata: [String: GGUFValue] { file.metadata }
        var path: String { file.url.path }

        func string(_ key: String) throws -> String {
            guard let value = metadata[key] else { throw ModelError.malformedConfig(file: path, field: key, reason: "missing") }
            guard let string = value.string else { throw ModelError.malformedConfig(file: path, field: key, reason: "not a string") }
            return string
        }

        func optionalInt(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let value = metadata[key] else { return nil }
            guard let int = value.int, range.contains(int) else {
                throw ModelError.malformedConfig(file: path, field: key, reason: "\(value) is not an integer in \(range)")
            }
            return int
        }

        func int(_ key: String, in range: ClosedRange<Int>, default fallback: Int? = nil) throws -> Int {
            if let int = try optionalInt(key, in: range) { return int }
            guard let fallback else { throw ModelError.malformedConfig(file: path, field: key, reason: "missing") }
            return fallback
        }

        func bool(_ key: String, default fallback: Bool) throws -> Bool {
            guard let value = metadata[key] else { return fallback }
            guard case .bool(let flag) = value else {
                throw ModelError.malformedConfig(file: path, field: key, reason: "\(value) is not a bool")
            }
            return flag
        }

        func float(_ key: String, default fallback: Double) throws -> Double {
            guard let value = metadata[key] else { return fallback }
            guard case .float(let number) = value, number.isFinite, number > 0 else {
                throw ModelError.malformedConfig(file: path, field: key, reason: "\(value) is not a positive finite number")
            }
            return number
        }

        /// `rope_scaling` of `config.json` from `{arch}.rope.scaling.*`: `linear` (its factor)
        /// and `yarn` (its factor, original context and, where given, attention factor and
        /// β bounds); nil for none. Other types are refused by name.
        func ropeScaling(_ arch: String) throws -> [String: Any]? {
            let prefix = "\(arch).rope.scaling."
            guard let type = metadata[prefix + "type"]?.string, type != "none" else { return nil }
            guard type == "linear" || type == "yarn" else {
                throw ModelError.unsupportedConfig(file: path, field: prefix + "type", value: "'\(type)' (linear and yarn are read)")
            }
            var scaling: [String: Any] = ["rope_type": type]
            if metadata[prefix + "factor"] != nil { scaling["factor"] = try float(prefix + "factor", default: 1) }
            if type == "yarn" {
                if let context = try optionalInt(prefix + "original_context_length", in: ConfigurationLimits.positions) {
                    scaling["original_max_position_embeddings"] = context
                }
                for (key, field) in [("attn_factor", "attention_factor"), ("yarn_beta_fast", "beta_fast"), ("yarn_beta_slow", "beta_slow")]
                where metadata[prefix + key] != nil {
                    scaling[field] = try float(prefix + key, default: 1)
                }
            }
            return scaling
        }

        /// The rows of the embedding table, which the token list (when present) must match.
        func vocabularySize() throws -> Int {
            let info = try file.info(named: "token_embd.weight")
            guard info.shape.count == 2, ConfigurationLimits.vocabulary.contains(info.shape[0]) else {
                throw ModelError.malformedConfig(
                    file: path, field: "token_embd.weight", reason: "shape \(info.shape) is not [vocabulary, hidden]")
            }
            return info.shape[0]
        }
    }
}

extension TransformerLanguageModel {
    /// Loads the GGUF file at `url` (see `GGUFCheckpoint`). Routed experts come from `experts`
    /// when given, else from the file.
    public convenience init(gguf url: URL, experts: (any ExpertProvider)? = nil) throws {
        let file = try GGUFFile(url: url)
        let (config, architecture, configuration) = try GGUFCheckpoint.configuration(file)
        var weights = try GGUFCheckpoint.weights(file, configuration: configuration, keys: architecture.checkpointKeys)
        if experts != nil { weights = weights.filter { !$0.key.contains(".\(architecture.checkpointKeys.mixtureModule).experts.") } }
        let location = url.path
        try self.init(
            configuration: configuration, keys: architecture.checkpointKeys, configJSON: config,
            weights: try architecture.sanitize(weights, configuration: configuration, location: location), experts: experts,
            location: location)
    }
}
