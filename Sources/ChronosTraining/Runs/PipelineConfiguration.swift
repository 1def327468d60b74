import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// A configuration file that cannot be used.
public struct PipelineConfigurationError: Error, CustomStringConvertible {
    /// The file.
    public var file: String
    /// What is wrong, naming the stage and key.
    public var reason: String

    /// A one-line explanation.
    public var description: String { "\(file): \(reason)" }
}

/// One stage of a pipeline as the configuration file gives it.
public struct PipelineStage: Sendable {
    /// Which stage.
    public var stage: TrainingStage
    /// Training data.
    public var data: URL
    /// Held-out data.
    public var heldOut: URL?
    /// Optimisation settings (the stage's defaults where the file is silent).
    public var optimization: OptimizationSettings
    /// Evaluate every this many steps (0 = only at the end).
    public var evaluateEvery = 100
    /// Snapshot every this many steps (0 = only at the end).
    public var checkpointEvery = 200
    /// Stop the stage (and the pipeline, after a snapshot) after this many seconds.
    public var timeLimit: Double?
    /// Pretraining: tokens per sequence.
    public var sequenceLength = 256
    /// Pretraining: held-out sequences per evaluation.
    public var evaluationSequences = 16
    /// Fine-tuning: the objective and its settings (nil for pretraining).
    public var objective: StageObjectiveSettings?
    /// Fine-tuning: sequences are cut to this many tokens.
    public var maxSequenceLength = 256
    /// Fine-tuning: held-out examples scored per evaluation.
    public var evaluationExamples = 64
    /// Fine-tuning: held-out prompts answered by greedy generation per evaluation.
    public var generationExamples = 16
    /// Fine-tuning: at most this many tokens per generated answer.
    public var maxNewTokens = 64
    /// Fine-tuning: prompts with references for SFT's generation evaluation.
    public var evaluationPrompts: URL?
    /// Fine-tuning: evaluate before the first step too.
    public var evaluateAtStart = true

    /// A stage with defaults for everything but its data.
    public init(stage: TrainingStage, data: URL) {
        self.stage = stage
        self.data = data
        optimization = stage.defaultOptimization
    }

    /// The pretraining stage that `settings` describe (their model and tokenizer belong to the
    /// pipeline configuration).
    public init(pretraining settings: PretrainSettings) {
        self.init(stage: .pretrain, data: settings.data)
        heldOut = settings.heldOut
        optimization = settings.optimization
        evaluateEvery = settings.evaluateEvery
        checkpointEvery = settings.checkpointEvery
        timeLimit = settings.timeLimit
        sequenceLength = settings.sequenceLength
        evaluationSequences = settings.evaluationSequences
    }
}

extension PipelineStage {
    /// Throws the first setting outside its range, named by its key.
    public func validate() throws(InvalidSetting) {
        try optimization.validate()
        try objective?.validate()
        try RunSettingChecks.schedule(evaluateEvery: evaluateEvery, checkpointEvery: checkpointEvery, timeLimit: timeLimit)
        if stage == .pretrain {
            try RunSettingChecks.pretraining(sequenceLength: sequenceLength, evaluationSequences: evaluationSequences, context: nil)
        } else {
            try RunSettingChecks.fineTuning(
                maxSequenceLength: maxSequenceLength, evaluationExamples: evaluationExamples,
                generationExamples: generationExamples, maxNewTokens: maxNewTokens)
        }
    }
}

