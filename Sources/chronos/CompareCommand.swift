import ArgumentParser
import ChronosBench
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTraining
import Foundation

extension ParameterMatching: ExpressibleByArgument {}

/// `chronos compare`: a conventional MoE and a Chronos model trained alike, then measured alike.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract:
            "Train a conventional MoE and a Chronos model of the same size alike, then compare quality, speed, memory and offloading.",
        discussion: """
            The Chronos model has the shape the flags give (shared experts, lookahead head) and is trained with the \
            Chronos loss mix (--lambda-balance, --lambda-temporal, --lambda-lookahead, --lambda-anchor) and fallback \
            masking. The conventional model has the same vocabulary, attention and layers but no shared experts and no \
            lookahead head, and is trained with the load-balancing loss alone, as Mixtral-style models are; its routed \
            experts are resized (--match width or experts) until both models hold the same number of parameters \
            within --param-tolerance. Both see the same data in the same order for the same steps with the same seed. \
            With --stages, both then go through the fine-tuning stages of a pipeline configuration (the conventional \
            model again without the Chronos terms). Then both are measured: held-out cross-entropy on --heldout after \
            every stage; decode tokens/s and peak resident memory of a child chronos generate process per prompt of \
            --prompts, every expert in memory; and offloaded decoding under lru and chronos at each of --budgets on a \
            simulated disk, as bench offload measures it. Models and tokenizer go to --runs, where a record of the \
            settings lets the same command continue a comparison that was stopped: finished stages are kept, an \
            interrupted one resumes from its last snapshot, and the measurements are made again. The report \
            (report.md, report.json, loss.svg, offload.svg) goes to --out, which must not exist yet.
            """)

    @Option(help: "Report directory to create (report.md, report.json, loss.svg, offload.svg); must not exist.") var out: String
    @Option(
        help:
            "Directory for the tokenizer and the two models' pipeline runs (conventional, chronos); running again with the same options continues the comparison in it."
    ) var runs = "runs/compare"
    @Option(
        help:
            "A pipeline configuration (see chronos pipeline) whose fine-tuning stages both models run after pretraining; its output, start, model and tokenizer are not used."
    ) var stages: String?
    @Option(help: "Training JSONL.") var data = "data/austen/train.jsonl"
    @Option(help: "Held-out JSONL.") var heldout = "data/austen/heldout.jsonl"
    @Option(help: "Prompts for the decode and offload measurements, one per line.") var prompts = "data/austen/heldout-prompts.txt"
    @Option(help: "Directory with tokenizer.json (default: one trained on --data into RUNS/tokenizer).") var tokenizer: String?
    @Option(parsing: .unconditional, help: "Vocabulary size of a tokenizer trained here.") var vocabSize = 2048
    @Option(parsing: .unconditional, help: "Tokens per training sequence.") var seqLen = 128
    @Option(parsing: .unconditional, help: "Evaluate held-out cross-entropy every N steps.") var evalEvery = 50
    @Option(parsing: .unconditional, help: "Held-out sequences per evaluation.") var evalSequences = 32
    @Option(parsing: .unconditional, help: "Snapshot pretraining every N steps, where a stopped comparison continues from.")
    var checkpointEvery = 100
    @Option(help: "What the conventional model resizes to match the Chronos model's parameters: width or experts.")
    var match: ParameterMatching = .width
    @Option(parsing: .unconditional, help: "Largest relative difference of the two parameter counts (0.01 is 1 %).")
    var paramTolerance = 0.01
    @Option(parsing: .unconditional, help: "Tokens each decode child process generates per prompt.") var decodeTokens = 64
    @Option(parsing: .unconditional, help: "Tokens decoded per prompt in the offload measurements.") var offloadTokens = 32
    @Option(help: "Expert budgets of the offload measurements, comma-separated fractions of the expert bytes.")
    var budgets = "0.1,0.2,0.3,0.5,0.75"
    @Option(parsing: .unconditional, help: "Simulated disk latency per read in ms.") var ssdMs = 0.2
    @Option(parsing: .unconditional, help: "Simulated disk bandwidth in MB/s.") var ssdMbps = 1000.0
    @OptionGroup var shape: ModelShapeOptions
    @OptionGroup var optimization: OptimizationOptions
    @OptionGroup var backend: BackendOption

    /// The budgets as fractions, each checked to lie in (0, 1].
    func budgetFractions() throws -> [Double] {
        let parts = budgets.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var fractions: [Double] = []
        for part in parts {
            guard let value = Double(part), value > 0, value <= 1, !fractions.contains(value) else {
                throw ValidationError("--budgets '\(budgets)' is invalid: expected distinct fractions in (0, 1], comma-separated (0.1,0.3)")
            }
            fractions.append(value)
        }
        return fractions
    }

    func validate() throws {
        _ = try budgetFractions()
        _ = try alignmentConfiguration()
        try checkingOptions {
            try InvalidSetting.check("decode_tokens", decodeTokens, in: GenerationRequest.maxTokensRange)
            try InvalidSetting.check("offload_tokens", offloadTokens, in: GenerationRequest.maxTokensRange)
            try InvalidSetting.check("ssd_ms", ssdMs, in: 0...10_000)
            try InvalidSetting.check("ssd_mbps", ssdMbps, in: 1...1_000_000)
            let settings = chronosSettings(tokenizer: URL(fileURLWithPath: runs))
            try settings.validate()
            _ = try ParameterMatch(chronos: settings.model, matching: match, tolerance: paramTolerance)
        }
    }

    /// The Chronos run's settings, with the tokenizer in `tokenizerDirectory`.
    func chronosSettings(tokenizer tokenizerDirectory: URL) -> PretrainSettings {
        var settings = PretrainSettings(
            model: shape.configuration, optimization: optimization.settings, data: URL(fileURLWithPath: data),
            heldOut: URL(fileURLWithPath: heldout), tokenizer: tokenizerDirectory,
            output: URL(fileURLWithPath: runs).appendingPathComponent("chronos"))
        settings.model.vocabSize = vocabSize
        settings.sequenceLength = seqLen
        settings.evaluateEvery = evalEvery
        settings.evaluationSequences = evalSequences
        settings.checkpointEvery = checkpointEvery
        return settings
    }

    /// The pipeline configuration of `--stages`, if given. A pretraining stage there is refused:
    /// compare pretrains both models from its own flags.
    func alignmentConfiguration() throws -> PipelineConfiguration? {
        guard let stages else { return nil }
        let configuration = try PipelineConfiguration(contentsOf: URL(fileURLWithPath: stages))
        if configuration.stages.contains(where: { $0.stage == .pretrain }) {
            throw ValidationError(
                "--stages \(stages) has a pretrain stage: compare pretrains both models from its own flags; keep the fine-tuning stages only"
            )
        }
        return configuration
    }

    /// What makes two runs the same comparison: everything that shapes the models' training.
    func recordedSettings(_ chronos: PretrainSettings) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return [
            "data": data, "heldout": heldout, "tokenizer": tokenizer ?? "trained on the data, \(vocabSize) tokens",
            "seq_len": String(seqLen), "eval_every": String(evalEvery), "eval_sequences": String(evalSequences),
            "checkpoint_every": String(checkpointEvery), "match": match.rawValue, "param_tolerance": String(paramTolerance),
            "model": String(decoding: try encoder.encode(chronos.model), as: UTF8.self),
            "optimization": String(decoding: try encoder.encode(chronos.optimization), as: UTF8.self),
            "stages": try stages.map { try String(contentsOf: URL(fileURLWithPath: $0), encoding: .utf8) } ?? "none"
        ]
    }

    func run() throws {
        try compare(executable: Self.runningExecutable, commandLine: "chronos " + CommandLine.arguments.dropFirst().joined(separator: " "))
    }

    /// This process's executable, which the decode measurement starts as its child.
    static var runningExecutable: URL {
        #if os(Linux)
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        #else
            Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        #endif
    }

    /// Trains both models (or continues a stopped comparison in `--runs`), measures them with
    /// `executable` (a `chronos` binary) as the decode child, and writes the report, recording
    /// `commandLine` in it; `onEvent` hears every training event of each model, by name.
    func compare(executable: URL, commandLine: String, onEvent: (String, PipelineEvent) throws -> Void = { _, _ in }) throws {
        try backend.apply()
        let output = URL(fileURLWithPath: out)
        // Refused before any training: a comparison never replaces a report.
        try ComparisonReport.checkAbsent(output)
        let fractions = try budgetFractions()
        let promptLines = try String(contentsOf: URL(fileURLWithPath: prompts), encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !promptLines.isEmpty else { throw ValidationError("--prompts \(prompts) holds no prompt") }
        let runsDirectory = try ComparisonRuns(
            directory: URL(fileURLWithPath: runs), settings: recordedSettings(chronosSettings(tokenizer: URL(fileURLWithPath: runs))))
        if runsDirectory.continuing { print("continuing the comparison in \(runs): finished stages are kept") }
        let tokenizerDirectory =
            try tokenizer.map { URL(fileURLWithPath: $0) }
            ?? TokenizerCommand.Train.trainedTokenizer(
                data: data, vocabSize: vocabSize, into: runsDirectory.directory.appendingPathComponent("tokenizer"))
        var chronos = chronosSettings(tokenizer: tokenizerDirectory)
        chronos.model.vocabSize = try Tokenizer(contentsOf: ModelDirectory(tokenizerDirectory).tokenizer).vocabularySize
        let matched = try ParameterMatch(chronos: chronos.model, matching: match, tolerance: paramTolerance)
        let conventional = matched.conventionalSettings(chronos, output: runsDirectory.run("conventional"))
        print(
            String(
                format:
                    "parameters: conventional %d (%d experts × %d, no shared experts), chronos %d; difference %+.2f %% (tolerance %.2f %%)",
                matched.conventionalParameters, matched.conventional.experts, matched.conventional.moeIntermediateSize,
                matched.chronosParameters, matched.relativeDifference * 100, paramTolerance * 100))

        var models = [
            try describe("conventional", conventional, recipe: "no shared experts, no lookahead head; load-balancing loss only"),
            try describe("chronos", chronos, recipe: "shared experts and a lookahead head; the Chronos loss mix and fallback masking")
        ]
        // Each model's stages run in its own pipeline, a teacher named by stage being its own.
        let alignment = try alignmentConfiguration()
        func alignmentStages(of name: String) -> [PipelineStage] { alignment?.stages(relocatedTo: runsDirectory.run(name)) ?? [] }
        let conventionalAlignment = alignmentStages(of: "conventional").map { stage in
            var stage = stage
            stage.optimization = ParameterMatch.conventionalOptimization(stage.optimization)
            return stage
        }
        let pipelines = [
            runsDirectory.pipeline("conventional", pretrain: conventional, alignment: conventionalAlignment),
            runsDirectory.pipeline("chronos", pretrain: chronos, alignment: alignmentStages(of: "chronos"))
        ]
        // Every stage's model is scored on the held-out sequences pretraining evaluates on.
        let heldOutCorpus = try TokenizedCorpus(
            jsonl: [URL(fileURLWithPath: heldout)], tokenizer: Tokenizer(contentsOf: ModelDirectory(tokenizerDirectory).tokenizer))
        let heldOutSequences = PackedSequences(tokens: heldOutCorpus.tokens, sequenceLength: seqLen)
        var directories: [URL] = []
        for (index, pipeline) in pipelines.enumerated() {
            let name = models[index].name
            let display = PipelineProgress(configuration: pipeline, label: name)
            let report = try PipelineRun(configuration: pipeline).run { event in
                display.show(event)
                try onEvent(name, event)
            }
            guard report.complete, let last = report.stages.last else {
                throw ValidationError("training the \(name) model stopped before its last stage; run the same command again to continue")
            }
            models[index].stages = try report.stages.map { stage in
                let crossEntropy = try HeldOutScoring.crossEntropy(
                    TransformerLanguageModel(directory: URL(fileURLWithPath: stage.output)), sequences: heldOutSequences,
                    count: evalSequences)
                print(String(format: "%@ after %@: held-out cross-entropy %.4f nats/token", name, stage.stage.rawValue, crossEntropy))
                return ComparisonReport.Stage(
                    name: stage.stage.rawValue, steps: stage.steps, heldOutCrossEntropy: crossEntropy, seconds: stage.seconds,
                    metrics: stage.final)
            }
            models[index].curve = try ComparisonReport.CurvePoint.read(
                metrics: pipeline.directory(of: .pretrain).appendingPathComponent("metrics.jsonl"))
            let final = URL(fileURLWithPath: last.output)
            try TrainedModelOffload.pack(final)
            directories.append(final)
        }
        let decodes = try measureDecode(executable: executable, directories: directories, names: models.map(\.name), prompts: promptLines)
        for index in models.indices { models[index].decode = decodes[index] }
        let offload = TrainedModelOffload(ssdMs: ssdMs, ssdMbps: ssdMbps, tokens: offloadTokens)
        let progress = ProgressLine()
        // Budget by budget, the two models in turn, so that a drift in the machine's speed hits both.
        for fraction in fractions {
            for (index, directory) in directories.enumerated() {
                let name = models[index].name
                let summary = try ModelLoader.load(directory: directory).summary
                let ids = try OffloadBench.prompts(file: URL(fileURLWithPath: prompts), directory: directory, vocab: summary.vocabSize)
                let (lru, measured) = try offload.measure(directory, budget: fraction, prompts: ids) { text in
                    progress.update("offload \(name) at \(Int((fraction * 100).rounded())) %: \(text)")
                }
                for metrics in [lru, measured] {
                    models[index].offload.append(
                        ComparisonReport.OffloadPoint(
                            budget: fraction, mode: metrics.mode.rawValue, hitRate: metrics.hitRate,
                            stallMsPerToken: metrics.stallMsPerToken, tokensPerSecond: metrics.tokensPerSecond))
                }
                progress.finish(
                    String(
                        format: "offload %@ at %.0f %%: lru %.1f tokens/s (stall %.2f ms), chronos %.1f tokens/s (stall %.2f ms)", name,
                        fraction * 100, lru.tokensPerSecond, lru.stallMsPerToken, measured.tokensPerSecond, measured.stallMsPerToken))
            }
        }
        let report = ComparisonReport(
            date: ISO8601DateFormatter().string(from: Date()), machine: Self.machine(), command: commandLine, data: data,
            heldOut: heldout, prompts: prompts, steps: optimization.steps, alignment: stages, seed: optimization.seed,
            matching: match.rawValue, parameterTolerance: paramTolerance, disk: offload.diskDescription, models: models)
        try report.write(to: output)
        print("wrote \(ComparisonReport.fileNames.map { output.appendingPathComponent($0).path }.joined(separator: ", "))")
    }

    /// A model's entry in the report before it is trained: its size, shape and λ's.
    func describe(_ name: String, _ settings: PretrainSettings, recipe: String) throws -> ComparisonReport.Model {
        let model = settings.model, lambdas = settings.optimization.lambdas
        let weights = String(
            format: " (λ_bal %g, λ_tmp %g, λ_LA %g, λ_anc %g; fallback masking %g)", lambdas.balance, lambdas.temporal, lambdas.lookahead,
            lambdas.routerKL, settings.optimization.fallbackMaskProbability)
        return ComparisonReport.Model(
            name: name, recipe: recipe + weights, parameters: try ParameterMatch.parameters(model),
            activeParameters: try ParameterMatch.activeParameters(model), experts: model.experts, topK: model.expertsPerToken,
            expertWidth: model.moeIntermediateSize, sharedExperts: model.sharedExperts,
            sharedWidth: model.sharedExperts > 0 ? model.sharedExpertIntermediateSize : 0, lookahead: model.lookaheadSteps,
            lambdas: [
                "balance": Double(lambdas.balance), "temporal": Double(lambdas.temporal), "lookahead": Double(lambdas.lookahead),
                "anchor": Double(lambdas.routerKL)
            ])
    }

    /// Decodes every prompt in a child `chronos generate` per model and prompt, the models
    /// alternating prompt by prompt; the children's mean tokens/s and largest peak memory.
    func measureDecode(executable: URL, directories: [URL], names: [String], prompts: [String]) throws -> [ComparisonReport.Decode] {
        var speeds = [[Double]](repeating: [], count: directories.count), peaks = [Int](repeating: 0, count: directories.count)
        for (number, prompt) in prompts.enumerated() {
            for (index, directory) in directories.enumerated() {
                var arguments = [
                    "generate", "--model", directory.path, "--max-tokens", String(decodeTokens), "--temperature", "0", "--ignore-eos"
                ]
                if let name = backend.backend { arguments += ["--backend", name] }
                let child = try MeasuredProcess.run(executable, arguments: arguments + ["--", prompt])
                guard child.status == 0, let speed = Self.decodeSpeed(child.output) else {
                    throw ValidationError(
                        "chronos generate on \(directory.path) failed (status \(child.status)): \(child.output.suffix(400))")
                }
                speeds[index].append(speed)
                peaks[index] = max(peaks[index], child.peakResidentBytes)
                print(
                    String(
                        format: "decode %@, prompt %d/%d: %.1f tokens/s, peak resident memory %.1f MiB", names[index], number + 1,
                        prompts.count, speed, Double(child.peakResidentBytes) / 1_048_576))
                fflush(nil)
            }
        }
        return directories.indices.map { index in
            ComparisonReport.Decode(
                prompts: prompts.count, tokens: decodeTokens, tokensPerSecond: speeds[index].reduce(0, +) / Double(prompts.count),
                peakResidentBytes: peaks[index], tokensPerSecondByPrompt: speeds[index])
        }
    }

    /// The decode tokens/s of `chronos generate`'s summary line.
    static func decodeSpeed(_ output: String) -> Double? {
        guard let line = output.split(separator: "\n").last(where: { $0.contains(" tokens/s (") }),
            let end = line.range(of: " tokens/s (")
        else { return nil }
        return Double(line[..<end.lowerBound].split(separator: " ").last ?? "")
    }

    /// The processor's name (from `/proc/cpuinfo`) and the cores this process may use.
    static func machine() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let name =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) } ?? "unknown processor"
        return "\(name), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }
}
