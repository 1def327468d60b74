import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Everything a pretraining run is told: model shape, data, optimisation and bookkeeping.
public struct PretrainSettings: Sendable {
    /// The architecture to train (vocabulary size taken from the tokenizer).
    public var model: ChronosConfiguration
    /// Optimisation settings.
    public var optimization: OptimizationSettings
    /// Training JSONL (`{"text": …}` lines).
    public var data: URL
    /// Held-out JSONL; nil holds out the last 5 % of the packed training sequences.
    public var heldOut: URL?
    /// Directory with `tokenizer.json` (and `tokenizer_config.json`).
    public var tokenizer: URL
    /// The run directory (model, snapshots, metrics log).
    public var output: URL
    /// Tokens per training sequence.
    public var sequenceLength: Int = 256
    /// Evaluate held-out loss every this many steps (0 = only at the end).
    public var evaluateEvery: Int = 100
    /// Held-out sequences per evaluation.
    public var evaluationSequences: Int = 16
    /// Write a snapshot every this many steps (0 = only at the end).
    public var checkpointEvery: Int = 200
    /// Stop (after a snapshot) once this much wall time has passed, if set.
    public var timeLimit: Double?
    /// Skip malformed JSONL lines instead of failing.
    public var skipBadLines = false

    /// Settings for a run on `data` with `tokenizer`, writing into `output`.
    public init(model: ChronosConfiguration, optimization: OptimizationSettings, data: URL, heldOut: URL?, tokenizer: URL, output: URL) {
        self.model = model
        self.optimization = optimization
        self.data = data
        self.heldOut = heldOut
        self.tokenizer = tokenizer
        self.output = output
    }
}

extension PretrainSettings {
    /// Throws the first setting outside its range, named as in a pipeline configuration (the
    /// model's fields as in `config.json`), or when training the model would need more memory
    /// than this machine has.
    public func validate() throws {
        try model.validate(file: "the model configuration")
        try optimization.validate()
        try RunSettingChecks.schedule(evaluateEvery: evaluateEvery, checkpointEvery: checkpointEvery, timeLimit: timeLimit)
        try RunSettingChecks.pretraining(
            sequenceLength: sequenceLength, evaluationSequences: evaluationSequences,
            context: model.maxPositionEmbeddings)
        // Weights, gradients and AdamW's two moments, in f32, one copy per compute thread's replica at most.
        let bytes = model.approximateParameterCount * 16
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes < memory else {
            throw InvalidSetting(
                name: "model size", value: String(format: "of %.3g parameters", model.approximateParameterCount),
                expected: String(
                    format: "one whose weights, gradients and optimiser state (%.1f GiB) fit in this machine's %.1f GiB",
                    bytes / 1_073_741_824, memory / 1_073_741_824))
        }
    }
}

/// Events of a pretraining run, for a progress display.
public enum PretrainEvent {
    /// Data and model are ready; `resumedAt` is the step a resumed run continues from.
    case started(parameters: Int, trainSequences: Int, heldOutSequences: Int, unigramCrossEntropy: Double, resumedAt: Int)
    /// An optimiser step finished.
    case step(StepReport, tokensPerSecond: Double, elapsed: Double)
    /// Held-out cross-entropy (nats per token) after `step`.
    case evaluated(step: Int, crossEntropy: Double)
    /// A snapshot of `step` was written.
    case checkpoint(step: Int)
}

/// Stage 1: next-token pretraining of a Chronos model on packed text, with the Chronos loss mix.
public final class PretrainRun {
    /// The settings of the run.
    public let settings: PretrainSettings
    let tokenizer: Tokenizer
    let train: PackedSequences
    let heldOut: PackedSequences
    let configuration: ChronosConfiguration

