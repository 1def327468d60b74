import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Why a pipeline cannot go on.
public enum PipelineError: Error, CustomStringConvertible {
    /// A fine-tuning stage has nothing to start from.
    case noStartingCheckpoint(TrainingStage)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .noStartingCheckpoint(let stage):
            "stage \(stage.rawValue) has no checkpoint to start from: add a pretrain stage or a top-level \"start\""
        }
    }
}

/// Events of a pipeline run, for a progress display.
public enum PipelineEvent {
    /// A stage begins (or continues, when `resuming`).
    case stageStarted(TrainingStage, resuming: Bool)
    /// A stage was already complete and is not run again.
    case stageSkipped(StageResult)
    /// Progress of the pretraining stage.
    case pretrain(PretrainEvent)
    /// Progress of a fine-tuning stage.
    case stage(StageEvent)
    /// A stage finished.
    case stageFinished(StageResult)
    /// The report was (re)written.
    case reportWritten(markdown: URL, json: URL)
}

/// The report of a pipeline run: each stage's result, written as `report.json` and `report.md`
/// in the pipeline's run directory after every stage.
public struct PipelineReport: Codable, Sendable, Equatable {
    /// The configuration file.
    public var configuration: String
    /// Whether every configured stage is done.
    public var complete: Bool
    /// The results of the stages done, in order.
    public var stages: [StageResult]

    /// The metric most worth a glance per stage, shown first in the summary table.
    static let headline: [TrainingStage: [String]] = [
        .pretrain: ["heldout_ce"], .sft: ["definition_f1", "heldout_ce"], .dpo: ["preference_accuracy", "reward_margin"],
        .orpo: ["preference_accuracy", "heldout_nll"], .grpo: ["mean_reward", "definition_f1"],
        .distill: ["heldout_ce", "teacher_heldout_ce"]
    ]

