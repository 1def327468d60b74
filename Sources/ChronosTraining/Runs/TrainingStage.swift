import ChronosModel
import ChronosTensor
import Foundation

/// The six stages of the Chronos training pipeline, in the order they run.
public enum TrainingStage: String, Codable, Sendable, CaseIterable, Comparable {
    case pretrain, sft, dpo, orpo, grpo, distill

    /// The stage's place in the pipeline, from 1.
    public var number: Int { Self.allCases.firstIndex(of: self)! + 1 }

    /// λ_anc, the weight of the router KL anchor, unless set otherwise.
    public var defaultAnchor: Float {
        switch self {
        case .pretrain: 0
        case .sft: 0.01
        case .dpo, .orpo, .grpo: 0.1
        case .distill: 0.05
        }
    }

    /// The peak learning rate unless set otherwise: fine-tuning moves less than pretraining,
    /// and the preference and RL stages least.
    public var defaultLearningRate: Float {
        switch self {
        case .pretrain: 3e-3
        case .sft, .distill: 1e-3
        case .orpo: 5e-4
        case .dpo: 2e-4
        case .grpo: 1e-4
        }
    }

    /// Optimisation settings with this stage's defaults for the learning rate and anchor.
    public var defaultOptimization: OptimizationSettings {
        var settings = OptimizationSettings()
        settings.learningRate = defaultLearningRate
        settings.lambdas.routerKL = defaultAnchor
        return settings
    }

    public static func < (a: TrainingStage, b: TrainingStage) -> Bool { a.number < b.number }
}

/// DPO's settings.
public struct DPOSettings: Sendable, Equatable {
    /// β: how far the policy may move from the reference; default 0.1.
    public var beta: Float = 0.1
    /// Defaults.
    public init() {}
}

/// ORPO's settings.
public struct ORPOSettings: Sendable, Equatable {
    /// λ: the weight of the odds-ratio term; default 0.1.
    public var lambda: Float = 0.1
    /// Defaults.
    public init() {}
}

/// GRPO's settings.
public struct GRPOSettings: Sendable, Equatable {
    /// G: completions sampled per prompt; default 4.
    public var groupSize = 4
    /// ε of the clipped ratio; default 0.2.
    public var clipEpsilon: Float = 0.2
    /// β of the KL penalty to the reference; default 0.04.
    public var klBeta: Float = 0.04
    /// Sampling temperature of the rollouts; default 1.
    public var temperature: Float = 1
    /// Sample among the k most likely tokens (0 = all); default 0.
    public var topK = 0
    /// The reward, by name (`Rewards.names`); default `definition-f1`.
    public var reward = DefinitionReward.rewardName
    /// The model directory of the `model-likelihood` reward.
    public var rewardModel: URL?
    /// Defaults.
    public init() {}
}

/// Distillation's settings.
public struct DistillationSettings: Sendable, Equatable {
    /// The teacher's model directory: any loadable model with the student's tokenizer.
    public var teacher: URL
    /// α: the weight of the soft (teacher) term; default 0.7.
    public var alpha: Float = 0.7
    /// T: the softmax temperature of both distributions; default 4.
    public var temperature: Float = 4

    /// Settings distilling from `teacher`.
    public init(teacher: URL) {
        self.teacher = teacher
    }
}

/// What a fine-tuning stage optimises, with its own settings.
public enum StageObjectiveSettings: Sendable, Equatable {
    case sft
    case dpo(DPOSettings)
    case orpo(ORPOSettings)
    case grpo(GRPOSettings)
    case distill(DistillationSettings)

    /// The stage these settings train.
    public var stage: TrainingStage {
        switch self {
        case .sft: .sft
        case .dpo: .dpo
        case .orpo: .orpo
        case .grpo: .grpo
        case .distill: .distill
        }
    }
}