    /// Tokenises and packs the data. Fails with the file and line of a malformed record.
    public init(settings: PretrainSettings) throws {
        try settings.validate()
        self.settings = settings
        tokenizer = try Tokenizer(contentsOf: ModelDirectory(settings.tokenizer).tokenizer)
        let corpus = try TokenizedCorpus(jsonl: [settings.data], tokenizer: tokenizer, skipBadLines: settings.skipBadLines)
        let packed = PackedSequences(tokens: corpus.tokens, sequenceLength: settings.sequenceLength)
        if let heldOutURL = settings.heldOut {
            let heldOutCorpus = try TokenizedCorpus(jsonl: [heldOutURL], tokenizer: tokenizer, skipBadLines: settings.skipBadLines)
            train = packed
            heldOut = PackedSequences(tokens: heldOutCorpus.tokens, sequenceLength: settings.sequenceLength)
        } else {
            let cut = packed.count - max(1, packed.count / 20)
            train = PackedSequences(
                tokens: Array(packed.tokens[..<(cut * settings.sequenceLength + 1)]), sequenceLength: settings.sequenceLength)
            heldOut = PackedSequences(
                tokens: Array(packed.tokens[(cut * settings.sequenceLength)...]), sequenceLength: settings.sequenceLength)
        }
        var configuration = settings.model
        configuration.vocabSize = tokenizer.vocabularySize
        let specials = try? SpecialTokenIds(
            config: TokenizerConfig(contentsOf: ModelDirectory(settings.tokenizer).tokenizerConfig),
            tokenizer: tokenizer)
        configuration.eosTokenId = [tokenizer.id(forToken: "<|endoftext|>"), specials?.eos].compactMap { $0 }.uniqued()
        configuration.bosTokenId = specials?.bos
        configuration.padTokenId = specials?.pad
        self.configuration = configuration
    }

    /// Trains until `settings.optimization.steps` (or the time limit), starting as `start`
    /// says (anew, or from the run directory's newest valid snapshot); reports progress to
    /// `onEvent`, which may throw to stop the run.
    public func run(start: RunStart, onEvent: (PretrainEvent) throws -> Void) throws {
        let resumeFrom = try Checkpoint.prepare(runDirectory: settings.output, start: start)
        let started = Date()
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: settings.optimization.seed)
        var state = TrainingState(step: 0, batchesSeen: 0, randomState: 0, tokensSeen: 0, settings: recordedSettings)
        let optimizer = AdamW(settings: settings.optimization.adam)
        var referenceRouters: [Int: Tensor]? = nil
        if let snapshot = resumeFrom {
            let saved = try TransformerLanguageModel(directory: snapshot)
            weights = Dictionary(uniqueKeysWithValues: saved.namedParameters().map { ($0.name, $0.tensor) })
            let restored = try Checkpoint.restore(snapshot: snapshot, into: optimizer)
            state = restored.state
            referenceRouters = ChronosTrainer.referenceRouters(fromFrozen: restored.frozen)
        }
        let trainer = try ChronosTrainer(
            configuration: configuration, weights: weights, settings: settings.optimization,
            referenceRouters: referenceRouters, optimizer: optimizer)
        trainer.restore(step: state.step, randomState: state.step == 0 ? trainer.random.state : state.randomState)
        var batches = try PretrainingBatches(sequences: train, batchSize: settings.optimization.batchSize, seed: settings.optimization.seed)
        let perStep = settings.optimization.accumulation
        for _ in 0..<state.batchesSeen { _ = batches.next() }

