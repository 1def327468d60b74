import ArgumentParser
import ChronosModel
import ChronosRouting
import ChronosTraining
import Foundation

/// Flags shared by the predictors trained from activation traces.
struct PredictorTrainingOptions: ParsableArguments {
    @Option(help: "Model directory the predictor is saved into (its own weights are not touched).") var model: String
    @Option(help: "Activation trace to train on (`chronos trace`).") var trace: String
    @Option(help: "Held-out trace to evaluate on (default: the last 10 % of --trace's sequences).") var heldoutTrace: String?
    @Option(parsing: .unconditional, help: "Width of the predictor's hidden layer (default: hidden size / 2).") var width: Int?
    @Option(parsing: .unconditional, help: "Optimiser steps.") var steps = 1500
    @Option(parsing: .unconditional, help: "Examples per step.") var batch = 256
    @Option(parsing: .unconditional, help: "Peak learning rate.") var lr: Float = 3e-3
    @Option(parsing: .unconditional, help: "Seed of initialisation and batch order.") var seed: UInt64 = 0
    @OptionGroup var backend: BackendOption

    /// The model's summary, the training trace and the held-out trace.
    func load() throws -> (summary: ModelSummary, training: ActivationTrace, heldOut: ActivationTrace) {
        try backend.apply()
        let summary = try ModelArgument.load(model).summary
        let trace = try ActivationTrace.read(URL(fileURLWithPath: trace))
        let moeLayers = summary.expertsPerLayer.indices.filter { summary.expertsPerLayer[$0] > 0 }
        guard trace.layers.map(\.layer) == moeLayers, trace.hiddenSize == summary.hiddenSize else {
            throw ValidationError(
                "\(self.trace) was not traced from \(model): it records MoE layers \(trace.layers.map(\.layer)) and hidden width \(trace.hiddenSize), the model has \(moeLayers) and \(summary.hiddenSize)"
            )
        }
        if let heldoutTrace {
            let heldOut = try ActivationTrace.read(URL(fileURLWithPath: heldoutTrace))
            guard heldOut.hiddenLayer == trace.hiddenLayer else {
                throw ValidationError(
                    "\(heldoutTrace) records the hidden state after layer \(heldOut.hiddenLayer), \(self.trace) after layer \(trace.hiddenLayer)"
                )
            }
            return (summary, trace, heldOut)
        }
        guard let (training, heldOut) = trace.splitHoldingOutLastTenth() else {
            throw ValidationError("\(self.trace) holds too few sequences to hold some out; give --heldout-trace")
        }
        return (summary, training, heldOut)
    }

    /// Training settings from these flags.
    var settings: PredictorTraining.Settings {
        var settings = PredictorTraining.Settings()
        settings.steps = steps
        settings.batchSize = batch
        settings.learningRate = lr
        settings.seed = seed
        return settings
    }

    /// Trains `network` on `examples` with a progress line, keeping the parameters that score
    /// best on the last 10 % of the training examples (set aside for that); prints the held-out
    /// loss before and after.
    func train(
        _ network: ExpertDistributionNetwork, examples: PredictorTraining.Examples,
        heldOut: PredictorTraining.Examples
    ) -> ExpertDistributionNetwork {
        let (fitted, validation) = examples.split(holdingOut: 0.1)
        print(
            "\(fitted.count) training, \(validation.count) validation and \(heldOut.count) held-out examples; held-out loss before training \(String(format: "%.4f", PredictorTraining.loss(of: network, on: heldOut)))"
        )
        let progress = ProgressLine()
        let outcome = PredictorTraining.train(network, on: fitted, validation: validation, settings: settings) { step, loss in
            progress.update(String(format: "step %d/%d  loss %.4f", step, steps, loss), fraction: Double(step) / Double(steps))
        }
        progress.finish("")
        let validationLoss = outcome.validationLoss.map { String(format: ", validation loss %.4f", $0) } ?? ""
        print(
            String(
                format: "kept step %d of %d%@; held-out loss after training %.4f", outcome.step, steps, validationLoss,
                PredictorTraining.loss(of: outcome.network, on: heldOut)))
        return outcome.network
    }

    /// Formats a row of a results table.
    static func cells(_ score: PredictionScore) -> String {
        String(format: "%5.1f %% / %5.1f %%", 100 * (score.recall ?? 0), 100 * (score.precision ?? 0))
    }
}

