import ArgumentParser
import ChronosBench
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos tune`: a TPE study over pretraining settings.
struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search pretraining settings with a Tree-structured Parzen Estimator, each trial a short pretraining run.",
        discussion: """
            --space names the searched settings (a JSON search-space file, see docs/tuning.md) among \
            \(PretrainTuning.names.joined(separator: ", ")); every other setting comes from the shape and optimisation \
            flags, as for train pretrain. Each trial pretrains into STUDY/trials/N for --steps steps (or --max-minutes) \
            and is scored on the objectives: heldout-ce (held-out cross-entropy, lower is better), offload-stall \
            (chronos decode stall in ms per token at a 30 % expert budget on the simulated disk, lower is better) and \
            offload-speedup (chronos tokens/s over lru's at that budget, higher is better). With one objective, trials \
            whose held-out loss at an evaluation is above the median of finished trials' are pruned. Finished trials are \
            appended to STUDY/trials.jsonl; running the same command again resumes the study.
            """)

    @Option(help: "Search-space JSON file.") var space: String
    @Option(help: "Study directory: trials.jsonl and one run directory per trial.") var study: String
    @Option(parsing: .unconditional, help: "Trials the study should have when done (earlier runs' included).") var trials = 24
    @Option(help: "Objectives, comma-separated: \(TuneObjective.allCases.map(\.rawValue).joined(separator: ", ")).")
    var objectives = TuneObjective.heldOutCrossEntropy.rawValue
    @Option(parsing: .unconditional, help: "Random trials before TPE takes over.") var startupTrials = 10
    @Option(parsing: .unconditional, help: "Seed of the sampler.") var tuneSeed: UInt64 = 0
    @Flag var sampler = TPESampler.Mode.multivariate
    @Flag(help: "Never stop a trial early.") var noPrune = false
    @Option(help: "Write the best trial's settings as a pipeline configuration (chronos pipeline --config) here.")
    var applyBest: String?
    @Option(help: "Training JSONL.") var data = "data/austen/train.jsonl"
    @Option(help: "Held-out JSONL.") var heldout = "data/austen/heldout.jsonl"
    @Option(help: "Directory with tokenizer.json (default: one trained on --data into STUDY/tokenizer).") var tokenizer: String?
    @Option(parsing: .unconditional, help: "Vocabulary size of a tokenizer trained here.") var vocabSize = 2048
    @Option(parsing: .unconditional, help: "Tokens per training sequence.") var seqLen = 128
    @Option(parsing: .unconditional, help: "Evaluate held-out loss (and maybe prune) every N steps.") var evalEvery = 50
    @Option(parsing: .unconditional, help: "Held-out sequences per evaluation.") var evalSequences = 16
    @Option(parsing: .unconditional, help: "Stop each trial after this many minutes.") var maxMinutes: Double?
    @Option(parsing: .unconditional, help: "Offload objectives: simulated disk latency per read in ms.") var ssdMs = 0.1
    @Option(parsing: .unconditional, help: "Offload objectives: simulated disk bandwidth in MB/s.") var ssdMbps = 2000.0
    @OptionGroup var shape: ModelShapeOptions
    @OptionGroup var optimization: OptimizationOptions
    @OptionGroup var backend: BackendOption

    func validate() throws {
        _ = try chosenObjectives()
        try checkingOptions {
            try InvalidSetting.check("trials", trials, in: 1...100_000)
            try InvalidSetting.check("startup_trials", startupTrials, in: 0...100_000)
            try InvalidSetting.check("ssd_ms", ssdMs, in: 0...10_000)
            try InvalidSetting.check("ssd_mbps", ssdMbps, in: 1...1_000_000)
            try baseSettings(tokenizer: URL(fileURLWithPath: study)).validate()
        }
        _ = try searchSpace()
    }

    func chosenObjectives() throws -> [TuneObjective] {
        let names = objectives.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var chosen: [TuneObjective] = []
        for name in names {
            guard let objective = TuneObjective(rawValue: name), !chosen.contains(objective) else {
                throw ValidationError(
                    "--objectives '\(objectives)' is invalid: expected distinct names among \(TuneObjective.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            chosen.append(objective)
        }
        guard !chosen.isEmpty else { throw ValidationError("--objectives is empty: name at least one objective") }
        return chosen
    }

    /// The search space, checked against what pretraining accepts.
    func searchSpace() throws -> SearchSpace {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: space)) } catch {
            throw ValidationError("--space \(space): cannot read: \(FileSystemError.reason(error))")
        }
        do {
            let parsed = try SearchSpace(json: data)
            try PretrainTuning.validate(parsed, base: baseSettings(tokenizer: URL(fileURLWithPath: study)))
            return parsed
        } catch {
            throw ValidationError("--space \(space): \(error)")
        }
    }

    /// The settings every trial starts from.
    func baseSettings(tokenizer tokenizerDirectory: URL) -> PretrainSettings {
        var settings = PretrainSettings(
            model: shape.configuration, optimization: optimization.settings, data: URL(fileURLWithPath: data),
            heldOut: URL(fileURLWithPath: heldout), tokenizer: tokenizerDirectory, output: URL(fileURLWithPath: study))
        settings.model.vocabSize = vocabSize
        settings.sequenceLength = seqLen
        settings.evaluateEvery = evalEvery
        settings.evaluationSequences = evalSequences
        settings.checkpointEvery = 0
        settings.timeLimit = maxMinutes.map { $0 * 60 }
        return settings
    }

    func run() throws {
        try backend.apply()
        let directory = URL(fileURLWithPath: study)
        let chosen = try chosenObjectives()
        let tokenizerDirectory =
            try tokenizer.map { URL(fileURLWithPath: $0) }
            ?? TokenizerCommand.Train.trainedTokenizer(
                data: data, vocabSize: vocabSize, into: directory.appendingPathComponent("tokenizer"))
        let base = baseSettings(tokenizer: tokenizerDirectory)
        let header = StudyHeader(
            space: try searchSpace(), objectives: chosen.map { StudyObjective(name: $0.rawValue, direction: $0.direction) },
            sampler: sampler, settings: studySettings(base))
        let study = try Study(
            directory: directory, header: header, sampler: TPESampler(startupTrials: startupTrials, mode: sampler, seed: tuneSeed),
            pruner: noPrune || chosen.count > 1 ? nil : MedianPruner())
        if !study.log.trials.isEmpty { print("resuming: \(study.log.trials.count) of \(trials) trials already finished") }
        try study.run(
            trials: trials,
            objective: { try runTrial($0, base: base, objectives: chosen, directory: directory) },
            onTrial: { trial in
                let best = study.best.map { "#\($0.number)" }.joined(separator: ",")
                print("(\(study.log.trials.count)/\(trials)) " + Self.line(trial, objectives: chosen) + "  best: \(best)")
                fflush(nil)
            })
        report(study, objectives: chosen)
        if let applyBest, let best = study.best.first {
            var settings = PretrainTuning.apply(best.parameters, to: base)
            settings.output = directory.appendingPathComponent("best")
            try AtomicFile.write(try PretrainTuning.pipelineConfiguration(settings), to: URL(fileURLWithPath: applyBest))
            print("wrote trial \(best.number)'s settings to \(applyBest); train them with chronos pipeline --config \(applyBest)")
        }
    }

    /// Pretrains one trial and measures its objectives.
    func runTrial(_ trial: TrialContext, base: PretrainSettings, objectives: [TuneObjective], directory: URL) throws -> [Double] {
        let progress = ProgressLine()
        let steps = base.optimization.steps
        let trained: (settings: PretrainSettings, crossEntropy: Double)
        do {
            trained = try PretrainTuning.train(trial, base: base, study: directory) { event in
                if case .step(let report, let tokensPerSecond, _) = event {
                    progress.update(
                        String(
                            format: "trial %d: step %d/%d  loss %.4f  %.0f tok/s", trial.number, report.step, steps,
                            report.parts["loss"] ?? 0, tokensPerSecond),
                        fraction: Double(report.step) / Double(steps))
                }
            }
        } catch {
            progress.finish("")
            throw error
        }
        progress.finish("")
        let (settings, crossEntropy) = trained
        var offload: (stall: Double, speedup: Double)?
        return try objectives.map { objective -> Double in
            switch objective {
            case .heldOutCrossEntropy: return crossEntropy
            case .offloadStall, .offloadSpeedup:
                let measured = try offload ?? measureOffload(settings.output)
                offload = measured
                return objective == .offloadStall ? measured.stall : measured.speedup
            }
        }
    }

    /// Packs the trial's model and decodes the default prompts under lru and chronos at a 30 % budget.
    func measureOffload(_ model: URL) throws -> (stall: Double, speedup: Double) {
        try TrainedModelOffload.pack(model)
        let (lru, chronos) = try TrainedModelOffload(ssdMs: ssdMs, ssdMbps: ssdMbps).measure(model, budget: 0.3)
        return (chronos.stallMsPerToken, lru.tokensPerSecond > 0 ? chronos.tokensPerSecond / lru.tokensPerSecond : 0)
    }

    /// The settings that make two runs the same study.
    func studySettings(_ base: PretrainSettings) -> [String: String] {
        var settings: [String: String] = [
            "data": data, "heldout": heldout, "tokenizer": base.tokenizer.path, "seq_len": String(seqLen),
            "eval_every": String(evalEvery), "eval_sequences": String(evalSequences), "steps": String(optimization.steps),
            "max_minutes": maxMinutes.map { String($0) } ?? "none", "startup_trials": String(startupTrials),
            "seed": String(tuneSeed), "pruning": String(!noPrune)
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        if let model = try? encoder.encode(base.model) { settings["model"] = String(decoding: model, as: UTF8.self) }
        settings["optimization"] = String(describing: base.optimization)
        settings["ssd"] = "\(ssdMs) ms, \(ssdMbps) MB/s"
        return settings
    }

    /// A trial's number, values or state, and parameters, on one line.
    static func line(_ trial: TrialRecord, objectives: [TuneObjective]) -> String {
        let parameters = trial.parameters.keys.sorted().map { name in
            let value = trial.parameters[name]!
            return "\(name)=" + (value.number.map { String(format: "%.4g", $0) } ?? value.description)
        }
        let outcome =
            switch trial.state {
            case .complete: zip(objectives, trial.values).map { String(format: "%@ %.4f", $0.rawValue, $1) }.joined(separator: "  ")
            case .pruned: "pruned at step \(trial.intermediate.keys.max() ?? 0)"
            case .failed: "failed (a value that is not a finite number)"
            }
        return "trial #\(trial.number): \(outcome)  [\(parameters.joined(separator: " "))]"
    }

    /// The best trial, or the Pareto front.
    func report(_ study: Study, objectives: [TuneObjective]) {
        let best = study.best
        print(objectives.count > 1 ? "Pareto front (\(best.count) trials):" : "best trial:")
        for trial in best { print("  " + Self.line(trial, objectives: objectives)) }
    }
}

/// What a tuning trial is scored on.
enum TuneObjective: String, CaseIterable {
    /// Held-out cross-entropy at the end of the trial's training.
    case heldOutCrossEntropy = "heldout-ce"
    /// Decode stall per token of chronos at a 30 % budget on the simulated disk.
    case offloadStall = "offload-stall"
    /// Chronos's decode tokens/s over lru's at a 30 % budget on the simulated disk.
    case offloadSpeedup = "offload-speedup"

    var direction: ObjectiveDirection { self == .offloadSpeedup ? .maximize : .minimize }
}

extension TPESampler.Mode: EnumerableFlag {
    public static func help(for value: Self) -> ArgumentHelp? {
        switch value {
        case .independent: "TPE with one estimator per parameter (before multivariate became the default)."
        case .multivariate: "TPE with one joint estimator over the parameters without a condition; conditional ones one by one."
        }
    }
}