    /// The report as Markdown: a summary table, then every metric of each stage before and after.
    public var markdown: String {
        func value(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "–" }
        var lines = [
            "# Chronos pipeline report", "",
            "Configuration: `\(configuration)`. "
                + (complete ? "All stages are complete." : "Not every stage is complete yet."), "",
            "| stage | steps | time | headline metrics (before → after) | router KL drift |",
            "| --- | ---: | ---: | --- | ---: |"
        ]
        for result in stages {
            let headline = (Self.headline[result.stage] ?? []).map { name in
                "\(name) \(value(result.initial?[name])) → \(value(result.final[name]))"
            }.joined(separator: "; ")
            lines.append(
                "| \(result.stage.number). \(result.stage.rawValue) | \(result.steps) | "
                    + String(format: "%.0f s", result.seconds) + " | \(headline) | \(value(result.final["router_kl_drift"])) |")
        }
        for result in stages {
            lines += [
                "", "## \(result.stage.number). \(result.stage.rawValue)", "",
                "Run directory `\(result.output)`; \(result.steps) steps in " + String(format: "%.0f s.", result.seconds), "",
                "| metric | before | after |", "| --- | ---: | ---: |"
            ]
            for name in result.final.keys.sorted() {
                lines.append("| \(name) | \(value(result.initial?[name])) | \(value(result.final[name])) |")
            }
            if !result.training.isEmpty {
                lines += [
                    "",
                    "Training (mean of the last steps): "
                        + result.training.keys.sorted().map { "\($0) \(value(result.training[$0]))" }.joined(separator: ", ") + "."
                ]
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `report.json` and `report.md` into `directory`; returns their locations.
    @discardableResult
    public func write(to directory: URL) throws -> (markdown: URL, json: URL) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = directory.appendingPathComponent("report.json"), markdown = directory.appendingPathComponent("report.md")
        try AtomicFile.write(encoder.encode(self), to: json)
        try AtomicFile.write(Data(self.markdown.utf8), to: markdown)
        return (markdown, json)
    }
}

/// Runs the stages of a pipeline configuration in order, each starting from the previous
/// stage's checkpoint. Every stage snapshots as it goes and records `result.json` when done,
/// so running the same configuration again skips finished stages and resumes the interrupted
/// one from its latest snapshot.
public final class PipelineRun {
    /// The configuration.
    public let configuration: PipelineConfiguration

    /// A run of `configuration`.
    public init(configuration: PipelineConfiguration) {
        self.configuration = configuration
    }

    /// Runs (or continues) the pipeline; returns the report, also written to the run directory.
    /// A stage stopped by its time limit ends the run with an incomplete report.
    @discardableResult
    public func run(onEvent: (PipelineEvent) throws -> Void = { _ in }) throws -> PipelineReport {
        var previous = configuration.start
        var results: [StageResult] = []
        var report = PipelineReport(configuration: configuration.file, complete: false, stages: [])
        for stage in configuration.stages {
            let directory = configuration.directory(of: stage.stage)
            if let done = try StageResult.read(from: directory), done.steps >= stage.optimization.steps {
                try onEvent(.stageSkipped(done))
                results.append(done)
                previous = directory
                continue
            }
            try onEvent(.stageStarted(stage.stage, resuming: try Checkpoint.latest(in: directory) != nil))
            let result: StageResult
            if let objective = stage.objective {
                guard let start = previous else { throw PipelineError.noStartingCheckpoint(stage.stage) }
                var settings = StageSettings(
                    objective: objective, start: start, output: directory, data: stage.data, heldOut: stage.heldOut)
                settings.optimization = stage.optimization
                settings.evaluateEvery = stage.evaluateEvery
                settings.checkpointEvery = stage.checkpointEvery
                settings.timeLimit = stage.timeLimit
                settings.maxSequenceLength = stage.maxSequenceLength
                settings.evaluationExamples = stage.evaluationExamples
                settings.generationExamples = stage.generationExamples
                settings.maxNewTokens = stage.maxNewTokens
                settings.evaluationPrompts = stage.evaluationPrompts
                settings.evaluateAtStart = stage.evaluateAtStart
                result = try FineTuneRun(settings: settings).run(start: .resumeIfAny) { try onEvent(.stage($0)) }
            } else {
                result = try pretrain(stage, into: directory, onEvent: onEvent)
            }
            results.append(result)
            report.stages = results
            let written = try report.write(to: configuration.output)
            try onEvent(.reportWritten(markdown: written.markdown, json: written.json))
            guard result.steps >= stage.optimization.steps else { return report }
            try onEvent(.stageFinished(result))
            previous = directory
        }
        report.stages = results
        report.complete = true
        let written = try report.write(to: configuration.output)
        try onEvent(.reportWritten(markdown: written.markdown, json: written.json))
        return report
    }

    /// Stage 1, with a tokenizer trained on its data first when the configuration names none;
    /// the final held-out cross-entropy and router drift are measured on the saved model.
    private func pretrain(_ stage: PipelineStage, into directory: URL, onEvent: (PipelineEvent) throws -> Void) throws -> StageResult {
        let started = Date()
        let tokenizer = try configuration.tokenizer ?? trainTokenizer(on: stage.data)
        var settings = PretrainSettings(
            model: configuration.model, optimization: stage.optimization, data: stage.data,
            heldOut: stage.heldOut, tokenizer: tokenizer, output: directory)
        settings.sequenceLength = stage.sequenceLength
        settings.evaluateEvery = stage.evaluateEvery
        settings.evaluationSequences = stage.evaluationSequences
        settings.checkpointEvery = stage.checkpointEvery
        settings.timeLimit = stage.timeLimit
        let run = try PretrainRun(settings: settings)
        var evaluations: [StageEvaluation] = [], recent: [[String: Float]] = [], unigram = 0.0
        try run.run(start: .resumeIfAny) { event in
            switch event {
            case .started(_, _, _, let unigramCrossEntropy, _): unigram = unigramCrossEntropy
            case .step(let report, _, _): recent = Array((recent + [report.parts]).suffix(10))
            case .evaluated(let step, let crossEntropy):
                evaluations.append(StageEvaluation(step: step, metrics: ["heldout_ce": crossEntropy]))
            case .checkpoint: break
            }
            try onEvent(.pretrain(event))
        }
        guard let snapshot = try Checkpoint.latest(in: directory) else {
            throw CheckpointError.missingFile(directory.appendingPathComponent("checkpoints"))
        }
        let restored = try Checkpoint.restore(snapshot: snapshot, into: AdamW())
        let model = try TransformerLanguageModel(directory: snapshot)
        let drift = try HeldOutScoring.routerDrift(
            model, referenceRouters: ChronosTrainer.referenceRouters(fromFrozen: restored.frozen),
            sequences: run.heldOutInputs(stage.evaluationSequences))
        let step = restored.state.step
        evaluations.removeAll { $0.step == step }
        evaluations.append(
            StageEvaluation(
                step: step,
                metrics: [
                    "heldout_ce": try run.evaluate(model), "unigram_ce": unigram,
                    "router_kl_drift": drift
                ]))
        var training: [String: Double] = [:]
        for parts in recent { for (name, value) in parts { training[name, default: 0] += Double(value) / Double(recent.count) } }
        let result = StageResult(
            stage: .pretrain, steps: step, seconds: Date().timeIntervalSince(started), evaluations: evaluations,
            training: training, output: directory.path)
        if step >= stage.optimization.steps {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(result), to: directory.appendingPathComponent(StageResult.fileName))
        }
        return result
    }

    /// A byte-level BPE tokenizer of `vocabularySize` tokens trained on `data`, kept in
    /// `OUTPUT/tokenizer` (and reused when already there).
    private func trainTokenizer(on data: URL) throws -> URL {
        let directory = configuration.output.appendingPathComponent("tokenizer")
        if ModelDirectory(directory).hasTokenizer { return directory }
        var trainer = TokenizerTrainer(vocabularySize: configuration.vocabularySize)
        try trainer.add(jsonl: data)
        try trainer.train().writeChatTokenizer(into: directory)
        return directory
    }
}