extension TrainCommand {
    /// `chronos train intent`.
    struct Intent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the intent classifier (prompt → the experts the generation will use) from an activation trace.",
            discussion: """
                Examples: for each traced sequence and prompt length P, the mean traced hidden state of the \
                first P tokens against how the routing of the next --horizon tokens spreads over each layer's \
                experts. Saves MODEL/intent.safetensors, which `chronos generate` and `chronos bench offload` \
                then load during the prefill; reports recall and precision of its hot sets on held-out \
                sequences beside the shuffle, frequency and prompt-reuse controls.
                """)

        @OptionGroup var options: PredictorTrainingOptions
        @Option(parsing: .unconditional, help: "Generated tokens whose experts the classifier predicts.") var horizon = 64
        @Option(help: "Prompt lengths to train and evaluate on, comma-separated.") var promptLengths = "8,16,32,64"
        @Option(parsing: .unconditional, help: "Hot-set size of the evaluation, as a share of all (layer, expert) pairs.") var setShare =
            0.3

        func run() throws {
            let lengths = promptLengths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !lengths.isEmpty, lengths.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("--prompt-lengths must be positive integers")
            }
            let (summary, training, heldOut) = try options.load()
            let layers = training.layers.map(\.layer), experts = training.layers.map(\.experts).max() ?? 0
            let fresh = IntentClassifier(
                hiddenSize: summary.hiddenSize, inputLayer: training.hiddenLayer, layers: layers, experts: experts, horizon: horizon,
                width: options.width ?? max(8, summary.hiddenSize / 2), seed: options.seed)
            let examples = PredictorTraining.intentExamples(training, promptLengths: lengths, horizon: horizon)
            let heldOutExamples = PredictorTraining.intentExamples(heldOut, promptLengths: lengths, horizon: horizon)
            guard examples.count > 0 else { throw ValidationError("\(options.trace) has no sequence longer than a prompt plus --horizon") }
            var classifier = fresh
            classifier.network = options.train(fresh.network, examples: examples, heldOut: heldOutExamples)
            try classifier.save(in: URL(fileURLWithPath: options.model))
            print("saved \(options.model)/\(IntentClassifier.fileName)")

            let pairs = layers.count * experts
            let size = max(1, Int((Double(pairs) * setShare).rounded()))
            let rows = PredictorEvaluation.intent(classifier, heldOut: heldOut, training: training, promptLengths: lengths, setSize: size)
            print("\nheld-out, a hot set of \(size) of \(pairs) (layer, expert) pairs against the next \(horizon) tokens' routing:")
            print(
                "coverage = share of those routings the set holds (the hit rate it alone would give); recall / precision over the distinct pairs used"
            )
            print(
                "prompt | coverage: intent shuffled frequency prompt's-own | recall / precision: intent | shuffled          | frequency         | prompt's own"
            )
            for row in rows {
                let coverage = [row.intent, row.shuffled, row.frequency, row.prompt].map {
                    String(format: "%6.1f %%", 100 * ($0.coverage ?? 0))
                }
                let sets = [row.intent, row.shuffled, row.frequency, row.prompt].map(PredictorTrainingOptions.cells)
                print(String(format: "%6d | ", row.promptLength) + coverage.joined(separator: " ") + " | " + sets.joined(separator: " | "))
            }
        }
    }

    /// `chronos train lookahead`.
    struct Lookahead: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a lookahead head (a token's hidden state → each MoE layer's experts at t+1…t+K) from an activation trace.",
            discussion: """
                Works for any MoE model, Hugging Face architectures included; the model's own weights are not \
                touched. Saves MODEL/lookahead.safetensors, which the offload runtime uses in place of a \
                Chronos-native head; reports held-out recall and precision at each offset beside the shuffle, \
                frequency and reuse controls.
                """)

        @OptionGroup var options: PredictorTrainingOptions
        @Option(parsing: .unconditional, help: "K: the furthest future token predicted.") var lookahead = 4
        @Option(parsing: .unconditional, help: "Experts predicted per layer and offset in the evaluation (default: the model's top-k).")
        var predict: Int?

        func run() throws {
            guard lookahead > 0 else { throw ValidationError("--lookahead must be positive") }
            let (summary, training, heldOut) = try options.load()
            let layers = training.layers.map(\.layer), experts = training.layers.map(\.experts).max() ?? 0
            var head = TrainedLookaheadHead(
                hiddenSize: summary.hiddenSize, inputLayer: training.hiddenLayer, layers: layers, experts: experts, steps: lookahead,
                width: options.width ?? max(8, summary.hiddenSize / 2), seed: options.seed)
            let examples = PredictorTraining.lookaheadExamples(training, steps: lookahead)
            let heldOutExamples = PredictorTraining.lookaheadExamples(heldOut, steps: lookahead)
            guard examples.count > 0 else { throw ValidationError("\(options.trace) has no sequence longer than --lookahead") }
            head.network = options.train(head.network, examples: examples, heldOut: heldOutExamples)
            try head.save(in: URL(fileURLWithPath: options.model))
            print("saved \(options.model)/\(TrainedLookaheadHead.fileName)")

            let n = predict ?? summary.expertsPerToken
            let rows = PredictorEvaluation.lookahead(head, heldOut: heldOut, training: training, n: n)
            print("\nheld-out recall / precision of \(n) experts per layer against each layer's experts at t+k:")
            print("  k | head              | shuffled          | frequency         | reuse (token t)")
            for row in rows {
                print(
                    String(
                        format: "%3d | %@ | %@ | %@ | %@", row.offset, PredictorTrainingOptions.cells(row.head),
                        PredictorTrainingOptions.cells(row.shuffled), PredictorTrainingOptions.cells(row.frequency),
                        PredictorTrainingOptions.cells(row.reuse)))
            }
        }
    }
}
