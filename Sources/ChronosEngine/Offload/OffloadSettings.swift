import ChronosStorage
import ChronosTensor

/// Where a run keeps routed experts: the four baselines of a storage benchmark.
public enum ExpertResidencyMode: String, Sendable, CaseIterable, Codable {
    /// Every expert in memory: the ceiling.
    case resident
    /// Experts read through memory maps of the cluster files; the OS page cache decides.
    case mmap
    /// Load on miss into budgeted tiers, LRU eviction, no prediction.
    case lru
    /// Prediction (lookahead and prompt-level) + prefetch + scored eviction + the miss policy.
    case chronos
}

/// Which predictors a `chronos` run uses (each only when the model has it).
public struct PredictorSelection: Sendable, Equatable, Codable {
    /// The lookahead head (trained or native) feeds t+1…t+K to the prefetcher.
    public var lookahead: Bool
    /// The intent classifier's set is loaded during the prefill.
    public var intent: Bool
    /// Each decoder layer previews the next MoE layer's routing during decode (every MoE model).
    public var nextLayer: Bool
    /// Text that repeats earlier text predicts the routing that followed it (every MoE model).
    public var repetition: Bool

    /// A selection; all on by default.
    public init(lookahead: Bool = true, intent: Bool = true, nextLayer: Bool = true, repetition: Bool = true) {
        self.lookahead = lookahead
        self.intent = intent
        self.nextLayer = nextLayer
        self.repetition = repetition
    }
}

/// How an offloaded model keeps, loads and predicts its experts.
public struct OffloadSettings: Sendable, Equatable {
    /// Which baseline (or Chronos itself).
    public var mode: ExpertResidencyMode
    /// Bytes of experts allowed in memory (both tiers together).
    public var budget: ExpertBudget
    /// What a block gets for a missing expert (`lru` and `chronos`).
    public var policy: MissPolicy
    /// Whom a full tier evicts; nil: LRU for `lru`, scored for `chronos`.
    public var eviction: EvictionPolicy?
    /// Share of the budget kept for predicted experts (the staging tier); nil: none for `lru`,
    /// 60 % for `chronos`.
    public var stagingFraction: Double?
    /// Dedicated IO threads.
    public var ioThreads: Int
    /// Reads repeated after a fault.
    public var retries: Int
    /// A simulated device for reproducible experiments; nil reads the real disk.
    public var disk: DiskModel?
    /// Drop the cluster files from the OS page cache before running (a cold-cache run).
    public var cold: Bool
    /// Faults injected into chosen reads.
    public var faults: [InjectedFault]
    /// Which predictors run.
    public var predictors: PredictorSelection
    /// Expert ids the lookahead predicts per future token; nil: the model's top-k.
    public var lookaheadExperts: Int?
    /// The lookahead names an expert for a future token only when its chance of use there (the
    /// routing's top-k times the head's probability) reaches this.
    public var lookaheadChance: Double
    /// Largest prompt-level set, as a share of the staging budget.
    public var promptSetShare: Double
    /// A prediction is loaded only if its measured chance of use reaches this.
    public var prefetchThreshold: Double
    /// A next-layer preview is loaded only if its measured precision reaches this.
    public var previewThreshold: Double

    /// Settings with every field given or defaulted.
    public init(
        mode: ExpertResidencyMode = .chronos, budget: ExpertBudget = .fraction(1), policy: MissPolicy = .wait,
        eviction: EvictionPolicy? = nil, stagingFraction: Double? = nil, ioThreads: Int = 2, retries: Int = 2,
        disk: DiskModel? = nil, cold: Bool = false, faults: [InjectedFault] = [],
        predictors: PredictorSelection = PredictorSelection(), lookaheadExperts: Int? = nil, lookaheadChance: Double = 0.6,
        promptSetShare: Double = 1, prefetchThreshold: Double = 0.3, previewThreshold: Double = 0.6
    ) {
        self.mode = mode
        self.budget = budget
        self.policy = policy
        self.eviction = eviction
        self.stagingFraction = stagingFraction
        self.ioThreads = ioThreads
        self.retries = retries
        self.disk = disk
        self.cold = cold
        self.faults = faults
        self.predictors = predictors
        self.lookaheadExperts = lookaheadExperts
        self.lookaheadChance = lookaheadChance
        self.promptSetShare = promptSetShare
        self.prefetchThreshold = prefetchThreshold
        self.previewThreshold = previewThreshold
    }

    /// IO thread counts a run may ask for.
    public static let ioThreadRange = 1...64

    /// Throws the first setting outside its range, named as in a configuration file
    /// (`staging_fraction`, `io_threads`, …); the disk model is checked where it is made.
    public func validate() throws(InvalidSetting) {
        try InvalidSetting.check("staging_fraction", stagingFraction, in: 0...1)
        try InvalidSetting.check("io_threads", ioThreads, in: Self.ioThreadRange)
        try InvalidSetting.check("retries", retries, in: 0...100)
        try InvalidSetting.check("lookahead_experts", lookaheadExperts, in: 1...65_536)
        try InvalidSetting.check("lookahead_chance", lookaheadChance, in: 0...1)
        try InvalidSetting.check("prompt_set_share", promptSetShare, in: 0...1)
        try InvalidSetting.check("prefetch_threshold", prefetchThreshold, in: 0...1)
        try InvalidSetting.check("preview_threshold", previewThreshold, in: 0...1)
        if case .fraction(let fraction) = budget { try InvalidSetting.check("expert_budget", fraction, in: Double.ulpOfOne...1) }
        if case .bytes(let bytes) = budget { try InvalidSetting.check("expert_budget", bytes, in: 1...ExpertBudget.largestByteCount) }
    }

    /// The eviction policy in force.
    public var resolvedEviction: EvictionPolicy { eviction ?? (mode == .lru ? .lru : .scored) }
    /// The staging share in force.
    public var resolvedStagingFraction: Double { stagingFraction ?? (mode == .chronos ? 0.6 : 0) }
}
