import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// `chronos bench offload`: the four storage baselines (`resident`, `mmap`, `lru`, `chronos`)
/// on the same model, prompts, budget and disk model, in one run, with greedy decoding; each
/// beside the bound max(compute, missed bytes / disk bandwidth).
public struct OffloadBench {
    /// One baseline to measure: where experts live, under which budget, with which miss policy.
    public struct Configuration: Equatable, Sendable {
        /// Where experts live.
        public var mode: ExpertResidencyMode
        /// Expert bytes allowed in memory.
        public var budget: ExpertBudget
        /// What a miss does (nil: the settings' default, or none for `resident` and `mmap`).
        public var policy: MissPolicy?

        /// A baseline of `mode` at `budget` with `policy`.
        public init(_ mode: ExpertResidencyMode, _ budget: ExpertBudget, _ policy: MissPolicy? = nil) {
            self.mode = mode
            self.budget = budget
            self.policy = policy
        }
    }

    /// One measured configuration.
    public struct Run {
        /// What the decoding measured, summed over the prompts.
        public var metrics: OffloadRunMetrics
        /// Tokens/s the bound allows (nil when the disk bandwidth is unknown and bytes were missed).
        public var boundTokensPerSecond: Double?
        /// Why the configuration could not run (a budget below one expert), if so.
        public var note: String?
        /// The settings it ran with.
        public var settings: OffloadSettings?
        /// The greedy ids it generated, per prompt.
        public var ids: [[Int]] = []
        /// Each step's distinct experts, over every prompt in turn.
        public var routing: [[ExpertKey]] = []
        /// Whether each step of `routing` was a decode step (the prefill's are not).
        public var decodeSteps: [Bool] = []
        /// The decode hit rate of Belady's MIN on the resident run's routing within this run's
        /// budget: the best any eviction policy reaches without prefetching.
        public var oracleHitRate: Double?
        /// Share of generated positions whose token equals the resident run's.
        public var agreement: Double?
        /// Mean cross-entropy (nats/token) of the held-out references (or of the resident run's
        /// continuations) under this run's settings, teacher-forced: measured for lossy policies
        /// and for `resident` itself.
        public var crossEntropy: Double?

        /// A run with `metrics` and nothing scored yet.
        public init(metrics: OffloadRunMetrics, note: String? = nil, settings: OffloadSettings? = nil) {
            self.metrics = metrics
            self.note = note
            self.settings = settings
        }

        /// The run's label: the baseline, and its policy where it has one ("lru/wait").
        public var label: String { metrics.name + (metrics.policy.map { "/\($0.rawValue)" } ?? "") }
    }

    /// The packed model directory.
    public let directory: URL
    /// The prompts, as token ids, decoded in turn by every baseline.
    public let prompts: [[Int]]
    /// Tokens decoded per prompt.
    public let tokens: Int
    /// The simulated disk, or nil for the real one.
    public let disk: DiskModel?
    /// The settings of one configuration (the command's offload options with its mode, budget
    /// and policy).
    public let settings: (Configuration) throws -> OffloadSettings
    /// Receives a note on what the benchmark is doing now.
    public let progress: (String) -> Void
    /// Held-out continuations of the prompts, one each, on which lossy runs' cross-entropy is
    /// measured (nil: resident's greedy continuations).
    public var references: [[Int]]?

    /// A benchmark of `prompts` on the packed model in `directory`.
    public init(
        directory: URL, prompts: [[Int]], tokens: Int, disk: DiskModel?,
        settings: @escaping (Configuration) throws -> OffloadSettings, progress: @escaping (String) -> Void
    ) {
        self.directory = directory
        self.prompts = prompts
        self.tokens = tokens
        self.disk = disk
        self.settings = settings
        self.progress = progress
    }

    /// The configurations measured at `budget`, in the order they run within each prompt:
    /// `resident` (unless already measured), `mmap`, then `lru` and `chronos` with each of `policies`.
    public static func configurations(budget: ExpertBudget, policies: [MissPolicy], measuringResident: Bool) -> [Configuration] {
        var configurations = measuringResident ? [Configuration(.resident, .fraction(1))] : []
        configurations.append(Configuration(.mmap, budget))
        for mode in [ExpertResidencyMode.lru, .chronos] {
            for policy in policies { configurations.append(Configuration(mode, budget, policy)) }
        }
        return configurations
    }

    /// Runs every baseline at `budget` (`lru` and `chronos` with each of `policies`), prompt by
    /// prompt in turn, so that a drift in the shared machine's speed hits them alike; `resident`
    /// is measured too unless given. Then scores bounds, quality and the oracle hit rate.
    public func run(budget: ExpertBudget, policies: [MissPolicy], resident: Run? = nil) throws -> [Run] {
        var runs = try measure(Self.configurations(budget: budget, policies: policies, measuringResident: resident == nil))
        if let resident { runs.insert(resident, at: 0) }
        Self.scoreBounds(&runs, disk: disk)
        try scoreQuality(&runs)
        try scoreOracle(&runs)
        return runs
    }

