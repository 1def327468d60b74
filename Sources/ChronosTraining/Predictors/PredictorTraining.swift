import ChronosModel
import ChronosRouting
import ChronosTensor
import Foundation

/// Trains the predictors learned from activation traces (the intent classifier and the trained
/// lookahead head): examples pair an input hidden state with G target distributions over
/// experts, and the loss is the soft-target cross-entropy averaged over groups,
/// `mean_{n,g} [−Σ_e y_{n,g,e} · log softmax(logits_{n,g})_e]`, minimised with AdamW. Given
/// validation examples, training keeps the parameters that scored best on them: the intent
/// classifier has a few thousand examples and, run to the end, fits them past what generalises.
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
        /// Steps between evaluations on the validation examples.
        public var validateEvery = 50

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

        /// The examples split into the first ones and the last `share` of them (at least one
        /// when there are two or more). Examples are appended sequence by sequence, so the tail
        /// holds whole sequences, but for the one the cut falls in.
        public func split(holdingOut share: Double) -> (kept: Examples, heldOut: Examples) {
            let heldOutCount = count < 2 ? 0 : min(count - 1, max(1, Int((Double(count) * share).rounded())))
            let cut = count - heldOutCount
            var kept = Examples(inputWidth: inputWidth, groups: groups, experts: experts)
            var heldOut = kept
            let targetWidth = groups * experts
            kept.inputs = Array(inputs[..<(cut * inputWidth)])
            kept.targets = Array(targets[..<(cut * targetWidth)])
            kept.count = cut
            heldOut.inputs = Array(inputs[(cut * inputWidth)...])
            heldOut.targets = Array(targets[(cut * targetWidth)...])
            heldOut.count = heldOutCount
            return (kept, heldOut)
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

    /// Lookahead examples: for every token t with t + `steps` in its sequence, the traced hidden
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
    /// the mean traced hidden state of tokens 0..<P against, per MoE layer, how the routing of
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

    /// A trained network and the step whose parameters it holds.
    public struct Outcome: Sendable {
        /// The network.
        public var network: ExpertDistributionNetwork
        /// The step its parameters are from: the last, or the one that scored best on the
        /// validation examples.
        public var step: Int
        /// Its loss on the validation examples (nil without them).
        public var validationLoss: Double?
    }

    /// Trains a copy of `network` on `examples`, keeping the parameters that score best on
    /// `validation` (checked every `validateEvery` steps and at the end) when there are any;
    /// `progress` gets each step and its loss.
    public static func train(
        _ network: ExpertDistributionNetwork, on examples: Examples, validation: Examples? = nil,
        settings: Settings, progress: (_ step: Int, _ loss: Float) -> Void = { _, _ in }
    ) -> Outcome {
        precondition(examples.count > 0, "no training examples")
        var trained = network
        trained.parameters = network.parameters.map {
            ($0.name, Tensor(shape: $0.tensor.shape, values: $0.tensor.floats).requiringGradient())
        }
        var adam = AdamW.Settings()
        adam.weightDecay = settings.weightDecay
        let optimizer = AdamW(settings: adam)
        let schedule = LearningRateSchedule(peak: settings.learningRate, warmupSteps: settings.warmupSteps, totalSteps: settings.steps)
        var random = SplitMix64(seed: settings.seed)
        let batch = min(settings.batchSize, examples.count)
        let steps = max(1, settings.steps)
        let validation = validation.flatMap { $0.count > 0 ? $0 : nil }
        var best: Outcome? = nil
        for step in 1...steps {
            let indices = (0..<batch).map { _ in Int(random.next() % UInt64(examples.count)) }
            let (x, y) = examples.batch(indices)
            let loss = Autograd.recording { Self.loss(logits: trained.logits(x), targets: y) }
            Autograd.backward(loss)
            GradientClipping.clip(trained.parameters, maxNorm: 1)
            optimizer.update(trained.parameters, learningRate: schedule.rate(at: step - 1))
            for (_, p) in trained.parameters { p.zeroGradient() }
            progress(step, loss.floats[0])
            if let validation, step % max(1, settings.validateEvery) == 0 || step == steps {
                let score = Self.loss(of: trained, on: validation)
                if score < best?.validationLoss ?? .infinity {
                    best = Outcome(network: snapshot(trained), step: step, validationLoss: score)
                }
            }
        }
        return best ?? Outcome(network: snapshot(trained), step: steps, validationLoss: nil)
    }

    /// A copy of `network` detached from the gradient graph.
    private static func snapshot(_ network: ExpertDistributionNetwork) -> ExpertDistributionNetwork {
        var copy = network
        copy.parameters = network.parameters.map { ($0.name, Tensor(shape: $0.tensor.shape, values: $0.tensor.floats)) }
        return copy
    }
}
