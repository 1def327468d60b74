import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Optimisation settings shared by every training stage.
public struct OptimizationSettings: Codable, Sendable, Equatable {
    /// Peak learning rate.
    public var learningRate: Float = 3e-3
    /// Steps of linear warmup.
    public var warmupSteps: Int = 50
    /// Total optimiser steps of the stage.
    public var steps: Int = 1000
    /// Sequences per micro-batch.
    public var batchSize: Int = 8
    /// Micro-batches whose gradients add up before each optimiser step.
    public var accumulation: Int = 1
    /// Gradients are scaled so their global norm is at most this (0 = off).
    public var clipNorm: Float = 1
    /// AdamW hyper-parameters.
    public var adam = AdamW.Settings()
    /// The Chronos routing terms' weights.
    public var lambdas = ChronosLossWeights()
    /// Probability of dropping each routed (token, expert) slot during training, so the shared
    /// path learns to stand in for a missing expert.
    public var fallbackMaskProbability: Float = 0.1
    /// Seed of the data order and of the fallback masks.
    public var seed: UInt64 = 0

    /// Defaults: lr 3e-3, warmup 50, 1000 steps, batch 8, clip 1, fallback mask 0.1.
    public init() {}

    /// Throws the first setting outside its range, named as in a pipeline configuration
    /// (`batch_size`, `learning_rate`, …).
    public func validate() throws(InvalidSetting) {
        try InvalidSetting.check("steps", steps, in: 1...100_000_000)
        try InvalidSetting.check("batch_size", batchSize, in: 1...65_536)
        try InvalidSetting.check("accumulation", accumulation, in: 1...65_536)
        try InvalidSetting.check("learning_rate", learningRate, in: Float.leastNonzeroMagnitude...10)
        try InvalidSetting.check("warmup_steps", warmupSteps, in: 0...100_000_000)
        try InvalidSetting.check("weight_decay", adam.weightDecay, in: 0...10)
        try InvalidSetting.check("clip_norm", clipNorm, in: .atLeast(0))
        try InvalidSetting.check("lambda_balance", lambdas.balance, in: 0...1000)
        try InvalidSetting.check("lambda_temporal", lambdas.temporal, in: 0...1000)
        try InvalidSetting.check("lambda_lookahead", lambdas.lookahead, in: 0...1000)
        try InvalidSetting.check("lambda_anchor", lambdas.routerKL, in: 0...1000)
        try InvalidSetting.check("fallback_mask_probability", fallbackMaskProbability, in: 0...1)
    }

    /// The learning-rate schedule these settings describe.
    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, warmupSteps: warmupSteps, totalSteps: steps)
    }
}

/// The loss of one sequence as a stage computes it: the recorded total and its parts.
public struct SequenceLoss {
    /// The differentiable total (stage loss + weighted Chronos terms).
    public var total: Tensor
    /// Named values to log (each averaged over the step's sequences).
    public var parts: [String: Float]
    /// Tokens that carried loss.
    public var tokens: Int

    /// A sequence loss.
    public init(total: Tensor, parts: [String: Float], tokens: Int) {
        self.total = total
        self.parts = parts
        self.tokens = tokens
    }
}

/// What one optimiser step did.
public struct StepReport: Sendable {
    /// The step just completed (1-based).
    public var step: Int
    /// Learning rate used.
    public var learningRate: Float
    /// Mean of each logged part over the step's sequences (`loss` is the total).
    public var parts: [String: Float]
    /// Global gradient norm before clipping.
    public var gradientNorm: Float
    /// Tokens that carried loss.
    public var tokens: Int
    /// Wall time of the step.
    public var seconds: Double
}

/// What one sequence's loss is computed with: the model replica whose leaves its backward
/// pass reaches, and a generator for its forward options seeded for that sequence alone, so a
/// step's result does not depend on which thread ran which sequence.
public final class TrainingPass {
    /// The model to run forward (a replica sharing the trainer's weights).
    public let model: TransformerLanguageModel
    private let fallbackMaskProbability: Float
    private var random: SplitMix64

    init(model: TransformerLanguageModel, fallbackMaskProbability: Float, seed: UInt64) {
        self.model = model
        self.fallbackMaskProbability = fallbackMaskProbability
        random = SplitMix64(seed: seed)
    }

    /// Forward options for one training forward pass: routing and lookahead recorded, a fresh
    /// fallback mask.
    public func trainingOptions() -> ForwardOptions {
        ForwardOptions(
            recordsRouting: true, predictsLookahead: true, fallbackMaskProbability: fallbackMaskProbability,
            fallbackMaskSeed: random.next())
    }
}