/// A pipeline configuration (`chronos pipeline --config FILE`): a JSON object
///
///     {
///       "output": "runs/pipeline",            // run directory; stage N writes into N-STAGE/
///       "model": {"hidden_size": 192, …},     // config.json fields of the model stage 1 creates
///       "tokenizer": "runs/tokenizer",        // or "vocab_size": 6400 to train one on stage 1's data
///       "start": "runs/base",                 // without a pretrain stage: where stage 2 starts
///       "defaults": {"batch_size": 8, …},     // stage keys for every stage that takes them
///       "stages": [
///         {"stage": "pretrain", "data": "data/austen/train.jsonl", "heldout": …, "steps": 1000, "seq_len": 256},
///         {"stage": "sft", "data": "data/wordnet/sft_train.jsonl.gz", "heldout": …, "eval_prompts": …},
///         {"stage": "dpo", "data": …, "beta": 0.1},
///         {"stage": "orpo", "data": …, "lambda": 0.1},
///         {"stage": "grpo", "data": …, "group_size": 4, "reward": "definition-f1"},
///         {"stage": "distill", "data": …, "teacher": "sft", "alpha": 0.7, "temperature": 4}
///       ]
///     }
///
/// Stages run in pipeline order, each at most once; any may be left out. Every stage takes
/// `data`, `heldout`, `steps`, `batch_size`, `accumulation`, `learning_rate`, `warmup_steps`,
/// `weight_decay`, `clip_norm`, `seed`, `lambda_balance`, `lambda_temporal`,
/// `lambda_lookahead`, `lambda_anchor`, `fallback_mask_probability`, `eval_every`,
/// `checkpoint_every` and `max_minutes`; pretraining `seq_len` and `eval_sequences`; the
/// fine-tuning stages `max_length`, `eval_examples`, `generation_examples`, `max_new_tokens`,
/// `eval_prompts` and `evaluate_at_start`, and their own keys (DPO `beta`; ORPO `lambda`;
/// GRPO `group_size`, `clip_epsilon`, `kl_beta`, `temperature`, `top_k`, `reward`,
/// `reward_model`; distillation `teacher` — a directory, or the name of an earlier stage —
/// `alpha`, `temperature`). Unknown keys are errors. Relative paths are relative to the
/// configuration file's directory.
public struct PipelineConfiguration: Sendable {
    /// The pipeline's run directory.
    public var output: URL
    /// The model stage 1 creates (vocabulary size taken from the tokenizer).
    public var model: ChronosConfiguration
    /// The tokenizer directory of stage 1, if given.
    public var tokenizer: URL?
    /// The vocabulary of a tokenizer trained for stage 1 when none is given.
    public var vocabularySize = 6400
    /// The checkpoint the first fine-tuning stage starts from when there is no pretraining stage.
    public var start: URL?
    /// The stages, in pipeline order.
    public var stages: [PipelineStage]
    /// The configuration file, for messages.
    public var file: String

    /// A configuration that pretrains `model` with the tokenizer in `tokenizer` (one trained
    /// on the first stage's data when nil) and runs `stages` into `output`.
    public init(output: URL, model: ChronosConfiguration, tokenizer: URL?, stages: [PipelineStage], file: String) {
        self.output = output
        self.model = model
        self.tokenizer = tokenizer
        self.stages = stages
        self.file = file
    }

    /// The run directory of `stage`: `OUTPUT/N-STAGE`.
    public func directory(of stage: TrainingStage) -> URL {
        Self.directory(of: stage, in: output)
    }

    /// The stages as they run in a pipeline writing into `output`: a distillation teacher that
    /// is one of this configuration's stages becomes that stage's directory there.
    public func stages(relocatedTo output: URL) -> [PipelineStage] {
        stages.map { stage in
            guard case .distill(var distillation) = stage.objective,
                let teacher = stages.first(where: {
                    directory(of: $0.stage).standardizedFileURL == distillation.teacher.standardizedFileURL
                })
            else { return stage }
            var relocated = stage
            distillation.teacher = Self.directory(of: teacher.stage, in: output)
            relocated.objective = .distill(distillation)
            return relocated
        }
    }

    static func directory(of stage: TrainingStage, in output: URL) -> URL {
        output.appendingPathComponent("\(stage.number)-\(stage.rawValue)")
    }

