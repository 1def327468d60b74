import ChronosTensor
import Foundation

/// What a parameter tensor does in the model, as a quantisation recipe tells tensors apart.
public enum ParameterRole: Sendable, Hashable {
    /// The token embedding table.
    case embedding
    /// The LM head (the embedding table when tied).
    case output
    /// A query, key, value or output projection of layer `layer`'s attention (latent attention's
    /// projections count as queries, keys and values by what they produce).
    case attentionQuery(layer: Int)
    case attentionKey(layer: Int)
    case attentionValue(layer: Int)
    case attentionOutput(layer: Int)
    /// A gate, up or down projection of layer `layer`'s feed-forward: dense, shared or routed experts.
    case feedForwardGate(layer: Int)
    case feedForwardUp(layer: Int)
    case feedForwardDown(layer: Int)
    /// A router or shared-expert gate: it picks experts, so it stays in float.
    case router
    /// A norm weight or a bias.
    case vector
    /// The lookahead head's layers.
    case lookahead
}

/// One parameter tensor of a model: its checkpoint name, shape, starting values, role, and the
/// routed expert it belongs to (if any).
struct ParameterSpec {
    enum Initial {
        case ones
        case zeros
        /// N(0, std²).
        case normal(std: Float)
    }

    let name: String
    let shape: [Int]
    let initial: Initial
    let role: ParameterRole
    let expert: ExpertKey?

    /// Starting values drawn from `generator`, a normal one's standard deviation times `scale`.
    func randomValues(_ generator: inout SplitMix64, scale: Float = 1) -> [Float] {
        let count = shape.reduce(1, *)
        switch initial {
        case .ones: return [Float](repeating: 1, count: count)
        case .zeros: return [Float](repeating: 0, count: count)
        case .normal(let std): return (0..<count).map { _ in std * scale * Self.standardNormal(&generator) }
        }
    }

