import ChronosTensor

/// What a forward pass computes beyond the logits, and how it treats routed experts beyond
/// what the `ExpertProvider` says.
public struct ForwardOptions: Sendable, Equatable {
    /// Whether the output carries each MoE layer's routing (`ForwardOutput.layers`).
    public var recordsRouting: Bool
    /// Whether the output carries the lookahead head's predictions (models with a head).
    public var predictsLookahead: Bool
    /// Decoder layers whose output residual stream `[T, hidden]` the output carries.
    public var hiddenLayers: Set<Int>
    /// Availability a ∈ [0, 1] of routed experts by (layer, expert); absent ones are 1. An
    /// expert the provider does not have is 0 whatever this says. Where a < 1 a layer with
    /// shared experts moves the rest of the weight to them (soft fallback; see `MoEBlock`).
    public var availability: [ExpertKey: Float]
    /// For training the fallback: each selected (token, expert) slot is made unavailable with
    /// this probability, drawn from `SplitMix64(seed: fallbackMaskSeed)` MoE layer by layer,
    /// token by token, slot by slot.
    public var fallbackMaskProbability: Float
    /// Seed of the generator behind `fallbackMaskProbability`; change it every step.
    public var fallbackMaskSeed: UInt64
    /// Whether the lookahead head reads a detached copy of its input, so that a loss on its
    /// predictions trains only the head (as for a frozen model).
    public var detachesLookaheadInput: Bool

    /// Options with every field given or defaulted: logits only, everything available.
    public init(
        recordsRouting: Bool = false, predictsLookahead: Bool = false, hiddenLayers: Set<Int> = [],
        availability: [ExpertKey: Float] = [:], fallbackMaskProbability: Float = 0, fallbackMaskSeed: UInt64 = 0,
        detachesLookaheadInput: Bool = false
    ) {
        self.recordsRouting = recordsRouting
        self.predictsLookahead = predictsLookahead
        self.hiddenLayers = hiddenLayers
        self.availability = availability
        self.fallbackMaskProbability = fallbackMaskProbability
        self.fallbackMaskSeed = fallbackMaskSeed
        self.detachesLookaheadInput = detachesLookaheadInput
    }

    /// Routing and lookahead recorded, everything available: what training losses and
    /// evaluations read.
    public static var recordingAll: ForwardOptions { ForwardOptions(recordsRouting: true, predictsLookahead: true) }
}

/// What one MoE layer did with a batch of tokens. Tensors are recorded for gradients when the
/// forward pass ran under `Autograd.recording`.
public struct LayerRouting: Sendable {
    /// Decoder layer index.
    public let layer: Int
    /// The MoE block's input `[T, hidden]` (the post-attention RMSNorm of the residual stream):
    /// run a frozen reference router on it to compare routings on the same inputs.
    public let input: Tensor
    /// Router logits `[T, E]`.
    public let routerLogits: Tensor
    /// Router distribution softmax(logits) `[T, E]`.
    public let routerProbabilities: Tensor
    /// The top-k experts of each token, in descending probability: T rows of k.
    public let selectedExperts: [[Int]]
    /// The combine weights w of the selected experts `[T, k]`, before any fallback; the
    /// gradient reaches the router through them.
    public let combineWeights: Tensor
    /// The availability a each selected slot had: T rows of k.
    public let availability: [[Float]]
}

/// The lookahead router head's predictions for a batch of tokens (see `LookaheadRouter`).
public struct LookaheadPrediction: Sendable {
    /// Logits `[T, K+1, E]`.
    public let logits: Tensor
    /// log Q^{(k)}_t: log-softmax over experts per offset `[T, K+1, E]`.
    public let logProbabilities: Tensor
    /// Q^{(k)}_t: softmax over experts per offset `[T, K+1, E]`; offset 0 predicts token t's
    /// experts, offset k those of token t+k.
    public let probabilities: Tensor

    /// The predictions for logits `[T, K+1, E]`.
    init(logits: Tensor) {
        self.logits = logits
        logProbabilities = logits.logSoftmax()
        probabilities = logits.softmax()
    }

    /// Q^{(offset)} `[T, E]`.
    public func probabilities(offset: Int) -> Tensor {
        Self.offsetSlice(probabilities, offset)
    }

    /// log Q^{(offset)} `[T, E]`.
    public func logProbabilities(offset: Int) -> Tensor {
        Self.offsetSlice(logProbabilities, offset)
    }

    /// The `count` most probable experts predicted for token t + `offset`, for each t, best first.
    public func predictedExperts(offset: Int, count: Int) -> [[Int]] {
        let probabilities = probabilities(offset: offset)
        let experts = probabilities.shape[1], values = probabilities.floats
        return values.withUnsafeBufferPointer { p in
            (0..<probabilities.shape[0]).map { t in
                Selection.topK(p.baseAddress! + t * experts, count: experts, k: count).map(\.index)
            }
        }
    }

    /// Every offset's distribution for token `row`, `[K+1, E]`.
    public func row(_ row: Int) -> Tensor {
        let offsets = probabilities.shape[1], experts = probabilities.shape[2]
        return probabilities.slice(row..<(row + 1)).contiguous().reshaped([offsets, experts])
    }

    private static func offsetSlice(_ tensor: Tensor, _ offset: Int) -> Tensor {
        let tokens = tensor.shape[0], experts = tensor.shape[2]
        return tensor.slice(offset..<(offset + 1), axis: 1).contiguous().reshaped([tokens, experts])
    }
}

/// Everything a forward pass computed that its options asked for.
public struct ForwardOutput: Sendable {
    /// Position of the first token.
    public let positionOffset: Int
    /// Next-token logits `[T, vocab]`.
    public let logits: Tensor
    /// Routing of each MoE layer, in layer order, when `recordsRouting`; else empty.
    public let layers: [LayerRouting]
    /// The residual stream `[T, hidden]` after each decoder layer of `hiddenLayers`.
    public let hidden: [Int: Tensor]
    /// The lookahead head's predictions, when asked for and the model has a head.
    public let lookahead: LookaheadPrediction?

    /// P_t, the lookahead router's target: the mean over MoE layers of the router
    /// distributions `[T, E]` (recorded; stop its gradient in a lookahead loss). Needs
    /// `recordsRouting`.
    public var meanRouterProbabilities: Tensor {
        let sum = layers.dropFirst().reduce(layers[0].routerProbabilities) { $0 + $1.routerProbabilities }
        return sum.scaled(by: 1 / Float(layers.count))
    }
}
