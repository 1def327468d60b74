import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// A tiny random OLMoE checkpoint written with `SafetensorsWriter` (no transformers fixture
/// exists for this family), checked against a direct transcription of transformers'
/// OLMoE forward pass and for cache consistency.
final class OLMoETests: XCTestCase {
    /// Sizes of the tiny model.
    static let vocab = 48, hidden = 32, layers = 2, heads = 4, kvHeads = 2, headDim = 8, experts = 4, topK = 2, width = 16
    static let eps: Float = 1e-5, theta: Float = 10_000

    static var config: [String: Any] {
        [
            "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "vocab_size": vocab, "hidden_size": hidden,
            "intermediate_size": width, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kvHeads, "num_experts": experts, "num_experts_per_tok": topK, "norm_topk_prob": false,
            "rms_norm_eps": Double(eps), "rope_theta": Double(theta), "tie_word_embeddings": true, "clip_qkv": NSNull(),
            "eos_token_id": 47, "pad_token_id": 1, "hidden_act": "silu", "max_position_embeddings": 128
        ]
    }

    /// Every tensor of the checkpoint: N(0, ~0.3²)-like values, norms near 1, experts in bf16.
    static func tensors(seed: UInt64 = 7, perHeadQueryNorm: Bool = false) -> [(name: String, tensor: Tensor)] {
        var state = seed
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        func random(_ shape: [Int], scale: Float = 1, dtype: DType = .f32) -> Tensor {
            Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in uniform() * scale }, dtype: dtype)
        }
        func norm(_ n: Int) -> Tensor { Tensor(shape: [n], values: (0..<n).map { _ in 1 + 0.2 * uniform() }) }
        var out: [(String, Tensor)] = [("model.embed_tokens.weight", random([vocab, hidden], scale: 2))]
        for l in 0..<layers {
            let p = "model.layers.\(l)"
            out += [
                ("\(p).self_attn.q_proj.weight", random([heads * headDim, hidden])),
                ("\(p).self_attn.k_proj.weight", random([kvHeads * headDim, hidden])),
                ("\(p).self_attn.v_proj.weight", random([kvHeads * headDim, hidden])),
                ("\(p).self_attn.o_proj.weight", random([hidden, heads * headDim])),
                ("\(p).self_attn.q_norm.weight", norm(perHeadQueryNorm ? headDim : heads * headDim)),
                ("\(p).self_attn.k_norm.weight", norm(kvHeads * headDim)),
                ("\(p).input_layernorm.weight", norm(hidden)),
                ("\(p).post_attention_layernorm.weight", norm(hidden)),
                ("\(p).mlp.gate.weight", random([experts, hidden], scale: 0.5))
            ]
            for e in 0..<experts {
                out += [
                    ("\(p).mlp.experts.\(e).gate_proj.weight", random([width, hidden], dtype: .bf16)),
                    ("\(p).mlp.experts.\(e).up_proj.weight", random([width, hidden], dtype: .bf16)),
                    ("\(p).mlp.experts.\(e).down_proj.weight", random([hidden, width], dtype: .bf16))
                ]
            }
        }
        out.append(("model.norm.weight", norm(hidden)))
        return out
    }

    static func writeModel(config: [String: Any] = config, tensors: [(name: String, tensor: Tensor)] = tensors()) throws -> URL {
        let directory = try Fixtures.temporaryDirectory()
        try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
        try SafetensorsWriter.write(tensors, to: directory.appendingPathComponent("model.safetensors"))
        return directory
    }

    let ids = [5, 17, 3, 44, 29, 8, 31]

    func testMatchesADirectTranscriptionOfTheTransformersModel() throws {
        let model = try ModelRegistry.load(directory: try Self.writeModel())
        let logits = try model.forward(ids, cache: model.makeCache())
        XCTAssertEqual(logits.shape, [ids.count, Self.vocab])
        let expected = ReferenceOLMoE(Self.tensors()).logits(ids)
        let difference = maxAbsoluteDifference(logits.floats, expected.flatMap { $0 })
        XCTAssertLessThanOrEqual(difference, 1e-4, "largest logit difference \(difference)")
    }

    func testCacheGivesTheSameLogitsAsTheFullSequence() throws {
        let model = try ModelRegistry.load(directory: try Self.writeModel())
        let full = try model.forward(ids, cache: model.makeCache())
        let cache = model.makeCache()
        for (position, id) in ids.enumerated() {
            let step = try model.forward([id], cache: cache)
            XCTAssertEqual(step.shape, [1, Self.vocab])
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(step.floats, full.row(position)), 1e-4, "position \(position)")
        }
        let chunked = model.makeCache()
        let first = try model.forward(Array(ids[..<3]), cache: chunked), rest = try model.forward(Array(ids[3...]), cache: chunked)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(first.floats + rest.floats, full.floats), 1e-4)
        XCTAssertEqual(chunked.offset, ids.count)
    }

    func testSummaryAndParameterCounts() throws {
        let model = try ModelRegistry.load(directory: try Self.writeModel())
        let summary = model.summary
        XCTAssertEqual(summary.modelType, "olmoe")
        XCTAssertEqual(summary.architecture, "OlmoeForCausalLM")
        XCTAssertEqual(summary.expertsPerLayer, [4, 4])
        XCTAssertEqual(summary.expertsPerToken, 2)
        XCTAssertEqual(summary.headDim, 8)
        XCTAssertEqual(summary.eosTokenIds, [47])
        XCTAssertNil(summary.bosTokenId)
        let h = Self.hidden, q = Self.heads * Self.headDim, kv = Self.kvHeads * Self.headDim
        let perLayer = 2 * q * h + 2 * kv * h + q + kv + 2 * h + Self.experts * h
        let dense = Self.vocab * h + h + Self.layers * perLayer  // tied head counts once
        let perExpert = 3 * h * Self.width
        XCTAssertEqual(
            model.parameterCounts,
            ParameterCounts(
                dense: dense, expert: Self.layers * Self.experts * perExpert,
                activePerToken: dense + Self.layers * Self.topK * perExpert,
                denseBytes: 4 * dense, expertBytes: 2 * Self.layers * Self.experts * perExpert))
    }

    func testQueryNormSpansAllHeads() throws {
        // A per-head q_norm (Qwen3's layout) is not an OLMoE checkpoint.
        let directory = try Self.writeModel(tensors: Self.tensors(perHeadQueryNorm: true))
        XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
            XCTAssertEqual(
                error as? ModelError,
                .shapeMismatch(
                    tensor: "model.layers.0.self_attn.q_norm.weight",
                    expected: [32], found: [8]))
        }
    }

    func testClippedQKVIsRefused() throws {
        var config = Self.config
        config["clip_qkv"] = 8.0
        let directory = try Self.writeModel(config: config)
        XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
            guard case .unsupportedConfig(_, let field, _)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "clip_qkv")
        }
    }

    func testFallbackWithoutNormalisationKeepsTheSelectedMass() throws {
        let directory = try Self.writeModel()
        let model = try ModelRegistry.load(directory: directory)
        let cache = model.makeCache(), log = ForwardLog()
        cache.observer = log
        let reference = try model.forward([ids[0]], cache: cache).floats
        let decision = log.decisions.first { $0.layer == 0 }!
        XCTAssertLessThan(decision.weights.reduce(0, +), 0.999, "norm_topk_prob false keeps raw probabilities")
        let first = ExpertKey(layer: 0, expert: decision.experts[0]), second = ExpertKey(layer: 0, expert: decision.experts[1])

        // Missing `second`: (w₁ + w₂)·E₁, which is what serving E₁'s weights in E₂'s place gives.
        let fallback = try ModelRegistry.load(directory: directory, experts: EditedExperts(model.experts, missing: [second]))
        let equivalent = try ModelRegistry.load(
            directory: directory,
            experts: EditedExperts(
                model.experts, substitutes: [second: model.experts.weights(for: first)!]))
        let a = try fallback.forward([ids[0]], cache: fallback.makeCache()).floats
        let b = try equivalent.forward([ids[0]], cache: equivalent.makeCache()).floats
        XCTAssertGreaterThan(maxAbsoluteDifference(a, reference), 1e-3)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(a, b), 1e-5)
    }
}