    /// A draw from N(0, 1) (Box–Muller).
    private static func standardNormal(_ generator: inout SplitMix64) -> Float {
        let u = max(generator.nextUnit(), .leastNormalMagnitude), v = generator.nextUnit()
        return Float((-2 * Foundation.log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

extension TransformerConfiguration {
    /// Every parameter of a model of this configuration named by `keys`, in checkpoint order:
    /// the embedding; per layer its input norm, attention, post-attention norm and feed-forward
    /// (router, shared experts, routed experts); the final norm, the LM head when untied, and the
    /// lookahead head.
    ///
    /// Projections start at N(0, 0.02²); those writing into the residual stream (`o_proj` and
    /// every `down_proj`) at N(0, (0.02/√(2L))²) so the stream's variance does not grow with
    /// depth; norm weights at 1 and biases at 0.
    func parameterLayout(keys: CheckpointKeys) -> [ParameterSpec] {
        let std: Float = 0.02, residualStd = std / Float(2 * layerCount).squareRoot()
        let hidden = hiddenSize, queryWidth = attentionHeads * headDim, keyValueWidth = keyValueHeads * headDim
        var specs: [ParameterSpec] = []
        func add(_ name: String, _ shape: [Int], _ initial: Initial, _ role: ParameterRole = .vector, expert: ExpertKey? = nil) {
            specs.append(ParameterSpec(name: name, shape: shape, initial: initial, role: role, expert: expert))
        }
        func linear(_ prefix: String, out: Int, in inFeatures: Int, bias: Bool, role: ParameterRole, std: Float = std) {
            add("\(prefix).weight", [out, inFeatures], .normal(std: std), role)
            if bias { add("\(prefix).bias", [out], .zeros) }
        }
        func swiGLU(_ names: ExpertWeightNames, layer: Int, width: Int, expert: ExpertKey?) {
            add(names.gate, [width, hidden], .normal(std: std), .feedForwardGate(layer: layer), expert: expert)
            add(names.up, [width, hidden], .normal(std: std), .feedForwardUp(layer: layer), expert: expert)
            add(names.down, [hidden, width], .normal(std: residualStd), .feedForwardDown(layer: layer), expert: expert)
        }
        typealias Initial = ParameterSpec.Initial

        add(keys.embedding, [vocabSize, hidden], .normal(std: std), tieWordEmbeddings ? .output : .embedding)
        for layer in 0..<layerCount {
            let attentionName = { (name: String) in keys.layer(layer, "self_attn.\(name)") }
            add(keys.layer(layer, "input_layernorm.weight"), [hidden], .ones)
            switch attention[layer] {
            case .grouped:
                linear(attentionName("q_proj"), out: queryWidth, in: hidden, bias: queryKeyValueBias, role: .attentionQuery(layer: layer))
                linear(attentionName("k_proj"), out: keyValueWidth, in: hidden, bias: queryKeyValueBias, role: .attentionKey(layer: layer))
                linear(
                    attentionName("v_proj"), out: keyValueWidth, in: hidden, bias: queryKeyValueBias, role: .attentionValue(layer: layer))
                if attentionSinks { add(attentionName("sinks"), [attentionHeads], .zeros) }
                switch queryKeyNorm {
                case .none: break
                case .perHead:
                    add(attentionName("q_norm.weight"), [headDim], .ones)
                    add(attentionName("k_norm.weight"), [headDim], .ones)
                case .acrossHeads:
                    add(attentionName("q_norm.weight"), [queryWidth], .ones)
                    add(attentionName("k_norm.weight"), [keyValueWidth], .ones)
                }
            case .latent(let latent):
                let query = ParameterRole.attentionQuery(layer: layer), key = ParameterRole.attentionKey(layer: layer)
                let l = latent.latentDim, r = latent.ropeDim, heads = attentionHeads
                switch latent.layout {
                case .chronos:
                    // Per head the RoPE rows come first in q_proj.
                    add(attentionName("q_proj.weight"), [heads * (r + headDim), hidden], .normal(std: std), query)
                    add(attentionName("kv_down_proj.weight"), [l, hidden], .normal(std: std), key)
                    add(attentionName("kv_norm.weight"), [l], .ones)
                    add(attentionName("k_rope_proj.weight"), [r, hidden], .normal(std: std), key)
                    add(attentionName("k_up_proj.weight"), [heads * headDim, l], .normal(std: std), key)
                    add(attentionName("v_up_proj.weight"), [heads * latent.valueDim, l], .normal(std: std), .attentionValue(layer: layer))
                case .deepSeek:
                    if let queryLatent = latent.queryLatentDim {
                        add(attentionName("q_a_proj.weight"), [queryLatent, hidden], .normal(std: std), query)
                        add(attentionName("q_a_layernorm.weight"), [queryLatent], .ones)
                        add(attentionName("q_b_proj.weight"), [heads * (headDim + r), queryLatent], .normal(std: std), query)
                    } else {
                        add(attentionName("q_proj.weight"), [heads * (headDim + r), hidden], .normal(std: std), query)
                    }
                    add(attentionName("kv_a_proj_with_mqa.weight"), [l + r, hidden], .normal(std: std), key)
                    add(attentionName("kv_a_layernorm.weight"), [l], .ones)
                    add(attentionName("kv_b_proj.weight"), [heads * (headDim + latent.valueDim), l], .normal(std: std), key)
                }
            }
            let attendedWidth: Int =
                switch attention[layer] {
                case .grouped: queryWidth
                case .latent(let latent): attentionHeads * latent.valueDim
                }
            linear(
                attentionName("o_proj"), out: hidden, in: attendedWidth, bias: outputBias, role: .attentionOutput(layer: layer),
                std: residualStd)
            add(keys.layer(layer, "post_attention_layernorm.weight"), [hidden], .ones)
            switch feedForward[layer] {
            case .dense(let width):
                let mlp = { (name: String) in keys.layer(layer, "mlp.\(name)") }
                linear(mlp("gate_proj"), out: width, in: hidden, bias: mlpBias, role: .feedForwardGate(layer: layer))
                linear(mlp("up_proj"), out: width, in: hidden, bias: mlpBias, role: .feedForwardUp(layer: layer))
                linear(
                    mlp("down_proj"), out: hidden, in: width, bias: mlpBias, role: .feedForwardDown(layer: layer), std: residualStd)
            case .mixture(let mixture):
                add(keys.router(layer: layer), [mixture.expertCount, hidden], .normal(std: std), .router)
                if mixture.routerBias { add(keys.routerLogitBias(layer: layer), [mixture.expertCount], .zeros, .router) }
                if mixture.selectionBias { add(keys.routerBias(layer: layer), [mixture.expertCount], .zeros, .router) }
                if mixture.expertBias {
                    let names = keys.expertBiases(layer: layer), experts = mixture.expertCount, width = mixture.intermediateSize
                    add(names.gate, [experts, width], .zeros)
                    add(names.up, [experts, width], .zeros)
                    add(names.down, [experts, hidden], .zeros)
                }
                if let shared = mixture.shared {
                    for index in 0..<shared.count {
                        swiGLU(keys.sharedExpert(layer: layer, index: index), layer: layer, width: shared.intermediateSize, expert: nil)
                    }
                    if shared.gated { add(keys.sharedExpertGate(layer: layer), [1, hidden], .normal(std: std), .router) }
                }
                for expert in 0..<mixture.expertCount {
                    let key = ExpertKey(layer: layer, expert: expert)
                    swiGLU(keys.expert(key), layer: layer, width: mixture.intermediateSize, expert: key)
                }
            }
        }
        add(keys.finalNorm, [hidden], .ones)
        if !tieWordEmbeddings { add(keys.lmHead, [vocabSize, hidden], .normal(std: std), .output) }
        if let lookahead {
            let width = LookaheadRouter.width(hiddenSize: hidden), outputs = (lookahead.steps + 1) * lookahead.experts
            linear(CheckpointKeys.lookaheadHidden, out: width, in: hidden, bias: true, role: .lookahead)
            linear(CheckpointKeys.lookaheadOutput, out: outputs, in: width, bias: true, role: .lookahead)
        }
        return specs
    }
}