        try onEvent(
            .started(
                parameters: trainer.parameters.reduce(0) { $0 + $1.tensor.count }, trainSequences: train.count,
                heldOutSequences: heldOut.count, unigramCrossEntropy: unigramCrossEntropy(), resumedAt: state.step))
        let log = MetricsLog(url: settings.output.appendingPathComponent("metrics.jsonl"))
        var tokensThisRun = 0
        while trainer.step < settings.optimization.steps {
            var sequences: [(inputs: [Int], targets: [Int])] = []
            for _ in 0..<perStep {
                guard let batch = batches.next() else { break }
                sequences += zip(batch.inputs, batch.targets).map { ($0, $1) }
                state.batchesSeen += 1
            }
            let report = try trainer.trainStep(sequences) { pass, sequence in
                let output = try pass.model.forward(sequence.inputs, cache: pass.model.makeCache(), options: pass.trainingOptions())
                let crossEntropy = Tensor.crossEntropy(logits: output.logits, targets: sequence.targets)
                let (chronos, parts) = trainer.chronosTerms(output)
                var logged = parts
                logged["ce"] = crossEntropy.floats[0]
                return SequenceLoss(total: crossEntropy + chronos, parts: logged, tokens: sequence.targets.count)
            }
            tokensThisRun += report.tokens
            state.step = trainer.step
            state.tokensSeen += report.tokens
            state.randomState = trainer.random.state
            let elapsed = Date().timeIntervalSince(started)
            try onEvent(.step(report, tokensPerSecond: Double(tokensThisRun) / elapsed, elapsed: elapsed))
            try log.append(
                [
                    "step": Double(report.step), "lr": Double(report.learningRate), "grad_norm": Double(report.gradientNorm),
                    "seconds": report.seconds
                ].merging(report.parts.mapValues(Double.init)) { a, _ in a })
            let last = trainer.step == settings.optimization.steps || settings.timeLimit.map { elapsed >= $0 } ?? false
            if (settings.evaluateEvery > 0 && trainer.step % settings.evaluateEvery == 0) || last {
                let ce = try evaluate(trainer.model)
                try onEvent(.evaluated(step: trainer.step, crossEntropy: ce))
                try log.append(["step": Double(trainer.step), "heldout_ce": ce])
            }
            if (settings.checkpointEvery > 0 && trainer.step % settings.checkpointEvery == 0) || last {
                try save(trainer, state: state)
                try LossCurve.write(runDirectory: settings.output, stage: .pretrain)
                try onEvent(.checkpoint(step: trainer.step))
            }
            if last { break }
        }
    }

    /// Mean held-out cross-entropy (nats per token) over the first `evaluationSequences` held-out sequences.
    public func evaluate(_ model: TransformerLanguageModel) throws -> Double {
        try HeldOutScoring.crossEntropy(model, sequences: heldOut, count: settings.evaluationSequences)
    }

    /// Cross-entropy of a unigram model (token frequencies of the training data, add-one
    /// smoothed) on the same held-out sequences `evaluate` uses: the baseline a model must beat.
    public func unigramCrossEntropy() -> Double {
        var counts = [Double](repeating: 1, count: configuration.vocabSize)
        for token in train.tokens { counts[Int(token)] += 1 }
        let total = counts.reduce(0, +)
        var sum = 0.0, n = 0
        for i in 0..<min(settings.evaluationSequences, heldOut.count) {
            for target in heldOut.targets(i) {
                sum -= Foundation.log(counts[target] / total)
                n += 1
            }
        }
        return sum / Double(max(n, 1))
    }

    /// Held-out sequences (inputs only), for evaluations after training.
    public func heldOutInputs(_ count: Int) -> [[Int]] { (0..<min(count, heldOut.count)).map(heldOut.inputs) }
    /// Training sequences (inputs only), for frequency baselines.
    public func trainInputs(_ count: Int) -> [[Int]] { (0..<min(count, train.count)).map(train.inputs) }

    private var recordedSettings: [String: String] {
        [
            "sequence_length": String(settings.sequenceLength), "batch_size": String(settings.optimization.batchSize),
            "seed": String(settings.optimization.seed)
        ]
    }

    private func save(_ trainer: ChronosTrainer, state: TrainingState) throws {
        try trainer.saveSnapshot(runDirectory: settings.output, state: state, tokenizerDirectory: settings.tokenizer)
    }
}

/// Appends one JSON object per line to a metrics file (the training curve, for plots and the UI).
final class MetricsLog {
    let url: URL

    init(url: URL) { self.url = url }

    func append(_ values: [String: Double]) throws {
        let line = try JSONSerialization.data(withJSONObject: values, options: [.sortedKeys]) + Data("\n".utf8)
        if let handle = try? FileHandle(forWritingTo: url) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } else {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try line.write(to: url)
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each kept once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