/// The training loop shared by every stage: owns a Chronos model built from trainable copies
/// of its weights, the optimiser, the schedule and the frozen reference router of the anchor
/// term, and turns per-sequence losses into optimiser steps.
///
/// A step's sequences are spread over the compute pool's threads, one model replica per thread:
/// each replica's parameters are leaves of their own over the same storage, so the threads
/// back-propagate side by side without sharing a gradient, and the replicas' gradients are
/// added in a fixed order before the optimiser step.
public final class ChronosTrainer {
    /// The model being trained; its parameters are updated in place.
    public let model: TransformerLanguageModel
    /// The trainable tensors by checkpoint name.
    public let parameters: [(name: String, tensor: Tensor)]
    /// The optimiser and its moments.
    public let optimizer: AdamW
    /// Settings of this stage.
    public let settings: OptimizationSettings
    /// Router weights at the start of the stage, by layer: the anchor's reference.
    public private(set) var referenceRouters: [Int: Tensor]
    /// Optimiser steps completed.
    public private(set) var step = 0
    /// The generator behind fallback masks and any sampling a stage does.
    public var random: SplitMix64
    /// One model per compute thread, the first being `model`, with its parameters in the order of `parameters`.
    private let replicas: [(model: TransformerLanguageModel, parameters: [Tensor])]

    /// A trainer over `weights` (copied, so the caller's tensors are never modified).
    /// `referenceRouters` defaults to the routers in `weights` (a new stage); a resumed stage
    /// passes the ones saved with its snapshot.
    /// A resumed stage also passes its restored `optimizer`.
    public init(
        configuration: ChronosConfiguration, weights: [String: Tensor], settings: OptimizationSettings,
        referenceRouters: [Int: Tensor]? = nil, optimizer: AdamW? = nil
    ) throws {
        var trainable: [String: Tensor] = [:]
        for (name, tensor) in weights { trainable[name] = tensor.detached().converted(to: .f32).requiringGradient() }
        model = try TransformerLanguageModel(configuration: configuration, weights: trainable)
        parameters = model.namedParameters()
        var replicas = [(model: model, parameters: parameters.map(\.tensor))]
        for _ in 1..<ThreadPool.shared.threadCount {
            let replica = try TransformerLanguageModel(
                configuration: configuration,
                weights: trainable.mapValues { $0.detached().requiringGradient() })
            replicas.append((replica, replica.namedParameters().map(\.tensor)))
        }
        self.replicas = replicas
        self.optimizer = optimizer ?? AdamW(settings: settings.adam)
        self.settings = settings
        random = SplitMix64(seed: settings.seed ^ 0x5EED)
        let routers = Dictionary(
            uniqueKeysWithValues: (0..<configuration.hiddenLayers).compactMap { layer in
                trainable[ChronosWeightNames.router(layer: layer)].map { (layer, $0) }
            })
        // A resumed run's reference routers come from its snapshot: one for every router, of its
        // shape and a float type.
        for (layer, router) in routers {
            guard let reference = referenceRouters?[layer] else { continue }
            guard reference.dtype.isFloatingPoint else {
                throw ModelError.unsupportedDType(tensor: "frozen.router.\(layer)", dtype: reference.dtype.rawValue)
            }
            guard reference.shape == router.shape else {
                throw ModelError.shapeMismatch(tensor: "frozen.router.\(layer)", expected: router.shape, found: reference.shape)
            }
        }
        if let referenceRouters, let layer = routers.keys.sorted().first(where: { referenceRouters[$0] == nil }) {
            throw ModelError.missingTensor(name: "frozen.router.\(layer)", directory: "the snapshot's \(Checkpoint.stateFileName)")
        }
        self.referenceRouters = referenceRouters ?? routers.mapValues { $0.detached().copy() }
    }

    /// Resumes the step counter, optimiser and generator of an interrupted run.
    public func restore(step: Int, randomState: UInt64) {
        self.step = step
        random = SplitMix64(seed: 0)
        random.state = randomState
    }

    /// The routing signals of a forward pass, with the reference router evaluated on the
    /// same MoE inputs for the anchor term; `valid` marks real (non-padding) positions.
    public func routingSignals(_ output: ForwardOutput, valid: [Bool]? = nil) -> RoutingSignals {
        let reference: [Tensor]? =
            settings.lambdas.routerKL == 0
            ? nil
            : output.layers.map { routing in
                Tensor.linear(routing.input.detached(), weight: referenceRouters[routing.layer]!).softmax()
            }
        return RoutingSignals(
            probabilities: output.layers.map(\.routerProbabilities),
            selected: output.layers.map(\.selectedExperts),
            lookaheadLogProbabilities: output.lookahead?.logProbabilities,
            referenceProbabilities: reference, valid: valid)
    }

