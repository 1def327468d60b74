import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos train …`: the training stages.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train Chronos models.", subcommands: [Pretrain.self])
}

/// Shape of a new Chronos model, as command-line flags.
struct ModelShapeOptions: ParsableArguments {
    @Option(help: "Hidden size.") var hidden = 256
    @Option(help: "Decoder layers.") var layers = 4
    @Option(help: "Attention heads.") var heads = 8
    @Option(help: "Key/value heads of sliding-window layers.") var kvHeads = 4
    @Option(help: "Per-head width (no-RoPE part for MLA layers).") var headDim = 32
    @Option(help: "MLA compressed KV width.") var kvLatent = 64
    @Option(help: "Decoupled RoPE width of MLA heads.") var ropeDim = 16
    @Option(help: "Window of sliding-window layers.") var window = 128
    @Option(help: "Routed experts per layer.") var experts = 8
    @Option(help: "Experts per token.") var topK = 2
    @Option(help: "Always-on shared experts per layer.") var sharedExperts = 1
    @Option(help: "Hidden width of each routed expert.") var expertWidth = 512
    @Option(help: "Hidden width of each shared expert.") var sharedWidth = 512
    @Option(help: "Lookahead steps K predicted by the lookahead head.") var lookahead = 4

    var configuration: ChronosConfiguration {
        ChronosConfiguration(hiddenSize: hidden, hiddenLayers: layers, attentionHeads: heads, keyValueHeads: kvHeads,
                             headDim: headDim, kvLatentDim: kvLatent, ropeDim: ropeDim, slidingWindow: window, experts: experts,
                             expertsPerToken: topK, sharedExperts: sharedExperts, moeIntermediateSize: expertWidth,
                             sharedExpertIntermediateSize: sharedWidth, lookaheadSteps: lookahead)
    }
}

/// Optimisation flags shared by the training stages.
struct OptimizationOptions: ParsableArguments {
    @Option(help: "Optimiser steps.") var steps = 1000
    @Option(help: "Sequences per micro-batch.") var batch = 8
    @Option(help: "Micro-batches per optimiser step.") var accumulate = 1
    @Option(help: "Peak learning rate.") var lr: Float = 3e-3
    @Option(help: "Warmup steps.") var warmup = 50
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0.1
    @Option(help: "Clip gradients to this global norm (0 = off).") var clip: Float = 1
    @Option(help: "λ of the load-balance term.") var lambdaBalance: Float = 0.01
    @Option(help: "λ of the temporal-locality term.") var lambdaTemporal: Float = 0.01
    @Option(help: "λ of the lookahead term.") var lambdaLookahead: Float = 0.1
    @Option(help: "λ of the router KL anchor.") var lambdaAnchor: Float = 0
    @Option(help: "Probability of dropping a routed expert during training (fallback masking).") var fallbackMaskProb: Float = 0.1
    @Option(help: "Seed of data order, initialisation and masks.") var seed: UInt64 = 0

    var settings: OptimizationSettings {
        var s = OptimizationSettings()
        s.steps = steps
        s.batchSize = batch
        s.accumulation = accumulate
        s.learningRate = lr
        s.warmupSteps = warmup
        s.adam.weightDecay = weightDecay
        s.clipNorm = clip
        s.lambdas = ChronosLossWeights(balance: lambdaBalance, temporal: lambdaTemporal, lookahead: lambdaLookahead, routerKL: lambdaAnchor)
        s.fallbackMaskProbability = fallbackMaskProb
        s.seed = seed
        return s
    }
}

extension TrainCommand {
    /// `chronos train pretrain`.
    struct Pretrain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stage 1: pretrain a Chronos-native MoE model on JSONL text with the Chronos loss mix.",
            discussion: "Without --tokenizer, a byte-level BPE tokenizer of --vocab-size tokens is trained on --data first and saved in OUT/tokenizer.")

        @Option(help: "Training JSONL ({\"text\": …} per line).") var data: String
        @Option(help: "Held-out JSONL (default: the last 5 % of the training sequences).") var heldout: String?
        @Option(help: "Run directory: model, snapshots, metrics.jsonl.") var out: String
        @Option(help: "Directory with tokenizer.json to use.") var tokenizer: String?
        @Option(help: "Vocabulary size of a tokenizer trained here.") var vocabSize = 6400
        @Option(help: "Tokens per training sequence.") var seqLen = 256
        @Option(help: "Evaluate held-out loss every N steps.") var evalEvery = 100
        @Option(help: "Held-out sequences per evaluation.") var evalSequences = 16
        @Option(help: "Write a snapshot every N steps.") var checkpointEvery = 200
        @Option(help: "Stop after this many minutes (snapshot first).") var maxMinutes: Double?
        @Flag(help: "Continue from the run directory's latest snapshot.") var resume = false
        @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
        @OptionGroup var shape: ModelShapeOptions
        @OptionGroup var optimization: OptimizationOptions
        @OptionGroup var backend: BackendOption

        func run() throws {
            try backend.apply()
            let output = URL(fileURLWithPath: out)
            let tokenizerDirectory = try tokenizer.map { URL(fileURLWithPath: $0) } ?? trainTokenizer(into: output.appendingPathComponent("tokenizer"))
            var settings = PretrainSettings(model: shape.configuration, optimization: optimization.settings,
                                            data: URL(fileURLWithPath: data), heldOut: heldout.map { URL(fileURLWithPath: $0) },
                                            tokenizer: tokenizerDirectory, output: output)
            settings.sequenceLength = seqLen
            settings.evaluateEvery = evalEvery
            settings.evaluationSequences = evalSequences
            settings.checkpointEvery = checkpointEvery
            settings.timeLimit = maxMinutes.map { $0 * 60 }
            settings.skipBadLines = skipBadLines
            let run = try PretrainRun(settings: settings)
            let progress = ProgressLine()
            let totalSteps = settings.optimization.steps
            try run.run(resume: resume) { event in
                switch event {
                case let .started(parameters, trainSequences, heldOutSequences, unigram, resumedAt):
                    print("model: \(InspectCommand.count(parameters)) parameters; data: \(trainSequences) training and \(heldOutSequences) held-out sequences of \(seqLen) tokens; backend \(Backends.current.name)")
                    print(String(format: "unigram baseline held-out cross-entropy: %.4f nats/token", unigram))
                    if resumedAt > 0 { print("resuming at step \(resumedAt)") }
                case let .step(report, tokensPerSecond, elapsed):
                    let p = report.parts
                    let text = String(format: "step %d/%d  loss %.4f  ce %.4f  bal %.4f  tmp %.4f  la %.4f  kl %.4f  lr %.2e  |g| %.2f  %.0f tok/s",
                                      report.step, totalSteps, p["loss"] ?? 0, p["ce"] ?? 0, p["balance"] ?? 0, p["temporal"] ?? 0,
                                      p["lookahead"] ?? 0, p["router_kl"] ?? 0, report.learningRate, report.gradientNorm, tokensPerSecond)
                    _ = elapsed
                    progress.update(text, fraction: Double(report.step) / Double(totalSteps))
                case let .evaluated(step, crossEntropy):
                    progress.finish("")
                    print(String(format: "step %d: held-out cross-entropy %.4f nats/token (perplexity %.1f)", step, crossEntropy, Foundation.exp(crossEntropy)))
                case let .checkpoint(step):
                    print("step \(step): snapshot written to \(output.path)/checkpoints")
                }
            }
        }

        /// Trains a tokenizer on the training data and returns its directory.
        func trainTokenizer(into directory: URL) throws -> URL {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) { return directory }
            print("training a \(vocabSize)-token tokenizer on \(data)")
            var command = try TokenizerCommand.Train.parse(["--data", data, "--vocab-size", String(vocabSize), "--out", directory.path]
                                                             + (skipBadLines ? ["--skip-bad-lines"] : []))
            try command.validate()
            try command.run()
            return directory
        }
    }
}
