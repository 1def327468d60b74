import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// Why a fine-tuning stage cannot run.
public enum FineTuneError: Error, CustomStringConvertible {
    /// The run directory holds snapshots of another stage.
    case stageMismatch(directory: URL, found: String, expected: TrainingStage)
    /// After holding out evaluation data no training examples are left.
    case noTrainingExamples(file: URL)
    /// The teacher's vocabulary does not match the student's tokenizer.
    case teacherVocabulary(URL, reason: String)
    /// The stage would start from a model with quantised weights; training computes in float.
    case quantizedStart(directory: URL, tensor: String, dtype: String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .stageMismatch(let directory, let found, let expected):
            "\(directory.path) holds a \(found) run, not \(expected.rawValue); choose another --out or drop --resume"
        case .noTrainingExamples(let file): "\(file.path) leaves no training examples after holding out evaluation data"
        case .teacherVocabulary(let url, let reason): "the teacher \(url.path) does not share the student's tokenizer: \(reason)"
        case .quantizedStart(let directory, let tensor, let dtype):
            "\(directory.path) has quantised weights (\(tensor) is \(dtype)), and training computes in float: start from the float model and quantise the result"
        }
    }
}

/// What one fine-tuning stage trains on and for: how a step's examples become per-sequence
/// losses, and how the model is scored on held-out data.
protocol StageObjective: AnyObject {
    /// What one loss is computed on (a sequence, a preference pair, a sampled completion).
    associatedtype Unit
    /// Training examples.
    var trainingCount: Int { get }
    /// Held-out examples.
    var heldOutCount: Int { get }
    /// The units of one optimiser step drawn from training examples `indices` (tokenising
    /// them, or sampling completions with the trainer's generator).
    func units(forExamples indices: [Int], trainer: ChronosTrainer) throws -> [Unit]
    /// The loss of one unit run through `pass`'s model, recorded for autograd, Chronos terms included.
    func loss(_ unit: Unit, pass: TrainingPass, trainer: ChronosTrainer) throws -> SequenceLoss
    /// Held-out metrics of the trainer's current model.
    func evaluate(_ trainer: ChronosTrainer) throws -> [String: Double]
}

/// What every objective of a run shares: the settings, the tokenizer and chat template, and
/// the starting checkpoint, which is also the frozen reference model.
final class StageContext {
    let settings: StageSettings
    let encoder: ChatEncoder
    /// The model at the start of the stage; never trained.
    let start: TransformerLanguageModel
    /// Its configuration.
    let startConfiguration: ChronosConfiguration
    /// Ids that end an answer: the model's EOS ids and `<|im_end|>`.
    let stopTokens: Set<Int>

    init(settings: StageSettings) throws {
        self.settings = settings
        encoder = try ChatEncoder(directory: settings.start)
        startConfiguration = try ChronosConfiguration(directory: settings.start)
        start = try ModelLoader.load(directory: settings.start)
        if let quantized = start.namedParameters().first(where: { $0.tensor.dtype.isQuantized }) {
            throw FineTuneError.quantizedStart(directory: settings.start, tensor: quantized.name, dtype: quantized.tensor.dtype.rawValue)
        }
        stopTokens = Set(start.summary.eosTokenIds).union([encoder.endOfTurn])
    }

    /// A conversation's tokens, cut to the maximum length.
    func sequence(_ messages: [ChatMessage], loss: AssistantLoss = .allTurns) throws -> ChatSequence {
        try encoder.encode(messages, loss: loss).truncated(to: settings.maxSequenceLength)
    }

    /// Training and held-out records: the held-out file's, or the last 5 % of the training file's.
    func split<Record>(_ load: (URL) throws -> [Record]) throws -> (train: [Record], heldOut: [Record]) {
        let all = try load(settings.data)
        if let heldOut = settings.heldOut { return (all, try load(heldOut)) }
        let cut = all.count - max(1, all.count / 20)
        guard cut > 0 else { throw FineTuneError.noTrainingExamples(file: settings.data) }
        return (Array(all[..<cut]), Array(all[cut...]))
    }

    /// Greedy answers of `model` to `prompts`.
    func greedyAnswers(_ model: any LanguageModel, _ prompts: [DefinitionPrompt]) throws -> [String] {
        let ids = try prompts.map { try encoder.encodePrompt($0.prompt) }
        return try HeldOutScoring.greedyAnswers(
            model, prompts: ids, encoder: encoder, maxTokens: settings.maxNewTokens,
            stopTokens: stopTokens
        ).map(\.text)
    }
}