    /// Reads the configuration file at `url`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PipelineConfigurationError(file: url.path, reason: "cannot read: \(FileSystemError.reason(error))")
        }
        try self.init(json: data, baseDirectory: url.deletingLastPathComponent(), file: url.path)
    }

    /// Parses configuration JSON whose relative paths are relative to `baseDirectory`.
    public init(json: Data, baseDirectory: URL, file: String = "pipeline configuration") throws {
        self.file = file
        func fail(_ reason: String) -> PipelineConfigurationError { PipelineConfigurationError(file: file, reason: reason) }
        guard let root = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        let top = Fields(root, context: "the top level", base: baseDirectory, file: file)
        try top.allow(["output", "model", "tokenizer", "vocab_size", "start", "defaults", "stages"])
        output = try top.path("output") ?? { throw fail("no \"output\" directory") }()
        tokenizer = try top.path("tokenizer")
        vocabularySize = try top.int("vocab_size") ?? vocabularySize
        start = try top.path("start")
        if let modelObject = root["model"] {
            guard let object = modelObject as? [String: Any] else { throw fail("\"model\" is not an object") }
            do {
                model = try JSONDecoder().decode(ChronosConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
            } catch {
                throw fail("\"model\" is not a Chronos configuration: \(error)")
            }
            do { try model.validate(file: "\"model\"") } catch { throw fail("\(error)") }
        } else {
            model = ChronosConfiguration()
        }
        let defaults = root["defaults"].map { $0 as? [String: Any] } ?? [:]
        guard let defaults else { throw fail("\"defaults\" is not an object") }
        // A default applies to the stages that take its key; a key no stage takes is an error.
        try Fields(defaults, context: "defaults", base: baseDirectory, file: file)
            .allow(TrainingStage.allCases.reduce(into: Set<String>()) { $0.formUnion(Self.keys(of: $1)) }.subtracting(["stage"]))
        guard let list = root["stages"] as? [Any], !list.isEmpty else { throw fail("\"stages\" is not a non-empty list") }
        var stages: [PipelineStage] = []
        for (index, item) in list.enumerated() {
            guard let object = item as? [String: Any] else { throw fail("stages[\(index)] is not an object") }
            guard let name = object["stage"] as? String, let stage = TrainingStage(rawValue: name) else {
                throw fail("stages[\(index)] has no \"stage\" among \(TrainingStage.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let previous = stages.last, previous.stage >= stage {
                throw fail("stage \(stage.rawValue) comes after \(previous.stage.rawValue); stages run once each, in pipeline order")
            }
            let applicable = defaults.filter { Self.keys(of: stage).contains($0.key) }
            let fields = Fields(
                applicable.merging(object) { _, own in own }, context: "stage \(stage.rawValue)",
                base: baseDirectory, file: file)
            stages.append(try Self.stage(stage, fields, output: output, earlier: stages.map(\.stage)))
        }
        self.stages = stages
    }

    /// The keys a stage entry may have.
    static func keys(of stage: TrainingStage) -> Set<String> {
        var keys: Set<String> = [
            "stage", "data", "heldout", "steps", "batch_size", "accumulation", "learning_rate", "warmup_steps",
            "weight_decay", "clip_norm", "seed", "lambda_balance", "lambda_temporal", "lambda_lookahead",
            "lambda_anchor", "fallback_mask_probability", "eval_every", "checkpoint_every", "max_minutes"
        ]
        let fineTuning: Set<String> = [
            "max_length", "eval_examples", "generation_examples", "max_new_tokens", "eval_prompts",
            "evaluate_at_start"
        ]
        switch stage {
        case .pretrain: keys.formUnion(["seq_len", "eval_sequences"])
        case .sft: keys.formUnion(fineTuning)
        case .dpo: keys.formUnion(fineTuning.union(["beta"]))
        case .orpo: keys.formUnion(fineTuning.union(["lambda"]))
        case .grpo:
            keys.formUnion(fineTuning.union(["group_size", "clip_epsilon", "kl_beta", "temperature", "top_k", "reward", "reward_model"]))
        case .distill: keys.formUnion(fineTuning.union(["teacher", "alpha", "temperature"]))
        }
        return keys
    }

    private static func stage(
        _ stage: TrainingStage, _ f: Fields, output: URL,
        earlier: [TrainingStage]
    ) throws -> PipelineStage {
        try f.allow(keys(of: stage))
        guard let data = try f.path("data") else { throw f.error("no \"data\" file") }
        var s = PipelineStage(stage: stage, data: data)
        s.heldOut = try f.path("heldout")
        var o = s.optimization
        o.steps = try f.int("steps") ?? o.steps
        o.batchSize = try f.int("batch_size") ?? o.batchSize
        o.accumulation = try f.int("accumulation") ?? o.accumulation
        o.learningRate = try f.float("learning_rate") ?? o.learningRate
        o.warmupSteps = try f.int("warmup_steps") ?? o.warmupSteps
        o.adam.weightDecay = try f.float("weight_decay") ?? o.adam.weightDecay
        o.clipNorm = try f.float("clip_norm") ?? o.clipNorm
        o.seed = try f.int("seed").map(UInt64.init) ?? o.seed
        o.lambdas.balance = try f.float("lambda_balance") ?? o.lambdas.balance
        o.lambdas.temporal = try f.float("lambda_temporal") ?? o.lambdas.temporal
        o.lambdas.lookahead = try f.float("lambda_lookahead") ?? o.lambdas.lookahead
        o.lambdas.routerKL = try f.float("lambda_anchor") ?? o.lambdas.routerKL
        o.fallbackMaskProbability = try f.float("fallback_mask_probability") ?? o.fallbackMaskProbability
        s.optimization = o
        s.evaluateEvery = try f.int("eval_every") ?? s.evaluateEvery
        s.checkpointEvery = try f.int("checkpoint_every") ?? s.checkpointEvery
        s.timeLimit = try f.double("max_minutes").map { $0 * 60 }
        s.sequenceLength = try f.int("seq_len") ?? s.sequenceLength
        s.evaluationSequences = try f.int("eval_sequences") ?? s.evaluationSequences
        s.maxSequenceLength = try f.int("max_length") ?? s.maxSequenceLength
        s.evaluationExamples = try f.int("eval_examples") ?? s.evaluationExamples
        s.generationExamples = try f.int("generation_examples") ?? s.generationExamples
        s.maxNewTokens = try f.int("max_new_tokens") ?? s.maxNewTokens
        s.evaluationPrompts = try f.path("eval_prompts")
        s.evaluateAtStart = try f.bool("evaluate_at_start") ?? s.evaluateAtStart
        switch stage {
        case .pretrain: break
        case .sft: s.objective = .sft
        case .dpo:
            var dpo = DPOSettings()
            dpo.beta = try f.float("beta") ?? dpo.beta
            s.objective = .dpo(dpo)
        case .orpo:
            var orpo = ORPOSettings()
            orpo.lambda = try f.float("lambda") ?? orpo.lambda
            s.objective = .orpo(orpo)
        case .grpo:
            var grpo = GRPOSettings()
            grpo.groupSize = try f.int("group_size") ?? grpo.groupSize
            grpo.clipEpsilon = try f.float("clip_epsilon") ?? grpo.clipEpsilon
            grpo.klBeta = try f.float("kl_beta") ?? grpo.klBeta
            grpo.temperature = try f.float("temperature") ?? grpo.temperature
            grpo.topK = try f.int("top_k") ?? grpo.topK
            grpo.reward = try f.string("reward") ?? grpo.reward
            guard Rewards.names.contains(grpo.reward) else {
                throw f.error("\"reward\" must be one of \(Rewards.names.joined(separator: ", "))")
            }
            grpo.rewardModel = try f.path("reward_model")
            guard grpo.groupSize > 1 else { throw f.error("\"group_size\" must be at least 2 to compare completions") }
            s.objective = .grpo(grpo)
        case .distill:
            guard let teacher = try f.string("teacher") else { throw f.error("no \"teacher\" (a model directory or an earlier stage)") }
            let teacherURL: URL
            if let named = TrainingStage(rawValue: teacher) {
                guard earlier.contains(named) else { throw f.error("teacher stage \(teacher) does not run before distill") }
                teacherURL = directory(of: named, in: output)
            } else {
                teacherURL = try f.path("teacher")!
            }
            var distill = DistillationSettings(teacher: teacherURL)
            distill.alpha = try f.float("alpha") ?? distill.alpha
            distill.temperature = try f.float("temperature") ?? distill.temperature
            s.objective = .distill(distill)
        }
        do { try s.validate() } catch { throw f.error("\(error)") }
        return s
    }
}

/// Typed access to one object of the configuration, with errors that name it.
private struct Fields {
    let values: [String: Any]
    let context: String
    let base: URL
    let file: String

    init(_ values: [String: Any], context: String, base: URL, file: String) {
        self.values = values
        self.context = context
        self.base = base
        self.file = file
    }

    func error(_ reason: String) -> PipelineConfigurationError {
        PipelineConfigurationError(file: file, reason: "\(context): \(reason)")
    }

    func allow(_ keys: Set<String>) throws {
        if let unknown = values.keys.sorted().first(where: { !keys.contains($0) }) {
            throw error("unknown key \"\(unknown)\"")
        }
    }

    func number(_ key: String) throws -> NSNumber? {
        guard let value = values[key] else { return nil }
        guard let number = value as? NSNumber else { throw error("\"\(key)\" is not a number") }
        return number
    }

    func int(_ key: String) throws -> Int? {
        guard let number = try number(key) else { return nil }
        let value = number.doubleValue
        // 2⁵³: every whole number up to it converts exactly, and none converts with a trap.
        guard value == value.rounded(), value >= 0, value <= 9_007_199_254_740_992 else {
            throw error("\"\(key)\" \(number) is not a whole number between 0 and 2^53")
        }
        return Int(value)
    }

    func float(_ key: String) throws -> Float? { try number(key).map(\.floatValue) }
    func double(_ key: String) throws -> Double? { try number(key).map(\.doubleValue) }

    func bool(_ key: String) throws -> Bool? {
        guard let value = values[key] else { return nil }
        guard let flag = value as? Bool else { throw error("\"\(key)\" is not true or false") }
        return flag
    }

    func string(_ key: String) throws -> String? {
        guard let value = values[key] else { return nil }
        guard let text = value as? String, !text.isEmpty else { throw error("\"\(key)\" is not a non-empty string") }
        return text
    }

    func path(_ key: String) throws -> URL? {
        try string(key).map { $0.hasPrefix("/") ? URL(fileURLWithPath: $0) : base.appendingPathComponent($0) }
    }
}
