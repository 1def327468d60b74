import ChronosModel
import Foundation

/// Which experts the in-memory tiers hold, what each tier's bytes are, and whom a full tier
/// evicts. Not thread-safe: the expert store guards it with its lock.
///
/// Bytes are reserved in a tier when a load starts, so a tier never holds more than its budget,
/// in-flight reads included. Who may evict whom:
/// - a need of the current layer with use rank r may evict any unpinned expert (lowest score
///   first), then pinned needs of the same layer that will be used after it (rank > r, latest
///   first); the expert the block is blocked on has rank −1;
/// - a prediction with score s may evict only unpinned experts scoring below s (never under
///   plain LRU, which ignores predictions);
/// - an expert demoted from the hot set may evict staged experts that rank below it, so
///   staging works as a victim cache instead of keeping whatever first filled it;
/// - the expert a block is computing with now, and loads in flight, are never evicted.
/// An expert evicted from the hot set moves to staging when staging can take it, else it is
/// dropped (the disk still has it).
struct ExpertResidency {
    /// An expert in memory or on its way.
    struct Entry {
        enum State {
            case loading
            case resident(ExpertWeights, ExpertBuffer)
        }

        var tier: ResidencyTier
        var state: State
        let bytes: Int
        /// Use counter at the last use (0: never used).
        var lastUseTick: UInt64 = 0
        /// Decode step of the last use (−1: never used).
        var lastUseStep = -1
        /// The prediction it was loaded for, until its first use (nil: loaded for a need, or used).
        var purpose: LoadPurpose?

        var isResident: Bool { if case .resident = state { true } else { false } }
    }

    /// Who wants room in a tier.
    enum Claim {
        /// A need of the current layer, used in rank order (−1: blocked on now; `Int.max`: a
        /// need left over from an earlier layer, which evicts only unpinned experts).
        case need(rank: Int)
        /// A prediction of this score.
        case prediction(score: Double)
        /// An expert leaving the hot set for staging: it may displace staged experts that
        /// rank below it (lower score, or the same score and an older use).
        case demotion(of: ExpertKey)
    }

    let budget: ResidencyBudget
    /// Routed (layer, expert) pairs of the model.
    let totalPairs: Int
    let eviction: EvictionPolicy

    private(set) var entries: [ExpertKey: Entry] = [:]
    private(set) var held: [ResidencyTier: Int] = [.hot: 0, .staging: 0]
    /// The offsets k (ascending) at which each expert is predicted now, for step
    /// `predictionBase` + k.
    private(set) var predictedOffsets: [ExpertKey: [Int]] = [:]
    /// The step the current lookahead predictions were made after.
    private var predictionBase = 0
    /// The source of the current lookahead predictions.
    private(set) var predictionSource = LookaheadSource.head
    /// The lookahead head's chance that each expert is used in the coming tokens.
    var forecast: [ExpertKey: Double] = [:]
    /// The prompt-level set now.
    private(set) var promptSet: Set<ExpertKey> = []
    /// The experts previewed for the next MoE layer of the token being computed, that layer, and
    /// which of them were not in memory when previewed (the ones a preview would load), each
    /// with its rank in the preview.
    private(set) var nextLayer: (layer: Int, ranks: [ExpertKey: Int], absent: Set<ExpertKey>)?
    /// Measured reuse and prediction rates behind the scores.
    private(set) var calibration: ReuseCalibration
    /// Decode step of each expert's last use, resident or not.
    private var lastUsedStep: [ExpertKey: Int] = [:]
    /// Each expert's steps of use, each discounted by `useDecay` per step since, as of the step
    /// it was last brought up to date, and the step it was first used.
    private var useCounts: [ExpertKey: (count: Double, step: Int, first: Int)] = [:]
    /// Experts used in the current step.
    private var usedThisStep: Set<ExpertKey> = []
    /// Predictions waiting to be scored, by the step they are for.
    private var pendingPredictions: [Int: [(key: ExpertKey, offset: Int, source: LookaheadSource, absent: Bool)]] = [:]
    /// The current layer's needs not yet used, by use rank.
    var pins: [ExpertKey: Int] = [:]
    /// The experts blocks compute with now (one per session at most).
    var inUse: Set<ExpertKey> = []
    /// Decode steps begun.
    var step = 0
    private var tick: UInt64 = 0
    /// Counters the tiers keep (evictions, waste, peaks).
    var metrics = StorageMetrics()

