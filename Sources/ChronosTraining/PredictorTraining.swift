import ChronosModel
import ChronosRouting
import ChronosTensor
import Foundation

/// Trains the predictors learned from activation traces (the intent classifier and the trained
/// lookahead head): examples pair an input hidden state with G target distributions over
/// experts, and the loss is the soft-target cross-entropy averaged over groups,
/// `mean_{n,g} [−Σ_e y_{n,g,e} · log softmax(logits_{n,g})_e]`, minimised with AdamW.
public enum PredictorTraining {
    /// How a predictor is trained.
    public struct Settings: Sendable {
        /// Optimiser steps.
        public var steps = 1500
        /// Examples per step.
        public var batchSize = 256
        /// Peak learning rate (linear warmup, cosine decay to 10 %).
        public var learningRate: Float = 3e-3
        /// Warmup steps.
        public var warmupSteps = 50
        /// AdamW weight decay of the weight matrices.
        public var weightDecay: Float = 0.01
        /// Seed of the batch order.
        public var seed: UInt64 = 0

        /// The defaults.
        public init() {}
    }

    /// Training examples: inputs `[count, inputWidth]` and targets `[count, groups, experts]`,
    /// each group a distribution.
    public struct Examples: Sendable {
        /// Inputs, row-major.
        public var inputs: [Float] = []
        /// Targets, row-major.
        public var targets: [Float] = []
        /// Examples.
        public var count = 0
        /// Floats per input.
        public let inputWidth: Int
        /// Distributions per example.
        public let groups: Int
        /// Experts per distribution.
        public let experts: Int

        mutating func append(input: [Float], target: [Float]) {
            inputs += input
            targets += target
            count += 1
        }

        /// Inputs and targets of the examples at `indices`, as tensors `[n, H]` and `[n·G, E]`.
        func batch(_ indices: [Int]) -> (inputs: Tensor, targets: Tensor) {
            var x = [Float](), y = [Float]()
            x.reserveCapacity(indices.count * inputWidth)
            y.reserveCapacity(indices.count * groups * experts)
            let targetWidth = groups * experts
            for i in indices {
                x += inputs[(i * inputWidth)..<((i + 1) * inputWidth)]
                y += targets[(i * targetWidth)..<((i + 1) * targetWidth)]
            }
            return (Tensor(shape: [indices.count, inputWidth], values: x), Tensor(shape: [indices.count * groups, experts], values: y))
        }
    }

    /// Lookahead examples: for every token t with t + `steps` in its sequence, the block-0 hidden
    /// state of t against, for k = 1…steps and each MoE layer, the uniform distribution over the
    /// experts token t + k used.
    public static func lookaheadExamples(_ trace: ActivationTrace, steps: Int) -> Examples {
        let layers = trace.layers.count, experts = trace.layers.map(\.experts).max() ?? 0
        var examples = Examples(inputWidth: trace.hiddenSize, groups: steps * layers, experts: experts)
        for sequence in trace.sequences() where sequence.count > steps {
            for t in 0..<(sequence.count - steps) {
                var target = [Float](repeating: 0, count: steps * layers * experts)
                for k in 1...steps {
                    for (slot, chosen) in sequence[t + k].experts.enumerated() {
                        let base = ((k - 1) * layers + slot) * experts
                        for expert in chosen { target[base + expert] += 1 / Float(chosen.count) }
                    }
                }
                examples.append(input: sequence[t].hidden, target: target)
            }
        }
        return examples
    }

    /// Intent examples: for every sequence and prompt length P (when P + `horizon` tokens fit),
    /// the mean block-0 hidden state of tokens 0..<P against, per MoE layer, how the routing of
    /// tokens P..<P + horizon spreads over the experts.
    public static func intentExamples(_ trace: ActivationTrace, promptLengths: [Int], horizon: Int) -> Examples {
        let layers = trace.layers.count, experts = trace.layers.map(\.experts).max() ?? 0
        var examples = Examples(inputWidth: trace.hiddenSize, groups: layers, experts: experts)
        for sequence in trace.sequences() {
            for length in promptLengths where length > 0 && length + horizon <= sequence.count {
                var target = [Float](repeating: 0, count: layers * experts)
                for token in sequence[length..<(length + horizon)] {
                    for (slot, chosen) in token.experts.enumerated() {
                        for expert in chosen { target[slot * experts + expert] += 1 / Float(horizon * chosen.count) }
                    }
                }
                examples.append(input: IntentClassifier.features(Array(sequence[0..<length])), target: target)
            }
        }
        return examples
    }

    /// The loss of logits `[n, G, E]` against targets `[n·G, E]`.
    static func loss(logits: Tensor, targets: Tensor) -> Tensor {
        let rows = targets.shape[0]
        return (logits.reshaped([rows, targets.shape[1]]).logSoftmax() * targets).sum().scaled(by: -1 / Float(rows))
    }

    /// The mean loss of `network` on `examples` (in batches, no gradients).
    public static func loss(of network: ExpertDistributionNetwork, on examples: Examples, batchSize: Int = 1024) -> Double {
        var total = 0.0
        for start in stride(from: 0, to: examples.count, by: batchSize) {
            let indices = Array(start..<min(examples.count, start + batchSize))
            let (x, y) = examples.batch(indices)
            total += Double(loss(logits: network.logits(x), targets: y).floats[0]) * Double(indices.count)
        }
        return examples.count > 0 ? total / Double(examples.count) : 0
    }

    /// Trains a copy of `network` on `examples`; `progress` gets each step and its loss.
    public static func train(_ network: ExpertDistributionNetwork, on examples: Examples, settings: Settings,
                             progress: (_ step: Int, _ loss: Float) -> Void = { _, _ in }) -> ExpertDistributionNetwork {
        precondition(examples.count > 0, "no training examples")
        var trained = network
        trained.parameters = network.parameters.map { ($0.name, Tensor(shape: $0.tensor.shape, values: $0.tensor.floats).requiringGradient()) }
        var adam = AdamW.Settings()
        adam.weightDecay = settings.weightDecay
        let optimizer = AdamW(settings: adam)
        let schedule = LearningRateSchedule(peak: settings.learningRate, warmupSteps: settings.warmupSteps, totalSteps: settings.steps)
        var random = SplitMix64(seed: settings.seed)
        let batch = min(settings.batchSize, examples.count)
        for step in 1...max(1, settings.steps) {
            let indices = (0..<batch).map { _ in Int(random.next() % UInt64(examples.count)) }
            let (x, y) = examples.batch(indices)
            let loss = Autograd.recording { Self.loss(logits: trained.logits(x), targets: y) }
            Autograd.backward(loss)
            GradientClipping.clip(trained.parameters, maxNorm: 1)
            optimizer.update(trained.parameters, learningRate: schedule.rate(at: step - 1))
            for (_, p) in trained.parameters { p.zeroGradient() }
            progress(step, loss.floats[0])
        }
        trained.parameters = trained.parameters.map { ($0.name, $0.tensor.detached()) }
        return trained
    }
}
