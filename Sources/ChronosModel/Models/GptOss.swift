import ChronosTensor
import Foundation

/// `config.json` of a gpt-oss model (`model_type` `gpt_oss`): grouped-query attention with a
/// learned sink logit per head, sliding-window and full layers as `layer_types` says, biases on
/// every attention projection, and in every layer `num_experts_per_tok` of `num_local_experts`
/// experts with biases and a clamped SwiGLU, chosen by a router with a bias that takes the top-k
/// logits and then a softmax over those k.
///
/// Defaults are transformers' `GptOssConfig`.
public struct GptOssConfiguration: Decodable, Sendable {
    /// `model_type`.
    public var modelType: String
    /// `architectures`, e.g. `["GptOssForCausalLM"]`.
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
    /// `sliding_window`: the keys a `sliding_attention` layer sees, its own position included.
    public var slidingWindow: Int?
    /// `layer_types`: `sliding_attention` or `full_attention` per layer; absent means sliding
    /// for even layers and full for odd ones.
    public var layerTypes: [String]?
    /// `attention_bias`: biases on the q, k, v and o projections.
    public var attentionBias: Bool
    /// `swiglu_alpha`: α in the experts' g·σ(α·g).
    public var swigluAlpha: Float
    /// `swiglu_limit`: the experts' gate is clamped to at most this, their up value to ±this.
    public var swigluLimit: Float
    /// `rms_norm_eps`.
    public var rmsNormEps: Float
    /// `rope_parameters` (or transformers 4's `rope_theta` and `rope_scaling`).
    public var rope: RoPEParameters
    /// `tie_word_embeddings`.
    public var tieWordEmbeddings: Bool
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
        case slidingWindow = "sliding_window"
        case layerTypes = "layer_types"
        case attentionBias = "attention_bias"
        case swigluAlpha = "swiglu_alpha"
        case swigluLimit = "swiglu_limit"
        case rmsNormEps = "rms_norm_eps"
        case tieWordEmbeddings = "tie_word_embeddings"
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
        localExperts = try c.decodeIfPresent(Int.self, forKey: .localExperts) ?? 128
        expertsPerToken = try c.decodeIfPresent(Int.self, forKey: .expertsPerToken) ?? 4
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        layerTypes = try c.decodeIfPresent([String].self, forKey: .layerTypes)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? true
        swigluAlpha = try c.decodeIfPresent(Float.self, forKey: .swigluAlpha) ?? 1.702
        swigluLimit = try c.decodeIfPresent(Float.self, forKey: .swigluLimit) ?? 7
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-5
        rope = try RoPEParameters.decode(from: decoder, defaultTheta: 150_000)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeTokenIDs(forKey: .eosTokenId)
    }
}

extension GptOssConfiguration: TransformerArchitecture {
    static let modelType = "gpt_oss"

    /// gpt-oss names its router `mlp.router` (weight and bias); the experts' biases sit beside
    /// the router, stacked over the layer's experts.
    static let checkpointKeys = CheckpointKeys(routerModule: "router")

    func transformerConfiguration(file: String) throws -> TransformerConfiguration {
        let types = layerTypes ?? (0..<hiddenLayers).map { $0 % 2 == 0 ? "sliding_attention" : "full_attention" }
        guard types.count == hiddenLayers else {
            throw ModelError.malformedConfig(
                file: file, field: "layer_types", reason: "has \(types.count) entries for \(hiddenLayers) layers")
        }
        let attention = try types.map { type -> TransformerConfiguration.LayerAttention in
            switch type {
            case "full_attention":
                return .grouped(window: nil)
            case "sliding_attention":
                guard let slidingWindow else {
                    throw ModelError.malformedConfig(
                        file: file, field: "sliding_window", reason: "is null, but layer_types has sliding_attention layers")
                }
                return .grouped(window: slidingWindow)
            default:
                throw ModelError.unsupportedConfig(file: file, field: "layer_types", value: "'\(type)'")
            }
        }
        guard swigluLimit > 0 && swigluLimit.isFinite else {
            throw ModelError.malformedConfig(file: file, field: "swiglu_limit", reason: "must be positive and finite, got \(swigluLimit)")
        }
        guard swigluAlpha.isFinite else {
            throw ModelError.malformedConfig(file: file, field: "swiglu_alpha", reason: "must be finite, got \(swigluAlpha)")
        }
        // The softmax over the top-k logits equals the full softmax renormalised over the top-k.
        let mixture = MixtureConfiguration(
            expertCount: localExperts, topK: expertsPerToken, intermediateSize: intermediateSize, normalizeTopK: true,
            shared: nil, routerBias: true, expertBias: true,
            activation: .clampedSwiGLU(alpha: swigluAlpha, limit: swigluLimit))
        return TransformerConfiguration(
            modelType: modelType, architecture: architectures?.first, vocabSize: vocabSize, hiddenSize: hiddenSize,
            layerCount: hiddenLayers, attentionHeads: attentionHeads, keyValueHeads: keyValueHeads,
            headDim: try TransformerConfiguration.headDim(headDim, hiddenSize: hiddenSize, heads: attentionHeads, file: file),
            rope: try rope.rotaryEmbedding(maxPositionEmbeddings: maxPositionEmbeddings, file: file), rmsNormEps: rmsNormEps,
            tieWordEmbeddings: tieWordEmbeddings,
            queryKeyValueBias: attentionBias, outputBias: attentionBias, mlpBias: false, queryKeyNorm: .none,
            attention: attention, feedForward: Array(repeating: .mixture(mixture), count: hiddenLayers),
            bosTokenId: bosTokenId, eosTokenIds: eosTokenId, maxPositionEmbeddings: maxPositionEmbeddings,
            attentionSinks: true)
    }