/// Everything a fine-tuning stage (2–6) is told.
public struct StageSettings: Sendable {
    /// The objective and its settings.
    public var objective: StageObjectiveSettings
    /// The checkpoint the stage starts from (a Chronos model directory with its tokenizer):
    /// the previous stage's output. DPO and GRPO keep it, frozen, as the reference model.
    public var start: URL
    /// The run directory (model, snapshots, metrics, result).
    public var output: URL
    /// Training data: conversations (SFT, distillation), preference pairs (DPO, ORPO) or
    /// prompts with references (GRPO), JSON Lines, plain or gzipped.
    public var data: URL
    /// Held-out data of the same kind; nil holds out the last 5 % of `data`.
    public var heldOut: URL?
    /// Prompts with reference definitions (the GRPO format) for SFT's generation evaluation;
    /// nil derives them from the held-out conversations.
    public var evaluationPrompts: URL?
    /// Optimisation settings.
    public var optimization: OptimizationSettings
    /// Sequences longer than this many tokens are cut.
    public var maxSequenceLength = 256
    /// Evaluate every this many steps (0 = only at the end).
    public var evaluateEvery = 100
    /// Held-out examples scored by loss or preference per evaluation.
    public var evaluationExamples = 64
    /// Held-out prompts answered by greedy generation per evaluation (definition F1, reward).
    public var generationExamples = 16
    /// At most this many tokens per generated answer (evaluation and GRPO rollouts).
    public var maxNewTokens = 64
    /// Evaluate before the first step as well, for a before/after comparison.
    public var evaluateAtStart = true
    /// Write a snapshot every this many steps (0 = only at the end).
    public var checkpointEvery = 200
    /// Stop (after a snapshot) once this much wall time has passed, if set.
    public var timeLimit: Double?

    /// Settings for `objective` on `data`, starting from `start` and writing into `output`,
    /// with the stage's default optimisation settings.
    public init(objective: StageObjectiveSettings, start: URL, output: URL, data: URL, heldOut: URL? = nil) {
        self.objective = objective
        self.start = start
        self.output = output
        self.data = data
        self.heldOut = heldOut
        optimization = objective.stage.defaultOptimization
    }
}

/// Events of a fine-tuning stage, for a progress display.
public enum StageEvent {
    /// Data and model are ready; `resumedAt` is the step a resumed run continues from.
    case started(stage: TrainingStage, parameters: Int, trainExamples: Int, heldOutExamples: Int, resumedAt: Int)
    /// An optimiser step finished.
    case step(StepReport, elapsed: Double)
    /// Held-out metrics after `step` (0: before training).
    case evaluated(step: Int, metrics: [String: Double])
    /// A snapshot of `step` was written.
    case checkpoint(step: Int)
}

/// Held-out metrics at one step.
public struct StageEvaluation: Codable, Sendable, Equatable {
    /// The step evaluated after (0: before training).
    public var step: Int
    /// Metric values by name.
    public var metrics: [String: Double]

    /// An evaluation at `step`.
    public init(step: Int, metrics: [String: Double]) {
        self.step = step
        self.metrics = metrics
    }
}

/// What a finished stage did: written as `result.json` in its run directory and collected
/// into the pipeline report.
public struct StageResult: Codable, Sendable, Equatable {
    /// The stage.
    public var stage: TrainingStage
    /// Optimiser steps completed.
    public var steps: Int
    /// Wall time spent training, over all resumed runs.
    public var seconds: Double
    /// Every held-out evaluation, in step order.
    public var evaluations: [StageEvaluation]
    /// Mean training values (loss and its parts) over the last steps.
    public var training: [String: Double]
    /// The run directory.
    public var output: String

    /// A result with every field given.
    public init(
        stage: TrainingStage, steps: Int, seconds: Double, evaluations: [StageEvaluation], training: [String: Double],
        output: String
    ) {
        self.stage = stage
        self.steps = steps
        self.seconds = seconds
        self.evaluations = evaluations
        self.training = training
        self.output = output
    }

    /// The metrics before training, when they were measured.
    public var initial: [String: Double]? { evaluations.first { $0.step == 0 }?.metrics }
    /// The last metrics measured.
    public var final: [String: Double] { evaluations.last?.metrics ?? [:] }