/// A fine-tuning stage (SFT, DPO, ORPO, GRPO, distillation) on top of the shared trainer:
/// loads the starting checkpoint, draws shuffled examples, takes optimiser steps on the stage's
/// objective plus the Chronos terms (with the router anchor against the stage start),
/// evaluates on held-out data, and writes resumable snapshots like stage 1.
///
/// The run directory holds the latest model (with the starting checkpoint's tokenizer files),
/// `checkpoints/`, `metrics.jsonl` (one line per step and per evaluation), its chart `loss.svg` and, once the last
/// step is done, `result.json` (`StageResult`).
public final class FineTuneRun {
    /// The settings of the run.
    public let settings: StageSettings
    let context: StageContext
    let objective: any StageObjective

    /// Loads the starting checkpoint and the data; `reward` replaces the GRPO reward named in
    /// the settings. Fails with the file and line of a malformed record.
    public init(settings: StageSettings, reward: (any RewardFunction)? = nil) throws {
        try settings.validate()
        self.settings = settings
        context = try StageContext(settings: settings)
        switch settings.objective {
        case .sft: objective = try SFTObjective(context)
        case .dpo(let dpo): objective = try PreferenceObjective(context, kind: .dpo(dpo))
        case .orpo(let orpo): objective = try PreferenceObjective(context, kind: .orpo(orpo))
        case .grpo(let grpo): objective = try GRPOObjective(context, settings: grpo, reward: reward)
        case .distill(let distill): objective = try DistillationObjective(context, settings: distill)
        }
    }

    /// The stage this run trains.
    public var stage: TrainingStage { settings.objective.stage }

    /// Trains until `settings.optimization.steps` (or the time limit), starting as `start` says
    /// (anew, or from the run directory's newest valid snapshot); reports progress to
    /// `onEvent`, which may throw to stop the run. Returns what the stage did so far.
    @discardableResult
    public func run(start: RunStart, onEvent: (StageEvent) throws -> Void = { _ in }) throws -> StageResult {
        try run(objective, start: start, onEvent: onEvent)
    }