    /// The Chronos terms of a forward pass, already weighted, with each term's value for logging.
    public func chronosTerms(_ output: ForwardOutput, valid: [Bool]? = nil) -> (weighted: Tensor, parts: [String: Float]) {
        let terms = ChronosLoss.terms(routingSignals(output, valid: valid))
        return (
            terms.weighted(settings.lambdas),
            [
                "balance": terms.balance.floats[0], "temporal": terms.temporal.floats[0],
                "lookahead": terms.lookahead.floats[0], "router_kl": terms.routerKL.floats[0]
            ]
        )
    }

    /// One optimiser step over `sequences` (all micro-batches of the step): each sequence's
    /// loss, computed by `loss` under recording, is back-propagated at once scaled by
    /// 1/count (so memory holds one sequence's graph per thread), then the replicas' gradients
    /// are added, clipped and applied. Sequence i runs on replica i mod (replicas in use).
    public func trainStep<Sequence>(_ sequences: [Sequence], loss: (TrainingPass, Sequence) throws -> SequenceLoss) throws -> StepReport {
        let started = DispatchTime.now().uptimeNanoseconds
        let seeds = sequences.map { _ in random.next() }
        let lanes = max(1, min(replicas.count, sequences.count))
        let scale = 1 / Float(max(sequences.count, 1))
        var outcomes = [(sums: [String: Float], tokens: Int, error: (any Error)?)](repeating: ([:], 0, nil), count: lanes)
        outcomes.withUnsafeMutableBufferPointer { outcomes in
            func run(_ lane: Int) {
                let replica = self.replicas[lane]
                for p in replica.parameters { p.zeroGradient() }
                for index in stride(from: lane, to: sequences.count, by: lanes) {
                    let pass = TrainingPass(
                        model: replica.model, fallbackMaskProbability: self.settings.fallbackMaskProbability,
                        seed: seeds[index])
                    do {
                        try Autograd.recording {
                            let result = try loss(pass, sequences[index])
                            Autograd.backward(result.total.scaled(by: scale))
                            outcomes[lane].sums["loss", default: 0] += result.total.floats[0]
                            for (name, value) in result.parts { outcomes[lane].sums[name, default: 0] += value }
                            outcomes[lane].tokens += result.tokens
                        }
                    } catch {
                        outcomes[lane].error = error
                        return
                    }
                }
            }
            if lanes == 1 {
                run(0)
            } else {
                Backends.current.singleThreaded { ThreadPool.shared.parallelFor(lanes, run) }
            }
        }
        if let error = outcomes.lazy.compactMap(\.error).first { throw error }
        for lane in 1..<lanes {
            for (parameter, replicaParameter) in zip(parameters, replicas[lane].parameters) {
                parameter.tensor.accumulateGradient(from: replicaParameter)
            }
        }
        var sums: [String: Float] = [:]
        for outcome in outcomes { sums.merge(outcome.sums, uniquingKeysWith: +) }
        let norm =
            settings.clipNorm > 0
            ? GradientClipping.clip(parameters, maxNorm: settings.clipNorm)
            : GradientClipping.clip(parameters, maxNorm: .infinity)
        let rate = settings.schedule.rate(at: step)
        optimizer.update(parameters, learningRate: rate)
        step += 1
        return StepReport(
            step: step, learningRate: rate, parts: sums.mapValues { $0 * scale }, gradientNorm: norm,
            tokens: outcomes.reduce(0) { $0 + $1.tokens },
            seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }

    /// Writes a snapshot of this trainer into `runDirectory` (see `Checkpoint.save`): the model,
    /// the tokenizer files found in `tokenizerDirectory`, the optimiser, the reference routers,
    /// and whatever `alsoWrite` adds to the snapshot folder.
    public func saveSnapshot(
        runDirectory: URL, state: TrainingState, tokenizerDirectory: URL,
        alsoWrite: (URL) throws -> Void = { _ in }
    ) throws {
        let tokenizerFiles = [ModelDirectory(tokenizerDirectory).tokenizer, ModelDirectory(tokenizerDirectory).tokenizerConfig]
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        try Checkpoint.save(runDirectory: runDirectory, state: state, optimizer: optimizer, frozen: frozenTensors) { directory in
            try model.save(to: directory)
            for file in tokenizerFiles {
                try AtomicFile.write(Data(contentsOf: file), to: directory.appendingPathComponent(file.lastPathComponent))
            }
            try alsoWrite(directory)
        }
    }

    /// The current weights by checkpoint name (the live tensors, not copies).
    public var weights: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.tensor) })
    }

    /// The reference routers keyed for a snapshot's frozen tensors.
    public var frozenTensors: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: referenceRouters.map { ("router.\($0.key)", $0.value) })
    }

    /// Reference routers from a snapshot's frozen tensors.
    public static func referenceRouters(fromFrozen frozen: [String: Tensor]) -> [Int: Tensor] {
        Dictionary(
            uniqueKeysWithValues: frozen.compactMap { name, tensor in
                name.hasPrefix("router.") ? Int(name.dropFirst(7)).map { ($0, tensor) } : nil
            })
    }
}
