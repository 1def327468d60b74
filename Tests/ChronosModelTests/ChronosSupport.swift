import ChronosModel
import ChronosTensor
import Foundation
import XCTest

/// Tiny Chronos models, small enough that every check runs in milliseconds in a debug build.
enum TinyChronos {
    /// A configuration with the given layer kinds and window, and everything else tiny.
    static func configuration(
        _ kinds: [ChronosAttentionKind] = [.mla, .sliding], window: Int = 3, experts: Int = 4,
        topK: Int = 2, sharedExperts: Int = 1, tied: Bool = true
    ) -> ChronosConfiguration {
        ChronosConfiguration(
            vocabSize: 13, hiddenSize: 8, hiddenLayers: kinds.count, attentionHeads: 2, keyValueHeads: 1, headDim: 4,
            kvLatentDim: 6, ropeDim: 2, slidingWindow: window, layerTypes: kinds, experts: experts, expertsPerToken: topK,
            sharedExperts: sharedExperts, moeIntermediateSize: 6, sharedExpertIntermediateSize: 5, normTopKProb: true,
            lookaheadSteps: 2, rmsNormEps: 1e-6, ropeTheta: 10_000, tieWordEmbeddings: tied, maxPositionEmbeddings: 64)
    }

    /// `initialize`d weights with projections scaled by `scale` (so activations are O(1) and
    /// differences show) and norm weights spread around 1.
    static func weights(_ configuration: ChronosConfiguration, seed: UInt64 = 7, scale: Float = 15) throws -> [String: Tensor] {
        var generator = SplitMix64(seed: seed ^ 0x5eed)
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: seed)
        for name in weights.keys.sorted() {
            let tensor = weights[name]!, values = tensor.floats
            if name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") {
                weights[name] = Tensor(shape: tensor.shape, values: values.map { $0 + Float(generator.nextUnit() - 0.5) * 0.6 })
            } else if name.hasSuffix(".bias") {
                weights[name] = Tensor(shape: tensor.shape, values: values.map { _ in Float(generator.nextUnit() - 0.5) * 0.4 })
            } else {
                weights[name] = Tensor(shape: tensor.shape, values: values.map { $0 * scale })
            }
        }
        return weights
    }

    /// A model of `configuration` over `weights(configuration, seed:)`.
    static func model(
        _ configuration: ChronosConfiguration = configuration(), seed: UInt64 = 7,
        experts: (any ExpertProvider)? = nil
    ) throws -> TransformerLanguageModel {
        try TransformerLanguageModel(configuration: configuration, weights: try weights(configuration, seed: seed), experts: experts)
    }

    /// A fixed token sequence of `count` ids.
    static func ids(_ count: Int, vocab: Int = 13) -> [Int] {
        (0..<count).map { ($0 * 7 + 3) % vocab }
    }
}

/// Plain reference arithmetic in Double, written from the equations, for direct checks.
enum Reference {
    /// `W · x` for a row-major `[rows, cols]` weight.
    static func matvec(_ w: [Float], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
        (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * x[$1] } }
    }

    /// RMSNorm of `x` with weight `w`.
    static func rmsNorm(_ x: [Double], _ w: [Float], eps: Double) -> [Double] {
        let r = 1 / ((x.reduce(0) { $0 + $1 * $1 } / Double(x.count)) + eps).squareRoot()
        return x.indices.map { x[$0] * r * Double(w[$0]) }
    }

    /// Half-split RoPE of a head vector `x` (all of it) at absolute `position`.
    static func rope(_ x: [Double], position: Int, base: Double) -> [Double] {
        let d = x.count, half = d / 2
        var out = x
        for i in 0..<half {
            let angle = Double(position) * pow(base, -2 * Double(i) / Double(d))
            out[i] = x[i] * cos(angle) - x[i + half] * sin(angle)
            out[i + half] = x[i + half] * cos(angle) + x[i] * sin(angle)
        }
        return out
    }

    static func softmax(_ x: [Double]) -> [Double] {
        let m = x.max()!
        let e = x.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// A SwiGLU expert: down · (SiLU(gate · x) ⊙ (up · x)).
    static func expert(_ weights: ExpertWeights, _ x: [Double]) -> [Double] {
        let width = weights.gate.shape[0], hidden = weights.gate.shape[1]
        let g = matvec(weights.gate.floats, rows: width, cols: hidden, x)
        let u = matvec(weights.up.floats, rows: width, cols: hidden, x)
        let a = zip(g, u).map { $0 / (1 + Foundation.exp(-$0)) * $1 }
        return matvec(weights.down.floats, rows: hidden, cols: width, a)
    }

    /// `[rows, cols]` rows of a tensor as Double arrays.
    static func rows(_ tensor: Tensor) -> [[Double]] {
        let cols = tensor.shape.last!, values = tensor.floats
        return (0..<(values.count / cols)).map { r in values[(r * cols)..<((r + 1) * cols)].map(Double.init) }
    }
}

/// Random values in [lo, hi) from a seeded generator.
func randomValues(_ count: Int, seed: UInt64, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in lo + (hi - lo) * Float(generator.nextUnit()) }
}

/// Largest |a − b| between a Double reference and Float values.
func maxAbsoluteDifference(_ a: [Double], _ b: [Float]) -> Double {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - Double($1.1))) }
}