    /// gpt-oss stores each layer's experts fused and transposed, as `mlp.experts.gate_up_proj`
    /// `[E, H, 2·I]` (gate and up columns interleaved: gate at even columns, up at odd) with
    /// `gate_up_proj_bias` `[E, 2·I]` interleaved the same way, and `mlp.experts.down_proj`
    /// `[E, I, H]` with `down_proj_bias` `[E, H]`. They are rearranged into transformers 5's
    /// common fused layout (`[E, 2·I, H]`, gate rows then up rows; `[E, H, I]`), which
    /// `HuggingFaceWeights` splits per expert, and the gate and up biases into
    /// `gate_proj_bias` and `up_proj_bias` `[E, I]`.
    ///
    /// The published checkpoints store the expert weights in MXFP4 instead, untransposed:
    /// `gate_up_proj_blocks` `[E, 2·I, H/32, 16]` with `gate_up_proj_scales` `[E, 2·I, H/32]`
    /// (gate and up rows interleaved) and `down_proj_blocks` `[E, H, I/32, 16]` with
    /// `down_proj_scales`; they become per-expert `mxfp4` tensors (`HuggingFaceMXFP4`), which
    /// the kernels read as they are.
    static func sanitize(
        _ weights: [String: Tensor], configuration c: TransformerConfiguration, location: String
    ) throws -> [String: Tensor] {
        var weights = weights
        for (layer, block) in c.feedForward.enumerated() {
            guard case .mixture(let mixture) = block else { continue }
            let experts = checkpointKeys.layer(layer, "mlp.experts.")
            let count = mixture.expertCount, width = mixture.intermediateSize, hidden = c.hiddenSize
            func take(_ name: String, _ shape: [Int]) throws -> Tensor? {
                guard let tensor = weights.removeValue(forKey: experts + name) else { return nil }
                guard tensor.shape == shape else {
                    throw ModelError.shapeMismatch(tensor: experts + name, expected: shape, found: tensor.shape)
                }
                return tensor.contiguous()
            }
            /// The MXFP4 tensor `[E·rows, columns]` of `name_blocks` and `name_scales`, if the checkpoint has them.
            func mxfp4(_ name: String, rows: Int, columns: Int) throws -> Tensor? {
                guard weights[experts + name + "_blocks"] != nil else { return nil }
                guard columns % DType.mxfp4.blockElements == 0 else {
                    throw ModelError.malformedConfig(
                        file: location, field: columns == hidden ? "hidden_size" : "intermediate_size",
                        reason: "\(columns) must be a multiple of 32 for MXFP4 expert weights")
                }
                let groups = columns / DType.mxfp4.blockElements
                guard let blocks = try take(name + "_blocks", [count, rows, groups, 16]) else { return nil }
                guard let scales = try take(name + "_scales", [count, rows, groups]) else {
                    throw ModelError.missingTensor(name: experts + name + "_scales", directory: location)
                }
                for (tensor, suffix) in [(blocks, "_blocks"), (scales, "_scales")] where tensor.dtype != .u8 {
                    throw ModelError.unsupportedDType(tensor: experts + name + suffix, dtype: tensor.dtype.rawValue)
                }
                return HuggingFaceMXFP4.tensor(blocks: blocks, scales: scales).reshaped([count * rows, columns])
            }
            if let gateUp = try mxfp4("gate_up_proj", rows: 2 * width, columns: hidden) {
                for expert in 0..<count {
                    let names = checkpointKeys.expert(ExpertKey(layer: layer, expert: expert))
                    weights[names.gate] = rows(of: gateUp, from: expert * 2 * width, count: width, step: 2)
                    weights[names.up] = rows(of: gateUp, from: expert * 2 * width + 1, count: width, step: 2)
                }
            }
            if let down = try mxfp4("down_proj", rows: hidden, columns: width) {
                for expert in 0..<count {
                    weights[checkpointKeys.expert(ExpertKey(layer: layer, expert: expert)).down] = rows(
                        of: down, from: expert * hidden, count: hidden, step: 1)
                }
            }
            if let gateUp = try take("gate_up_proj", [count, hidden, 2 * width]) {
                // [E, H, I, 2] → [E, 2, I, H]: per expert the gate rows, then the up rows.
                weights[experts + "gate_up_proj"] = gateUp.reshaped([count, hidden, width, 2]).transposed(1, 3).contiguous()
                    .reshaped([count, 2 * width, hidden])
            }
            if let down = try take("down_proj", [count, width, hidden]) {
                weights[experts + "down_proj"] = down.transposed(1, 2).contiguous()
            }
            if let bias = try take("gate_up_proj_bias", [count, 2 * width]) {
                let split = bias.reshaped([count, width, 2]).transposed(1, 2).contiguous()  // [E, 2, I]
                let names = checkpointKeys.expertBiases(layer: layer)
                weights[names.gate] = split.slice(0..<1, axis: 1).contiguous().reshaped([count, width])
                weights[names.up] = split.slice(1..<2, axis: 1).contiguous().reshaped([count, width])
            }
        }
        return try HuggingFaceWeights.sanitize(weights, configuration: c, keys: checkpointKeys, location: location)
    }

    /// Rows `first`, `first + step`, … (`count` of them) of the block-format matrix `matrix`, copied.
    private static func rows(of matrix: Tensor, from first: Int, count: Int, step: Int) -> Tensor {
        let columns = matrix.shape[1], rowBytes = matrix.dtype.byteCount(columns)
        let out = Tensor(zeros: [count, columns], dtype: matrix.dtype)
        for row in 0..<count {
            (out.rawPointer + row * rowBytes).copyMemory(from: matrix.rawPointer + (first + row * step) * rowBytes, byteCount: rowBytes)
        }
        return out
    }
}