    private func run<Objective: StageObjective>(
        _ objective: Objective, start: RunStart,
        onEvent: (StageEvent) throws -> Void
    ) throws -> StageResult {
        let resumeFrom = try Checkpoint.prepare(runDirectory: settings.output, start: start)
        let started = Date()
        let optimization = settings.optimization
        var weights = Dictionary(uniqueKeysWithValues: context.start.namedParameters().map { ($0.name, $0.tensor) })
        var state = TrainingState(step: 0, batchesSeen: 0, randomState: 0, tokensSeen: 0, settings: recordedSettings)
        let optimizer = AdamW(settings: optimization.adam)
        var referenceRouters: [Int: Tensor]? = nil
        var progress = StageProgress()
        if let snapshot = resumeFrom {
            let restored = try Checkpoint.restore(snapshot: snapshot, into: optimizer)
            let found = restored.state.settings["stage"] ?? "unknown"
            guard found == stage.rawValue else {
                throw FineTuneError.stageMismatch(directory: settings.output, found: found, expected: stage)
            }
            let saved = try TransformerLanguageModel(directory: snapshot)
            weights = Dictionary(uniqueKeysWithValues: saved.namedParameters().map { ($0.name, $0.tensor) })
            state = restored.state
            referenceRouters = ChronosTrainer.referenceRouters(fromFrozen: restored.frozen)
            progress = try StageProgress.read(from: snapshot)
        }
        let trainer = try ChronosTrainer(
            configuration: context.startConfiguration, weights: weights, settings: optimization,
            referenceRouters: referenceRouters, optimizer: optimizer)
        trainer.restore(step: state.step, randomState: state.step == 0 ? trainer.random.state : state.randomState)
        var order = ExampleOrder(
            count: objective.trainingCount, seed: optimization.seed,
            drawn: state.batchesSeen * optimization.batchSize)
        try onEvent(
            .started(
                stage: stage, parameters: trainer.parameters.reduce(0) { $0 + $1.tensor.count },
                trainExamples: objective.trainingCount, heldOutExamples: objective.heldOutCount, resumedAt: state.step))
        let log = MetricsLog(url: settings.output.appendingPathComponent("metrics.jsonl"))

        func evaluate() throws {
            let metrics = try objective.evaluate(trainer)
            progress.evaluations.removeAll { $0.step == trainer.step }
            progress.evaluations.append(StageEvaluation(step: trainer.step, metrics: metrics))
            try onEvent(.evaluated(step: trainer.step, metrics: metrics))
            try log.append(metrics.mapKeys { "eval_" + $0 }.merging(["step": Double(trainer.step)]) { a, _ in a })
        }
        if state.step == 0 && settings.evaluateAtStart { try evaluate() }

        var recent: [[String: Float]] = []
        while trainer.step < optimization.steps {
            let indices = order.next(optimization.batchSize * optimization.accumulation)
            let units = try objective.units(forExamples: indices, trainer: trainer)
            let report = try trainer.trainStep(units) { pass, unit in try objective.loss(unit, pass: pass, trainer: trainer) }
            state.step = trainer.step
            state.batchesSeen += optimization.accumulation
            state.tokensSeen += report.tokens
            state.randomState = trainer.random.state
            recent = Array((recent + [report.parts]).suffix(10))
            let runTime = Date().timeIntervalSince(started)
            try onEvent(.step(report, elapsed: progress.seconds + runTime))
            try log.append(
                [
                    "step": Double(report.step), "lr": Double(report.learningRate), "grad_norm": Double(report.gradientNorm),
                    "seconds": report.seconds
                ].merging(report.parts.mapValues(Double.init)) { a, _ in a })
            let last = trainer.step == optimization.steps || settings.timeLimit.map { runTime >= $0 } ?? false
            if (settings.evaluateEvery > 0 && trainer.step % settings.evaluateEvery == 0) || last { try evaluate() }
            if (settings.checkpointEvery > 0 && trainer.step % settings.checkpointEvery == 0) || last {
                var saved = progress
                saved.seconds += Date().timeIntervalSince(started)
                try save(trainer, state: state, progress: saved)
                try LossCurve.write(runDirectory: settings.output, stage: stage)
                try onEvent(.checkpoint(step: trainer.step))
            }
            if last { break }
        }

        let finished = trainer.step == optimization.steps
        if finished, recent.isEmpty, let existing = try StageResult.read(from: settings.output) { return existing }
        var training: [String: Double] = [:]
        for parts in recent { for (name, value) in parts { training[name, default: 0] += Double(value) / Double(recent.count) } }
        let result = StageResult(
            stage: stage, steps: trainer.step, seconds: progress.seconds + Date().timeIntervalSince(started),
            evaluations: progress.evaluations.sorted { $0.step < $1.step }, training: training,
            output: settings.output.path)
        if finished {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(result), to: settings.output.appendingPathComponent(StageResult.fileName))
        }
        return result
    }

    private var recordedSettings: [String: String] {
        [
            "stage": stage.rawValue, "start": settings.start.path, "data": settings.data.path,
            "batch_size": String(settings.optimization.batchSize), "seed": String(settings.optimization.seed)
        ]
    }

    private func save(_ trainer: ChronosTrainer, state: TrainingState, progress: StageProgress) throws {
        try trainer.saveSnapshot(
            runDirectory: settings.output, state: state, tokenizerDirectory: settings.start,
            alsoWrite: progress.write(to:))
    }
}

/// What a snapshot records beyond the training state: wall time so far and the evaluations,
/// so a resumed stage reports the whole run.
struct StageProgress: Codable {
    static let fileName = "stage_progress.json"
    var seconds: Double = 0
    var evaluations: [StageEvaluation] = []

    static func read(from snapshot: URL) throws -> StageProgress {
        let url = snapshot.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return StageProgress() }
        do {
            return try JSONDecoder().decode(StageProgress.self, from: Data(contentsOf: url))
        } catch {
            throw CheckpointError.malformed(url, reason: "\(error)")
        }
    }

    func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(encoder.encode(self), to: directory.appendingPathComponent(Self.fileName))
    }
}

/// The order examples are drawn in: epoch after epoch, each a shuffle of all examples (the
/// shuffle of `PretrainingBatches`), a step's draw running on into the next epoch when one
/// ends. The number drawn so far is the whole cursor.
struct ExampleOrder {
    let count: Int
    let seed: UInt64
    private(set) var drawn: Int
    private var epoch = -1
    private var order: [Int] = []

    init(count: Int, seed: UInt64, drawn: Int = 0) {
        precondition(count > 0, "no examples to draw")
        self.count = count
        self.seed = seed
        self.drawn = drawn
    }

    /// The next `n` example indices.
    mutating func next(_ n: Int) -> [Int] {
        (0..<n).map { _ in
            if drawn / count != epoch {
                epoch = drawn / count
                order = PretrainingBatches.order(epoch: epoch, count: count, seed: seed)
            }
            defer { drawn += 1 }
            return order[drawn % count]
        }
    }
}

extension Dictionary {
    /// The same values under transformed keys.
    func mapKeys<Key2: Hashable>(_ transform: (Key) -> Key2) -> [Key2: Value] {
        [Key2: Value](uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
