import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos train …`: the training stages.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train Chronos models: the six stages of the pipeline.",
        subcommands: [Pretrain.self, SFT.self, DPO.self, ORPO.self, GRPO.self, Distill.self, Intent.self, Lookahead.self])
}

/// How a new Chronos model's layers attend.
enum AttentionLayout: String, ExpressibleByArgument, CaseIterable {
    /// Latent attention on even layers, sliding-window attention on odd ones, routing renormalised.
    case mixed
    /// Latent attention in every layer with DeepSeek-V2's routing (the chosen scores not
    /// renormalised): the shape `chronos export --to deepseek_v2` writes.
    case mla
}

/// Shape of a new Chronos model, as command-line flags.
struct ModelShapeOptions: ParsableArguments {
    @Option(
        help:
            "Layers: mixed (latent attention on even layers, sliding-window on odd) or mla (latent attention everywhere with DeepSeek-V2's routing, exportable as deepseek_v2)."
    )
    var attention: AttentionLayout = .mixed
    @Option(parsing: .unconditional, help: "Hidden size.") var hidden = 256
    @Option(parsing: .unconditional, help: "Decoder layers.") var layers = 4
    @Option(parsing: .unconditional, help: "Attention heads.") var heads = 8
    @Option(parsing: .unconditional, help: "Key/value heads of sliding-window layers.") var kvHeads = 4
    @Option(parsing: .unconditional, help: "Per-head width (no-RoPE part for MLA layers).") var headDim = 32
    @Option(parsing: .unconditional, help: "MLA compressed KV width.") var kvLatent = 64
    @Option(parsing: .unconditional, help: "Decoupled RoPE width of MLA heads.") var ropeDim = 16
    @Option(parsing: .unconditional, help: "Window of sliding-window layers.") var window = 128
    @Option(parsing: .unconditional, help: "Routed experts per layer.") var experts = 8
    @Option(parsing: .unconditional, help: "Experts per token.") var topK = 2
    @Option(parsing: .unconditional, help: "Always-on shared experts per layer.") var sharedExperts = 1
    @Option(parsing: .unconditional, help: "Hidden width of each routed expert.") var expertWidth = 512
    @Option(parsing: .unconditional, help: "Hidden width of each shared expert.") var sharedWidth = 512
    @Option(parsing: .unconditional, help: "Lookahead steps K predicted by the lookahead head.") var lookahead = 4

    func validate() throws {
        try checkingOptions { try configuration.validate() }
    }

    var configuration: ChronosConfiguration {
        ChronosConfiguration(
            hiddenSize: hidden, hiddenLayers: layers, attentionHeads: heads, keyValueHeads: kvHeads,
            headDim: headDim, kvLatentDim: kvLatent, ropeDim: ropeDim, slidingWindow: window,
            layerTypes: attention == .mla ? Array(repeating: .mla, count: max(layers, 0)) : nil, experts: experts,
            expertsPerToken: topK, sharedExperts: sharedExperts, moeIntermediateSize: expertWidth,
            sharedExpertIntermediateSize: sharedWidth, normTopKProb: attention == .mixed, lookaheadSteps: lookahead)
    }
}

/// Optimisation flags shared by the training stages.
struct OptimizationOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Optimiser steps.") var steps = 1000
    @Option(parsing: .unconditional, help: "Sequences per micro-batch.") var batch = 8
    @Option(parsing: .unconditional, help: "Micro-batches per optimiser step.") var accumulate = 1
    @Option(
        parsing: .unconditional,
        help: "Peak learning rate (default: the stage's; 3e-3 for pretraining, 1e-3 SFT and distillation, 2e-4 DPO, 5e-4 ORPO, 1e-4 GRPO).")
    var lr: Float?
    @Option(parsing: .unconditional, help: "Warmup steps.") var warmup = 50
    @Option(parsing: .unconditional, help: "AdamW weight decay.") var weightDecay: Float = 0.1
    @Option(parsing: .unconditional, help: "Clip gradients to this global norm (0 = off).") var clip: Float = 1
    @Option(parsing: .unconditional, help: "λ of the load-balance term.") var lambdaBalance: Float = 0.01
    @Option(parsing: .unconditional, help: "λ of the temporal-locality term.") var lambdaTemporal: Float = 0.01
    @Option(parsing: .unconditional, help: "λ of the lookahead term.") var lambdaLookahead: Float = 0.1
    @Option(
        parsing: .unconditional,
        help: "λ of the router KL anchor (default: the stage's; 0 pretraining, 0.01 SFT, 0.1 DPO/ORPO/GRPO, 0.05 distillation).")
    var lambdaAnchor: Float?
    @Option(parsing: .unconditional, help: "Probability of dropping a routed expert during training (fallback masking).")
    var fallbackMaskProb: Float = 0.1
    @Option(parsing: .unconditional, help: "Seed of data order, initialisation and masks.") var seed: UInt64 = 0

    var settings: OptimizationSettings { settings(for: .pretrain) }

    func validate() throws {
        try checkingOptions { try settings.validate() }
    }

    /// The settings, with `stage`'s defaults for the learning rate and anchor where not given.
    func settings(for stage: TrainingStage) -> OptimizationSettings {
        var s = OptimizationSettings()
        s.steps = steps
        s.batchSize = batch
        s.accumulation = accumulate
        s.learningRate = lr ?? stage.defaultLearningRate
        s.warmupSteps = warmup
        s.adam.weightDecay = weightDecay
        s.clipNorm = clip
        s.lambdas = ChronosLossWeights(
            balance: lambdaBalance, temporal: lambdaTemporal, lookahead: lambdaLookahead,
            routerKL: lambdaAnchor ?? stage.defaultAnchor)
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
            discussion:
                "Without --tokenizer, a byte-level BPE tokenizer of --vocab-size tokens is trained on --data first and saved in OUT/tokenizer."
        )

        @Option(help: "Training JSONL ({\"text\": …} per line).") var data: String
        @Option(help: "Held-out JSONL (default: the last 5 % of the training sequences).") var heldout: String?
        @Option(help: "Run directory: model, snapshots, metrics.jsonl and its chart loss.svg.") var out: String
        @Option(help: "Directory with tokenizer.json to use.") var tokenizer: String?
        @Option(parsing: .unconditional, help: "Vocabulary size of a tokenizer trained here.") var vocabSize = 6400
        @Option(parsing: .unconditional, help: "Tokens per training sequence.") var seqLen = 256
        @Option(parsing: .unconditional, help: "Evaluate held-out loss every N steps.") var evalEvery = 100
        @Option(parsing: .unconditional, help: "Held-out sequences per evaluation.") var evalSequences = 16
        @Option(parsing: .unconditional, help: "Write a snapshot every N steps.") var checkpointEvery = 200
        @Option(parsing: .unconditional, help: "Stop after this many minutes (snapshot first).") var maxMinutes: Double?
        @OptionGroup var start: RunStartOptions
        @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
        @OptionGroup var shape: ModelShapeOptions
        @OptionGroup var optimization: OptimizationOptions
        @OptionGroup var backend: BackendOption

        /// The run's settings, with the tokenizer in `tokenizerDirectory`.
        func settings(tokenizer tokenizerDirectory: URL) -> PretrainSettings {
            var settings = PretrainSettings(
                model: shape.configuration, optimization: optimization.settings,
                data: URL(fileURLWithPath: data), heldOut: heldout.map { URL(fileURLWithPath: $0) },
                tokenizer: tokenizerDirectory, output: URL(fileURLWithPath: out))
            settings.model.vocabSize = vocabSize
            settings.sequenceLength = seqLen
            settings.evaluateEvery = evalEvery
            settings.evaluationSequences = evalSequences
            settings.checkpointEvery = checkpointEvery
            settings.timeLimit = maxMinutes.map { $0 * 60 }
            settings.skipBadLines = skipBadLines
            return settings
        }

        func validate() throws {
            try checkingOptions { try settings(tokenizer: URL(fileURLWithPath: out)).validate() }
        }

        func run() throws {
            try backend.apply()
            let output = URL(fileURLWithPath: out)
            // Refused before the tokenizer is trained: a run that would lose work does no work.
            _ = try Checkpoint.prepare(runDirectory: output, start: start.mode)
            let tokenizerDirectory =
                try tokenizer.map { URL(fileURLWithPath: $0) }
                ?? TokenizerCommand.Train.trainedTokenizer(
                    data: data, vocabSize: vocabSize, skipBadLines: skipBadLines, into: output.appendingPathComponent("tokenizer"))
            let run = try PretrainRun(settings: settings(tokenizer: tokenizerDirectory))
            let progress = ProgressLine()
            let totalSteps = optimization.steps
            try run.run(start: start.mode) { event in
                switch event {
                case .started(let parameters, let trainSequences, let heldOutSequences, let unigram, let resumedAt):
                    print(
                        "model: \(InspectCommand.count(parameters)) parameters; data: \(trainSequences) training and \(heldOutSequences) held-out sequences of \(seqLen) tokens; backend \(Backends.current.name)"
                    )
                    print(String(format: "unigram baseline held-out cross-entropy: %.4f nats/token", unigram))
                    if resumedAt > 0 { print("resuming at step \(resumedAt)") }
                case .step(let report, let tokensPerSecond, _):
                    let p = report.parts
                    let text = String(
                        format: "step %d/%d  loss %.4f  ce %.4f  bal %.4f  tmp %.4f  la %.4f  kl %.4f  lr %.2e  |g| %.2f  %.0f tok/s",
                        report.step, totalSteps, p["loss"] ?? 0, p["ce"] ?? 0, p["balance"] ?? 0, p["temporal"] ?? 0,
                        p["lookahead"] ?? 0, p["router_kl"] ?? 0, report.learningRate, report.gradientNorm, tokensPerSecond)
                    progress.update(text, fraction: Double(report.step) / Double(totalSteps))
                case .evaluated(let step, let crossEntropy):
                    progress.finish("")
                    print(
                        String(
                            format: "step %d: held-out cross-entropy %.4f nats/token (perplexity %.1f)", step, crossEntropy,
                            Foundation.exp(crossEntropy)))
                case .checkpoint(let step):
                    print("step \(step): snapshot written to \(output.path)/checkpoints")
                }
                fflush(nil)
            }
        }
    }
}

/// Whether a training run continues, replaces or may not touch an earlier run in its directory.
struct RunStartOptions: ParsableArguments {
    @Flag(help: "Continue from the run directory's newest valid snapshot.") var resume = false
    @Flag(help: "Delete an earlier run in the run directory (its snapshots, model and logs) and start anew.") var overwrite = false

    func validate() throws {
        if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other") }
    }

    /// The start these flags ask for: without either, a run directory holding an earlier run is refused.
    var mode: RunStart { resume ? .resume : overwrite ? .overwrite : .new }
}

/// Flags every fine-tuning stage (2–6) shares.
struct FineTuneOptions: ParsableArguments {
    @Option(help: "The checkpoint to start from: the previous stage's run directory (model and tokenizer).") var from: String
    @Option(help: "Training data: JSON Lines, plain or gzipped.") var data: String
    @Option(help: "Held-out data of the same kind (default: the last 5 % of --data).") var heldout: String?
    @Option(help: "Run directory: model, snapshots, metrics.jsonl, loss.svg, result.json.") var out: String
    @Option(parsing: .unconditional, help: "Cut sequences to this many tokens.") var maxLength = 256
    @Option(parsing: .unconditional, help: "Evaluate on held-out data every N steps.") var evalEvery = 100
    @Option(parsing: .unconditional, help: "Held-out examples scored per evaluation.") var evalExamples = 64
    @Option(parsing: .unconditional, help: "Held-out prompts answered by greedy generation per evaluation.") var genExamples = 16
    @Option(parsing: .unconditional, help: "At most this many tokens per generated answer.") var maxNewTokens = 64
    @Option(parsing: .unconditional, help: "Write a snapshot every N steps.") var checkpointEvery = 200
    @Option(parsing: .unconditional, help: "Stop after this many minutes (snapshot first).") var maxMinutes: Double?
    @OptionGroup var start: RunStartOptions
    @Flag(help: "Skip the evaluation before the first step.") var noInitialEval = false
    @OptionGroup var optimization: OptimizationOptions
    @OptionGroup var backend: BackendOption

    /// Stage settings for `objective` from these flags.
    func settings(_ objective: StageObjectiveSettings) -> StageSettings {
        var settings = StageSettings(
            objective: objective, start: URL(fileURLWithPath: from), output: URL(fileURLWithPath: out),
            data: URL(fileURLWithPath: data), heldOut: heldout.map { URL(fileURLWithPath: $0) })
        settings.optimization = optimization.settings(for: objective.stage)
        settings.maxSequenceLength = maxLength
        settings.evaluateEvery = evalEvery
        settings.evaluationExamples = evalExamples
        settings.generationExamples = genExamples
        settings.maxNewTokens = maxNewTokens
        settings.checkpointEvery = checkpointEvery
        settings.timeLimit = maxMinutes.map { $0 * 60 }
        settings.evaluateAtStart = !noInitialEval
        return settings
    }

    /// Runs a stage with `settings`, drawing a progress line and printing evaluations.
    func run(_ settings: StageSettings) throws {
        try checkingOptions { try settings.validate() }
        try backend.apply()
        _ = try Checkpoint.prepare(runDirectory: settings.output, start: start.mode)
        let run = try FineTuneRun(settings: settings)
        let display = StageProgressDisplay(total: settings.optimization.steps)
        let result = try run.run(start: start.mode, onEvent: display.show)
        display.finish(result)
    }
}

/// Prints a fine-tuning stage's progress: one redrawn line per step, a line per evaluation
/// and snapshot.
final class StageProgressDisplay {
    let total: Int
    let progress = ProgressLine()
    /// The Chronos terms, shown after the stage's own values under short names.
    static let chronosTerms: [(name: String, label: String)] = [
        ("balance", "bal"), ("temporal", "tmp"), ("lookahead", "la"), ("router_kl", "anc")
    ]

    init(total: Int) {
        self.total = total
    }

    func show(_ event: StageEvent) {
        switch event {
        case .started(let stage, let parameters, let trainExamples, let heldOutExamples, let resumedAt):
            print(
                "stage \(stage.number) (\(stage.rawValue)): \(InspectCommand.count(parameters)) parameters; \(trainExamples) training and \(heldOutExamples) held-out examples; backend \(Backends.current.name)"
            )
            if resumedAt > 0 { print("resuming at step \(resumedAt)") }
        case .step(let report, _):
            progress.update(Self.line(report, total: total), fraction: Double(report.step) / Double(total))
        case .evaluated(let step, let metrics):
            progress.finish("")
            print("step \(step): " + Self.metrics(metrics))
        case .checkpoint(let step):
            print("step \(step): snapshot written")
        }
    }

    func finish(_ result: StageResult) {
        if result.steps < total {
            print("stopped at step \(result.steps) of \(total); continue with --resume")
        } else {
            print(
                String(
                    format: "done: %d steps in %.0f s; result in %@/\(StageResult.fileName)", result.steps, result.seconds, result.output))
        }
    }

    static func line(_ report: StepReport, total: Int) -> String {
        let parts = report.parts
        let chronos = Set(chronosTerms.map(\.name))
        var text = String(format: "step %d/%d  loss %.4f", report.step, total, parts["loss"] ?? 0)
        for name in parts.keys.sorted() where name != "loss" && !chronos.contains(name) {
            text += String(format: "  %@ %.4f", name, parts[name]!)
        }
        for (name, label) in chronosTerms { text += String(format: "  %@ %.4f", label, parts[name] ?? 0) }
        return text + String(format: "  lr %.2e  |g| %.2f  %.2f s/step", report.learningRate, report.gradientNorm, report.seconds)
    }

    static func metrics(_ metrics: [String: Double]) -> String {
        metrics.keys.sorted().map { String(format: "%@ %.4f", $0, metrics[$0]!) }.joined(separator: "  ")
    }
}

extension TrainCommand {
    /// `chronos train sft`.
    struct SFT: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sft",
            abstract: "Stage 2: supervised fine-tuning on chat conversations, the loss on assistant tokens (anchor λ 0.01).",
            discussion: """
                --data holds {"conversations": [{"role", "content"}, …]} lines, rendered through the chat template of \
                --from. Evaluation: held-out cross-entropy, definition F1 of greedy answers, router KL drift.
                """)

        @OptionGroup var options: FineTuneOptions
        @Option(help: "Prompts with reference definitions (GRPO format) for the F1 evaluation (default: from --heldout).")
        var evalPrompts: String?

        func run() throws {
            var settings = options.settings(.sft)
            settings.evaluationPrompts = evalPrompts.map { URL(fileURLWithPath: $0) }
            try options.run(settings)
        }
    }

    /// `chronos train dpo`.
    struct DPO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dpo",
            abstract: "Stage 3: direct preference optimisation against the frozen --from model (β 0.1, anchor λ 0.1).",
            discussion: """
                --data holds {"chosen": [turns], "rejected": [turns]} lines. Evaluation: preference accuracy (implicit \
                reward), reward margin, held-out loss, router KL drift.
                """)

        @OptionGroup var options: FineTuneOptions
        @Option(parsing: .unconditional, help: "β: how far the policy may move from the reference.") var beta: Float = 0.1

        func run() throws {
            var dpo = DPOSettings()
            dpo.beta = beta
            try options.run(options.settings(.dpo(dpo)))
        }
    }

    /// `chronos train orpo`.
    struct ORPO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "orpo",
            abstract: "Stage 4: odds-ratio preference optimisation, no reference model (λ 0.1, anchor λ 0.1).",
            discussion: """
                --data holds {"chosen": [turns], "rejected": [turns]} lines. Evaluation: preference accuracy \
                (length-normalised likelihood), held-out loss and NLL, router KL drift.
                """)

        @OptionGroup var options: FineTuneOptions
        @Option(parsing: .unconditional, help: "λ: the weight of the odds-ratio term.") var lambda: Float = 0.1

        func run() throws {
            var orpo = ORPOSettings()
            orpo.lambda = lambda
            try options.run(options.settings(.orpo(orpo)))
        }
    }

    /// `chronos train grpo`.
    struct GRPO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grpo",
            abstract: "Stage 5: group relative policy optimisation with a pluggable reward (anchor λ 0.1).",
            discussion: """
                --data holds {"conversations": [turns…, {"role": "assistant", "content": ""}], "reference": …, "word": …} \
                lines. Rewards: \(Rewards.names.joined(separator: ", ")). --batch counts prompts per micro-batch. \
                Evaluation: mean reward and definition F1 of greedy answers, router KL drift.
                """)

        @OptionGroup var options: FineTuneOptions
        @Option(parsing: .unconditional, help: "G: completions sampled per prompt.") var groupSize = 4
        @Option(parsing: .unconditional, help: "ε of the clipped policy ratio.") var clipEpsilon: Float = 0.2
        @Option(parsing: .unconditional, help: "β of the KL penalty to the reference.") var klBeta: Float = 0.04
        @Option(parsing: .unconditional, help: "Sampling temperature of the rollouts.") var temperature: Float = 1
        @Option(parsing: .unconditional, help: "Sample among the k most likely tokens (0 = all).") var topK = 0
        @Option(help: "The reward: \(Rewards.names.joined(separator: ", ")).") var reward = DefinitionReward.rewardName
        @Option(help: "Model directory scoring the model-likelihood reward.") var rewardModel: String?

        func validate() throws {
            guard groupSize > 1 else { throw ValidationError("--group-size must be at least 2 to compare completions") }
            guard Rewards.names.contains(reward) else {
                throw ValidationError("--reward must be one of \(Rewards.names.joined(separator: ", "))")
            }
        }

        func run() throws {
            var grpo = GRPOSettings()
            grpo.groupSize = groupSize
            grpo.clipEpsilon = clipEpsilon
            grpo.klBeta = klBeta
            grpo.temperature = temperature
            grpo.topK = topK
            grpo.reward = reward
            grpo.rewardModel = rewardModel.map { URL(fileURLWithPath: $0) }
            try options.run(options.settings(.grpo(grpo)))
        }
    }

    /// `chronos train distill`.
    struct Distill: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "distill",
            abstract: "Stage 6: distillation from a teacher with the same tokenizer (α 0.7, T 4, anchor λ 0.05).",
            discussion: """
                --teacher is any loadable model directory (\(ModelRegistry.modelTypes.joined(separator: ", "))). --data \
                holds conversations as for sft. Evaluation: held-out cross-entropy (and the teacher's), soft KL, router KL drift.
                """)

        @OptionGroup var options: FineTuneOptions
        @Option(help: "The teacher's model directory.") var teacher: String
        @Option(parsing: .unconditional, help: "α: the weight of the soft (teacher) term.") var alpha: Float = 0.7
        @Option(parsing: .unconditional, help: "T: the softmax temperature of teacher and student.") var temperature: Float = 4

        func run() throws {
            var distill = DistillationSettings(teacher: URL(fileURLWithPath: teacher))
            distill.alpha = alpha
            distill.temperature = temperature
            try options.run(options.settings(.distill(distill)))
        }
    }
}