    init(budget: ResidencyBudget, eviction: EvictionPolicy, promptWeight: Double, totalPairs: Int) {
        self.budget = budget
        self.totalPairs = totalPairs
        self.eviction = eviction
        calibration = ReuseCalibration(promptPrior: promptWeight)
    }

    /// Bytes `tier` holds or has reserved.
    func heldBytes(in tier: ResidencyTier) -> Int { held[tier] ?? 0 }

    /// Whether `key` is loaded (in either tier).
    func isResident(_ key: ExpertKey) -> Bool { entries[key]?.isResident ?? false }

    /// Steps over which a resident expert's chance of reuse is counted: a prefetch must beat the
    /// chance that the expert it would displace is used again within this many steps.
    static let reuseHorizon = 4

    /// Per-step discount of the use counts behind the frequency estimate: a half-life of 50 steps.
    static let useDecay = 0.986

    /// The expert's recent rate of use per step: its discounted count of steps of use over the
    /// discounted number of steps since its first use, with a prior of 4 steps at the base rate
    /// (the share of all pairs a step uses), so an expert seen once is not taken for a favourite;
    /// the base rate for an expert not used yet.
    func useRate(_ key: ExpertKey) -> Double {
        let decay = Self.useDecay, prior = 4.0
        guard let entry = useCounts[key] else { return calibration.baseRate(totalPairs: totalPairs) }
        let count = entry.count * Foundation.pow(decay, Double(step - entry.step))
        let steps = (1 - Foundation.pow(decay, Double(step - entry.first + 1))) / (1 - decay)
        return min(1, (count + prior * calibration.baseRate(totalPairs: totalPairs)) / (steps + prior))
    }

    /// The eviction score of `key` now (higher is kept longer). Scored: the chance it is used
    /// soon, 1 − (1 − r)(1 − p), where r is the larger of two estimates of its reuse within the
    /// horizon — from the age of its last use (as measured so far) and from its recent rate of
    /// use (an expert the routing favours stays, as under LFU) — and p is the largest of the
    /// lookahead head's chance that the coming tokens use it (`forecast`) and the measured
    /// precision of the offset of its next predicted use (on the record of the source that
    /// predicted it), of prompt-set membership or of the next-layer preview. LRU: its last use.
    func score(_ key: ExpertKey) -> Double {
        switch eviction {
        case .lru:
            return Double(entries[key]?.lastUseTick ?? 0)
        case .scored:
            let byAge =
                lastUsedStep[key].map { last in
                    1 - (0..<Self.reuseHorizon).reduce(1.0) { $0 * (1 - calibration.recency(age: step - last + $1)) }
                } ?? 0
            let byRate = 1 - Foundation.pow(1 - useRate(key), Double(Self.reuseHorizon))
            let recency = max(byAge, byRate)
            var predicted = nextPredictedOffset(of: key).map { calibration.prediction(offset: $0, source: predictionSource) } ?? 0
            if let chance = forecast[key] { predicted = max(predicted, chance) }
            if promptSet.contains(key) { predicted = max(predicted, calibration.prompt) }
            if let rank = nextLayer?.ranks[key] { predicted = max(predicted, calibration.nextLayer(rank: rank)) }
            return 1 - (1 - recency) * (1 - predicted)
        }
    }

    /// Replaces the lookahead predictions made after the current step: `lookahead[k − 1]` for
    /// step + k, by `source`. They are scored against the steps they name when those end.
    mutating func setPredictions(_ lookahead: [[ExpertKey]], source: LookaheadSource) {
        predictedOffsets = [:]
        predictionSource = source
        predictionBase = step
        for (index, keys) in lookahead.enumerated() {
            for key in keys {
                if predictedOffsets[key]?.last != index + 1 { predictedOffsets[key, default: []].append(index + 1) }
                pendingPredictions[step + index + 1, default: []].append((key, index + 1, source, entries[key] == nil))
            }
        }
    }