/// OLMoE's forward pass written out in plain arrays, line by line after transformers'
/// `OlmoeForCausalLM` (eager attention): pre-norm layers, q_norm over the whole q projection
/// and k_norm over the whole k projection, rotate-half RoPE, softmax → top-k routing without
/// renormalisation, tied LM head. Computed in Double.
struct ReferenceOLMoE {
    let weights: [String: (shape: [Int], values: [Double])]
    typealias C = OLMoETests

    /// Names of the bf16 weights, whose inputs the kernels round to bf16 where the instruction
    /// set multiplies in bf16 (`InstructionSet.roundsActivationsToBF16`).
    let bf16: Set<String>

    init(_ tensors: [(name: String, tensor: Tensor)]) {
        weights = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, ($0.tensor.shape, $0.tensor.floats.map(Double.init))) })
        bf16 = InstructionSet.current.roundsActivationsToBF16 ? Set(tensors.filter { $0.tensor.dtype == .bf16 }.map(\.name)) : []
    }

    func linear(_ name: String, _ x: [Double]) -> [Double] {
        let (shape, w) = weights[name]!
        let x = bf16.contains(name) ? x.map { Double(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: Float($0)))) } : x
        return (0..<shape[0]).map { r in (0..<shape[1]).reduce(0) { $0 + w[r * shape[1] + $1] * x[$1] } }
    }

    func rmsNorm(_ name: String, _ x: [Double]) -> [Double] {
        let w = weights[name]!.values
        let scale = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + Double(C.eps)).squareRoot()
        return x.indices.map { x[$0] * scale * w[$0] }
    }

    func rope(_ x: [Double], heads: Int, position: Int) -> [Double] {
        var out = x
        let d = C.headDim, half = d / 2
        for h in 0..<heads {
            for i in 0..<half {
                let angle = Double(position) * pow(Double(C.theta), -Double(2 * i) / Double(d))
                let a = x[h * d + i], b = x[h * d + i + half]
                out[h * d + i] = a * cos(angle) - b * sin(angle)
                out[h * d + i + half] = b * cos(angle) + a * sin(angle)
            }
        }
        return out
    }

    func softmax(_ x: [Double]) -> [Double] {
        let m = x.max()!, e = x.map { exp($0 - m) }, s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func logits(_ ids: [Int]) -> [[Float]] {
        let embedding = weights["model.embed_tokens.weight"]!.values
        var h = ids.map { Array(embedding[($0 * C.hidden)..<(($0 + 1) * C.hidden)]) }
        for l in 0..<C.layers {
            let p = "model.layers.\(l)"
            let x = h.map { rmsNorm("\(p).input_layernorm.weight", $0) }
            let q = x.enumerated().map { t, x in
                rope(rmsNorm("\(p).self_attn.q_norm.weight", linear("\(p).self_attn.q_proj.weight", x)), heads: C.heads, position: t)
            }
            let k = x.enumerated().map { t, x in
                rope(rmsNorm("\(p).self_attn.k_norm.weight", linear("\(p).self_attn.k_proj.weight", x)), heads: C.kvHeads, position: t)
            }
            let v = x.map { linear("\(p).self_attn.v_proj.weight", $0) }
            let d = C.headDim, group = C.heads / C.kvHeads
            for t in h.indices {
                var attended = [Double](repeating: 0, count: C.heads * d)
                for head in 0..<C.heads {
                    let g = head / group
                    let scores = (0...t).map { s in
                        (0..<d).reduce(0) { $0 + q[t][head * d + $1] * k[s][g * d + $1] } / Double(d).squareRoot()
                    }
                    let probabilities = softmax(scores)
                    for s in 0...t {
                        for i in 0..<d { attended[head * d + i] += probabilities[s] * v[s][g * d + i] }
                    }
                }
                let o = linear("\(p).self_attn.o_proj.weight", attended)
                h[t] = h[t].indices.map { h[t][$0] + o[$0] }
            }
            for t in h.indices {
                let y = rmsNorm("\(p).post_attention_layernorm.weight", h[t])
                let probabilities = softmax(linear("\(p).mlp.gate.weight", y))
                let chosen = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(C.topK)
                var out = [Double](repeating: 0, count: C.hidden)
                for e in chosen {
                    let gate = linear("\(p).mlp.experts.\(e).gate_proj.weight", y)
                    let up = linear("\(p).mlp.experts.\(e).up_proj.weight", y)
                    let inner = gate.indices.map { gate[$0] / (1 + exp(-gate[$0])) * up[$0] }
                    let down = linear("\(p).mlp.experts.\(e).down_proj.weight", inner)
                    for i in out.indices { out[i] += probabilities[e] * down[i] }
                }
                h[t] = h[t].indices.map { h[t][$0] + out[$0] }
            }
        }
        return h.map { row in
            let normed = rmsNorm("model.norm.weight", row)
            return (0..<C.vocab).map { v in
                Float((0..<C.hidden).reduce(0) { $0 + embedding[v * C.hidden + $1] * normed[$1] })
            }
        }
    }
}