    /// Budgets of a sweep, as fractions of all expert bytes.
    public static let sweepFractions = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0]

    /// Runs every baseline with every policy at each of `fractions` in turn, `resident` measured
    /// once and carried from budget to budget, handing each budget's runs to `measured` as soon
    /// as they are scored.
    public func sweep(fractions: [Double] = sweepFractions, measured: (Double, [Run]) throws -> Void) throws {
        var resident = try measure([Configuration(.resident, .fraction(1))])[0]
        for fraction in fractions {
            let runs = try run(budget: .fraction(fraction), policies: MissPolicy.allCases, resident: resident)
            resident = runs[0]
            try measured(fraction, runs)
        }
    }

    /// The oracle hit rate of every run that keeps experts under a budget, from the resident
    /// run's routing and the expert sizes in the packed cache's manifest.
    public func scoreOracle(_ runs: inout [Run]) throws {
        let sizes = Dictionary(
            uniqueKeysWithValues: try ExpertCache.open(modelDirectory: directory).manifest.experts.map { ($0.key, $0.length) })
        Self.scoreOracle(&runs) { sizes[$0] ?? 0 }
    }

    /// Greedy agreement of every run with `runs[0]` (resident), and for runs whose policy may
    /// change the output (`fallback`) the cross-entropy of the held-out references (or of the
    /// resident continuations) under their settings, beside the resident model's own.
    public func scoreQuality(_ runs: inout [Run]) throws {
        let reference = runs[0].ids
        for index in runs.indices where runs[index].note == nil {
            runs[index].agreement = Self.greedyAgreement(runs[index].ids, reference: reference)
        }
        let lossy = runs.indices.filter { runs[$0].note == nil && runs[$0].metrics.policy == .fallback }
        guard !lossy.isEmpty else { return }
        let scored = references ?? reference
        if runs[0].crossEntropy == nil, let settings = runs[0].settings {
            runs[0].crossEntropy = try crossEntropy(settings, continuations: scored)
        }
        for index in lossy {
            progress(
                "\(runs[index].metrics.name)/fallback: scoring \(references == nil ? "the resident continuations" : "the held-out continuations")"
            )
            runs[index].crossEntropy = try crossEntropy(runs[index].settings!, continuations: scored)
        }
    }

    /// Mean negative log-likelihood per token of `continuations` (one per prompt), teacher-forced
    /// through a fresh model under `settings`.
    public func crossEntropy(_ settings: OffloadSettings, continuations: [[Int]]) throws -> Double {
        let model = try OffloadedModel(directory: directory, settings: settings)
        defer { model.close() }
        return try Self.crossEntropy(prompts: prompts, continuations: continuations) { prompt, continuation in
            try OffloadedGenerator(offloaded: model, tokenizer: nil).generate(
                GenerationRequest(
                    promptIds: prompt, maxTokens: continuation.count, sampling: .greedy, ignoreEOS: true,
                    forcedIds: continuation)
            ).generation.forcedLogProbabilities
        }
    }

    /// Measures each configuration over every prompt, interleaved prompt by prompt (the rounds
    /// of an `InterleavedSchedule` are the prompts, its candidates the configurations); a
    /// configuration whose budget holds no expert is kept as a run with a note.
    public func measure(_ configurations: [Configuration]) throws -> [Run] {
        var models: [OffloadedModel?] = [], runs: [Run] = []
        defer { for model in models { model?.close() } }
        for configuration in configurations {
            let settings = try self.settings(configuration)
            let mode = configuration.mode
            var metrics = OffloadRunMetrics(
                name: mode.rawValue, mode: mode, policy: configuration.policy, budgetBytes: 0, totalExpertBytes: 0)
            do {
                let model = try OffloadedModel(directory: directory, settings: settings)
                metrics.budgetBytes = model.budgetBytes
                metrics.totalExpertBytes = model.totalExpertBytes
                models.append(model)
                runs.append(Run(metrics: metrics, settings: settings))
            } catch let error as ExpertCacheError {
                guard case .budgetTooSmall = error else { throw error }
                progress(
                    "\(mode.rawValue)\(configuration.policy.map { "/\($0.rawValue)" } ?? "") at \(configuration.budget): skipped, \(error)")
                models.append(nil)
                runs.append(Run(metrics: metrics, note: "budget below one expert"))
            }
        }
        for slot in InterleavedSchedule(rounds: prompts.count, candidates: models.count) {
            guard let model = models[slot.candidate] else { continue }
            let prompt = prompts[slot.round], position = slot.candidate
            progress("prompt \(slot.round + 1)/\(prompts.count) (\(prompt.count) tokens), \(runs[position].label): decoding \(tokens)")
            let result = try OffloadedGenerator(offloaded: model, tokenizer: nil).generate(
                GenerationRequest(promptIds: prompt, maxTokens: tokens, sampling: .greedy, ignoreEOS: true),
                name: runs[position].metrics.name)
            runs[position].metrics.add(result.metrics)
            runs[position].ids.append(result.generation.ids)
            runs[position].routing += result.routing
            runs[position].decodeSteps += result.routing.indices.map { $0 > 0 }
        }
        for (position, model) in models.enumerated() {
            guard let model else { continue }
            runs[position].metrics = model.close(finalising: runs[position].metrics)
        }
        return runs
    }
}