    /// The offset of `key`'s next predicted use: a prediction for the current step counts
    /// until the expert is used in it.
    func nextPredictedOffset(of key: ExpertKey) -> Int? {
        predictedOffsets[key]?.first { offset in
            predictionBase + offset > step || (predictionBase + offset == step && !usedThisStep.contains(key))
        }
    }

    /// Replaces the next-layer preview: `keys`, all of MoE layer `layer`.
    mutating func setNextLayer(_ keys: [ExpertKey], layer: Int) {
        let ranks = Dictionary(keys.enumerated().map { ($1, $0) }, uniquingKeysWith: min)
        nextLayer = (layer, ranks, Set(keys.filter { entries[$0] == nil }))
    }

    /// Scores the next-layer preview against `layer`'s needs when that layer announces them
    /// (and forgets it). Only previewed experts that were not in memory are scored: they are
    /// the ones whose loads the preview's record decides.
    mutating func scoreNextLayer(layer: Int, needs: [ExpertKey]) {
        guard let preview = nextLayer, preview.layer == layer else { return }
        let needed = Set(needs)
        for key in preview.absent { calibration.exposeNextLayer(rank: preview.ranks[key]!, hit: needed.contains(key)) }
        nextLayer = nil
    }

    /// Replaces the prompt-level set.
    mutating func setPromptSet(_ keys: [ExpertKey]) {
        promptSet = Set(keys)
    }

    /// Forgets every prediction (a new generation starts).
    mutating func clearPredictions() {
        predictedOffsets = [:]
        forecast = [:]
        promptSet = []
        nextLayer = nil
        pendingPredictions = [:]
    }

    /// Starts step `step + 1`: every expert used before is exposed at its age.
    mutating func beginStep() {
        step += 1
        usedThisStep = []
    }

    /// Ends the current step: scores its predictions and the reuse of earlier experts; a step of
    /// one token (a decode step) also counts toward the base rate of use.
    mutating func endStep(singleToken: Bool) {
        for last in lastUsedStep.values where last < step { calibration.exposeAge(step - last, hit: false) }
        for prediction in pendingPredictions.removeValue(forKey: step) ?? [] {
            let hit = usedThisStep.contains(prediction.key)
            calibration.exposeOffset(prediction.offset, source: prediction.source, hit: hit)
            if prediction.absent { calibration.exposeLoad(prediction.offset, source: prediction.source, hit: hit) }
        }
        for key in promptSet { calibration.exposePrompt(hit: usedThisStep.contains(key)) }
        if singleToken { calibration.recordStep(pairsUsed: usedThisStep.count) }
        for key in usedThisStep { lastUsedStep[key] = step }
        usedThisStep = []
    }

    /// Makes room for `bytes` in `tier` on behalf of `key` and reserves them; false (nothing
    /// evicted) when `claim` may not evict enough.
    mutating func reserve(_ bytes: Int, in tier: ResidencyTier, for key: ExpertKey, claim: Claim) -> Bool {
        guard bytes <= budget[tier] else { return false }
        var shortfall = heldBytes(in: tier) + bytes - budget[tier]
        if shortfall > 0 {
            var chosen: [ExpertKey] = []
            for victim in victims(in: tier, for: key, claim: claim) {
                chosen.append(victim)
                shortfall -= entries[victim]!.bytes
                if shortfall <= 0 { break }
            }
            guard shortfall <= 0 else { return false }
            for victim in chosen { evict(victim) }
        }
        held[tier, default: 0] += bytes
        notePeaks()
        return true
    }

    /// Evictable experts of `tier` for `claim`, in the order they should go.
    private func victims(in tier: ResidencyTier, for key: ExpertKey, claim: Claim) -> [ExpertKey] {
        let candidates = entries.filter { $0.value.tier == tier && $0.value.isResident && !inUse.contains($0.key) && $0.key != key }
        // Each candidate scored once: lowest score first, then the oldest use, then key order.
        let unpinned = candidates.compactMap { key, entry in
            pins[key] == nil ? (key: key, score: score(key), tick: entry.lastUseTick) : nil
        }.sorted { a, b in
            (a.score, a.tick, a.key.layer, a.key.expert) < (b.score, b.tick, b.key.layer, b.key.expert)
        }
        switch claim {
        case .need(let rank):
            let later = candidates.keys.filter { pins[$0].map { $0 > rank } ?? false }.sorted { pins[$0]! > pins[$1]! }
            return unpinned.map(\.key) + later
        case .prediction(score: let incoming):
            guard eviction == .scored else { return [] }
            return unpinned.filter { $0.score < incoming }.map(\.key)
        case .demotion(of: let demoted):
            let bar = (score(demoted), entries[demoted]?.lastUseTick ?? 0)
            return unpinned.filter { ($0.score, $0.tick) < bar }.map(\.key)
        }
    }

