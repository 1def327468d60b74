import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos bench train`: training throughput (forward + backward + optimiser step) of a
/// reference Chronos configuration on every available compute backend, and peak memory.
public struct TrainBench {
    /// Where the measurements go.
    public let report: BenchReport
    /// Timed optimiser steps per backend, after one warm-up step.
    public var steps = 3

    /// A training benchmark of `steps` timed steps per backend, reporting to `report`.
    public init(report: BenchReport, steps: Int = 3) {
        self.report = report
        self.steps = steps
    }

    /// vocab 6400, hidden 256, 4 layers, 8 heads / 4 KV heads, 8 experts top-2 of width 512, no
    /// shared expert (as the Mixtral it is compared with), sequence 256, batch 8, f32.
    public static let reference = ChronosConfiguration(
        vocabSize: 6400, hiddenSize: 256, hiddenLayers: 4, attentionHeads: 8, keyValueHeads: 4, headDim: 32, kvLatentDim: 64,
        ropeDim: 16, slidingWindow: 128, experts: 8, expertsPerToken: 2, sharedExperts: 0, moeIntermediateSize: 512,
        sharedExpertIntermediateSize: 512, lookaheadSteps: 4)

    /// Trains `configuration` on random tokens for `steps` steps on each available backend
    /// (only `CHRONOS_BACKEND`'s when set), then reports the process's peak memory.
    public func run(configuration: ChronosConfiguration = reference, sequenceLength: Int = 256, batchSize: Int = 8) throws {
        let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 1)
        var random = SplitMix64(seed: 2)
        let batches = (0...steps).map { _ in
            (0..<batchSize).map { _ in (0...sequenceLength).map { _ in Int(random.next() % UInt64(configuration.vocabSize)) } }
        }
        let only = ProcessInfo.processInfo.environment["CHRONOS_BACKEND"]
        for status in Backends.statuses where status.isAvailable && (only == nil || only == status.name) {
            try Backends.select(status.name)
            var settings = OptimizationSettings()
            settings.batchSize = batchSize
            settings.steps = steps + 1
            let trainer = try ChronosTrainer(configuration: configuration, weights: weights, settings: settings)
            var seconds = 0.0
            for (i, batch) in batches.enumerated() {
                report.progress("backend \(status.name): step \(i + 1)/\(batches.count)\(i == 0 ? " (warm-up)" : "")")
                let result = try trainer.trainStep(batch) { pass, ids in
                    let output = try pass.model.forward(
                        Array(ids.dropLast()), cache: pass.model.makeCache(), options: pass.trainingOptions())
                    let ce = Tensor.crossEntropy(logits: output.logits, targets: Array(ids.dropFirst()))
                    return SequenceLoss(total: ce + trainer.chronosTerms(output).weighted, parts: [:], tokens: sequenceLength)
                }
                if i > 0 { seconds += result.seconds }
            }
            let tokensPerSecond = Double(steps * batchSize * sequenceLength) / seconds
            report.add(Measurement(name: "train \(status.name) (fwd+bwd+AdamW)", value: tokensPerSecond, unit: "tokens/s"))
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        report.add(Measurement(name: "peak resident memory (process)", value: Double(usage.ru_maxrss) / 1024, unit: "MiB"))
    }
}
