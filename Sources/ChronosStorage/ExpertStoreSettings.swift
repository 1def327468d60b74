/// How an expert store keeps and loads experts.
public struct ExpertStoreSettings: Sendable, Equatable {
    /// Byte budgets of the hot set and the staging tier.
    public var budget: ResidencyBudget
    /// What a block gets for an expert that is not resident.
    public var policy: MissPolicy
    /// Whom a full tier evicts.
    public var eviction: EvictionPolicy
    /// Dedicated IO threads that read experts (at least 1).
    public var ioThreads: Int
    /// Reads repeated after a fault before the load fails and the block falls back.
    public var retries: Int
    /// Prior chance that a member of the prompt-level set is used in a step, before any is measured.
    public var promptWeight: Double
    /// Lookahead predictions are loaded only while their record reaches this: the measured
    /// precision at the offset on experts not in memory when predicted (from a prior of 0: it
    /// must show skill first; a prediction of an expert still held from its last use is easy
    /// and earns no load).
    public var prefetchThreshold: Double
    /// A lookahead offset is loaded only if its measured precision is also at least this many
    /// times the precision of random guessing (the share of all experts a step uses).
    public var prefetchLift: Double
    /// Next-layer previews are loaded only while the measured precision of previews of experts
    /// not in memory reaches this: a preview that is wrong too often costs more reads than its
    /// right guesses save (the README's offload section gives the measurements behind 0.6).
    public var previewThreshold: Double

    /// Settings with every field given or defaulted.
    public init(
        budget: ResidencyBudget, policy: MissPolicy = .wait, eviction: EvictionPolicy = .scored, ioThreads: Int = 2,
        retries: Int = 2, promptWeight: Double = 0.25, prefetchThreshold: Double = 0.3,
        prefetchLift: Double = 1.5, previewThreshold: Double = 0.6
    ) {
        self.budget = budget
        self.policy = policy
        self.eviction = eviction
        self.ioThreads = max(1, ioThreads)
        self.retries = max(0, retries)
        self.promptWeight = promptWeight
        self.prefetchThreshold = prefetchThreshold
        self.prefetchLift = prefetchLift
        self.previewThreshold = previewThreshold
    }
}