    /// The file name of a result inside a run directory.
    public static let fileName = "result.json"

    /// Reads the result of the run directory `directory`, or nil when it has none.
    public static func read(from directory: URL) throws -> StageResult? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try JSONDecoder().decode(StageResult.self, from: Data(contentsOf: url))
    }
}

/// The ranges of the settings every run takes, checked under their pipeline-configuration
/// names by `PretrainSettings`, `StageSettings` and `PipelineStage`.
enum RunSettingChecks {
    /// `eval_every`, `checkpoint_every` (0: only at the end) and `max_minutes` (from seconds).
    static func schedule(evaluateEvery: Int, checkpointEvery: Int, timeLimit: Double?) throws(InvalidSetting) {
        try InvalidSetting.check("eval_every", evaluateEvery, in: 0...100_000_000)
        try InvalidSetting.check("checkpoint_every", checkpointEvery, in: 0...100_000_000)
        try InvalidSetting.check("max_minutes", timeLimit.map { $0 / 60 }, in: Double.ulpOfOne...1e7)
    }

    /// `seq_len` (at most `context` positions) and `eval_sequences` of pretraining.
    static func pretraining(sequenceLength: Int, evaluationSequences: Int, context: Int?) throws(InvalidSetting) {
        try InvalidSetting.check("seq_len", sequenceLength, in: 2...(context ?? ConfigurationLimits.positions.upperBound))
        try InvalidSetting.check("eval_sequences", evaluationSequences, in: 1...1_000_000)
    }

    /// `max_length`, `eval_examples`, `generation_examples` and `max_new_tokens` of fine-tuning.
    static func fineTuning(maxSequenceLength: Int, evaluationExamples: Int, generationExamples: Int, maxNewTokens: Int)
        throws(InvalidSetting)
    {
        try InvalidSetting.check("max_length", maxSequenceLength, in: 2...ConfigurationLimits.positions.upperBound)
        try InvalidSetting.check("eval_examples", evaluationExamples, in: 1...1_000_000)
        try InvalidSetting.check("generation_examples", generationExamples, in: 0...1_000_000)
        try InvalidSetting.check("max_new_tokens", maxNewTokens, in: 1...1_000_000)
    }
}

extension StageObjectiveSettings {
    /// Throws the first setting outside its range, named as in a pipeline configuration.
    public func validate() throws(InvalidSetting) {
        switch self {
        case .sft: break
        case .dpo(let dpo): try InvalidSetting.check("beta", dpo.beta, in: Float.leastNonzeroMagnitude...1000)
        case .orpo(let orpo): try InvalidSetting.check("lambda", orpo.lambda, in: 0...1000)
        case .grpo(let grpo):
            try InvalidSetting.check("group_size", grpo.groupSize, in: 2...1024)
            try InvalidSetting.check("clip_epsilon", grpo.clipEpsilon, in: 0...1)
            try InvalidSetting.check("kl_beta", grpo.klBeta, in: 0...1000)
            try InvalidSetting.check("temperature", grpo.temperature, in: 0...100)
            try InvalidSetting.check("top_k", grpo.topK, in: 0...Int.max)
        case .distill(let distill):
            try InvalidSetting.check("alpha", distill.alpha, in: 0...1)
            try InvalidSetting.check("temperature", distill.temperature, in: 0.01...100)
        }
    }
}

extension StageSettings {
    /// Throws the first setting outside its range, named as in a pipeline configuration.
    public func validate() throws(InvalidSetting) {
        try optimization.validate()
        try objective.validate()
        try RunSettingChecks.schedule(evaluateEvery: evaluateEvery, checkpointEvery: checkpointEvery, timeLimit: timeLimit)
        try RunSettingChecks.fineTuning(
            maxSequenceLength: maxSequenceLength, evaluationExamples: evaluationExamples,
            generationExamples: generationExamples, maxNewTokens: maxNewTokens)
    }
}