    /// Gives up `key`: to staging when it fits there, else out of memory.
    private mutating func evict(_ key: ExpertKey) {
        guard let entry = entries[key] else { return }
        held[entry.tier, default: 0] -= entry.bytes
        metrics.evictions += 1
        if entry.tier == .hot, budget.staging >= entry.bytes,
            reserve(entry.bytes, in: .staging, for: key, claim: .demotion(of: key))
        {
            entries[key]!.tier = .staging
            metrics.demotions += 1
            return
        }
        if let purpose = entry.purpose {
            metrics.wastedPrefetchBytes += entry.bytes
            calibration.settleLoad(purpose, used: false)
        }
        entries.removeValue(forKey: key)
    }

    /// Records a load of `key` starting into `tier`, whose bytes are already reserved, for
    /// `purpose` (nil: for a need).
    mutating func beginLoading(_ key: ExpertKey, bytes: Int, tier: ResidencyTier, purpose: LoadPurpose?) {
        entries[key] = Entry(tier: tier, state: .loading, bytes: bytes, purpose: purpose)
    }

    /// Records that `key`'s load succeeded.
    mutating func complete(_ key: ExpertKey, weights: ExpertWeights, buffer: ExpertBuffer) {
        entries[key]?.state = .resident(weights, buffer)
    }

    /// Records that `key`'s load failed, releasing its reservation.
    mutating func fail(_ key: ExpertKey) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        held[entry.tier, default: 0] -= entry.bytes
        notePeaks()
    }

    /// Moves `key` from staging to the hot set; false when the hot set has no room now.
    mutating func promote(_ key: ExpertKey) -> Bool {
        guard let entry = entries[key] else { return false }
        guard entry.tier == .staging else { return true }
        held[.staging, default: 0] -= entry.bytes
        if reserve(entry.bytes, in: .hot, for: key, claim: .need(rank: -1)) {
            entries[key]!.tier = .hot
            return true
        }
        held[.staging, default: 0] += entry.bytes
        return false
    }

    /// Records a use of `key` by a block (its reuse at its age counts once per step).
    mutating func markUsed(_ key: ExpertKey) {
        tick += 1
        if usedThisStep.insert(key).inserted {
            let previous = useCounts[key].map { $0.count * Foundation.pow(Self.useDecay, Double(step - $0.step)) } ?? 0
            useCounts[key] = (previous + 1, step, useCounts[key]?.first ?? step)
            if let last = lastUsedStep[key], last < step {
                calibration.exposeAge(step - last, hit: true)
                lastUsedStep[key] = step
            }
        }
        guard var entry = entries[key] else { return }
        entry.lastUseTick = tick
        entry.lastUseStep = step
        if let purpose = entry.purpose {
            entry.purpose = nil
            metrics.prefetchUsedBytes += entry.bytes
            calibration.settleLoad(purpose, used: true)
        }
        entries[key] = entry
    }

    /// Counts every prefetched expert still unused as wasted (at the end of a run).
    mutating func settleUnusedPrefetches() {
        for (key, entry) in entries where entry.isResident {
            guard let purpose = entry.purpose else { continue }
            metrics.wastedPrefetchBytes += entry.bytes
            calibration.settleLoad(purpose, used: false)
            entries[key]!.purpose = nil
        }
    }

    private mutating func notePeaks() {
        let hot = heldBytes(in: .hot), staging = heldBytes(in: .staging)
        metrics.peakHotBytes = max(metrics.peakHotBytes, hot)
        metrics.peakStagingBytes = max(metrics.peakStagingBytes, staging)
        metrics.peakResidentBytes = max(metrics.peakResidentBytes, hot + staging)
        metrics.residentBytes = hot + staging
    }
}
