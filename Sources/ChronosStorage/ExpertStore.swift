import ChronosModel
import ChronosTensor
import Foundation

/// Where lookahead predictions come from; each source is scored on its own record.
public enum LookaheadSource: Sendable, Hashable {
    /// A lookahead head reading the model's hidden state.
    case head
    /// The routing that followed the last time the text read as it does now, `matched` tokens
    /// of it (each length on its own record).
    case repetition(matched: Int)
}

/// Where one expert is at a moment, as `ExpertStore.placements()` reports it.
public struct ExpertPlacement: Sendable, Equatable {
    /// The tier holding it, or the one its read in flight fills (`disk`: neither).
    public var tier: ResidencyTier
    /// Whether its read is still in flight.
    public var isLoading: Bool
    /// Whether a current prediction names it.
    public var isPredicted: Bool

    /// A placement in `tier`.
    public init(tier: ResidencyTier, isLoading: Bool, isPredicted: Bool) {
        self.tier = tier
        self.isLoading = isLoading
        self.isPredicted = isPredicted
    }
}

/// The expert provider of an offloaded model: routed experts live in the cluster files on
/// disk, in a RAM staging tier and in the compute-ready hot set, each within its byte budget,
/// and dedicated IO threads load them ahead of need.
///
/// - The MoE block announces a layer's needs (`willNeed`); misses are queued at once, in the
///   order the block will use them, so they load concurrently; `weights(for:)` then applies the
///   `MissPolicy`, waiting (if it does) only on that expert's readiness signal.
/// - Predictions (`predict(nextLayer:layer:)`, `predict(lookahead:)`, `prefetch(ahead:)`,
///   `preload(promptSet:)`) load into staging at lower priority: the next layer's previewed
///   experts, then t+1 before t+2 (further lookahead only weighs in eviction), the prompt-level
///   set last; a newer prediction cancels queued loads it no longer names, and loads predicted
///   while a token runs queue behind that token's own. The lookahead's chance of use for every
///   expert (`forecast(chanceOfUse:)`) weighs in eviction. Predictions are loaded only while they
///   earn it: lookahead offsets whose measured precision on experts not in memory (each
///   `LookaheadSource` on its own record) reaches `prefetchThreshold` and beats random
///   guessing by `prefetchLift`, and previews whose precision at their rank also reaches
///   `previewThreshold`; and each kind of prediction (lookahead source and offset, preview,
///   prompt-level set) only while at least half its earlier loads were used before they left
///   memory (`usefulLoadShare`): right predictions still waste their loads when memory is too
///   small to keep them until their token comes.
/// - IO runs where its `ExpertIOExecutor` puts it: by default on `Thread`s of its own, never on
///   the Swift concurrency pool (below the compute's priority under `fallback`, whose decode
///   never waits for it). Each read (`pread` through an `ExpertDisk`) lands in a pooled buffer
///   and is checked against the expert's hash; a fault is retried, and after `retries` the load
///   fails and the block falls back.
/// - Stalls and read times are measured on its `ExpertStoreClock`.
///
/// Call `close()` when done: the IO threads hold the store until then.
public final class ExpertStore: ExpertProvider, @unchecked Sendable {
    /// The cache experts are read from.
    public let cache: ExpertCache
    /// The disk (real, simulated or faulty) reads go through.
    public let disk: any ExpertDisk
    /// Budgets and policies.
    public let settings: ExpertStoreSettings
    /// The clock stalls and reads are measured on.
    public let clock: any ExpertStoreClock

    private let pool: ExpertBufferPool
    private let state = NSCondition()
    private var residency: ExpertResidency
    private var queue = PrefetchQueue()
    private var readiness: [ExpertKey: ExpertReadiness] = [:]
    /// Experts whose load failed in this step: not retried until the next.
    private var failed: Set<ExpertKey> = []
    /// What each session holds between its calls; session 0 is the store's own, which its
    /// `ExpertProvider` methods and steps use.
    private var sessions: [Int: SessionState] = [0: SessionState()]
    private var nextSession = 1
    private var faultLog: [String] = []
    /// The faults of each expert's last failed load.
    private var loadFaults: [ExpertKey: [String]] = [:]
    /// The first expert a `wait` or `sync` need could not get: the run must end.
    private var firstFailure: ExpertCacheError?
    private var closed = false
    /// IO threads inside `serveLoads()`; `close()` waits for them to leave.
    private var servingThreads = 0
    /// Whether a call that waits for a load runs the queued loads itself (`ExpertIOExecutor`).
    private let waitersRunLoads: Bool

    /// A store over `cache` reading through `disk`, timing on `clock`, its loads run by `io`;
    /// fails when the hot set cannot hold the largest expert.
    public init(
        cache: ExpertCache, disk: any ExpertDisk, settings: ExpertStoreSettings,
        clock: any ExpertStoreClock = MonotonicClock(), io: any ExpertIOExecutor = ThreadedIOExecutor()
    ) throws {
        let largest = cache.manifest.largestExpertBytes
        guard settings.budget.hot >= largest else { throw ExpertCacheError.budgetTooSmall(budget: settings.budget.hot, needed: largest) }
        self.cache = cache
        self.disk = disk
        self.settings = settings
        self.clock = clock
        waitersRunLoads = io.waitersRunLoads
        pool = ExpertBufferPool(maximumIdleBytes: largest * (settings.ioThreads + 2))
        residency = ExpertResidency(
            budget: settings.budget, eviction: settings.eviction, promptWeight: settings.promptWeight,
            totalPairs: cache.manifest.experts.count)
        io.start(ExpertLoads(store: self))
    }

    // MARK: ExpertProvider

    /// Counts the layer's needs (hit or miss), orders them for use — those in memory first, so the
    /// block computes with them while the misses load — pins them in that order and queues the
    /// misses; returns the order.
    @discardableResult
    public func willNeed(_ keys: [ExpertKey]) -> [ExpertKey] {
        willNeed(keys, session: 0)
    }

    /// `willNeed` for session `id`.
    fileprivate func willNeed(_ keys: [ExpertKey], session id: Int) -> [ExpertKey] {
        state.lock()
        defer { state.unlock() }
        let keys = keys.filter { residency.isResident($0) } + keys.filter { !residency.isResident($0) }
        sessions[id, default: SessionState()].inUse = nil
        sessions[id]!.pins = [:]
        queue.demoteNeeds()
        if let layer = keys.first?.layer {
            residency.scoreNextLayer(layer: layer, needs: keys)
            residency.metrics.cancelledPrefetches += queue.removeAll { key, priority in priority.isNextLayer && !keys.contains(key) }.count
        }
        sessions[id]!.counted = []
        for (rank, key) in keys.enumerated() {
            countNeed(key, session: id)
            sessions[id]!.pins[key] = rank
            if settings.policy != .sync, residency.entries[key] == nil, !failed.contains(key) {
                queue.push(key, .need(rank: rank))
            }
        }
        mergeSessions()
        state.broadcast()
        return keys
    }

    /// The weights of `key` per the miss policy: resident ones at once, a miss waited for
    /// (`wait`), read on this thread (`sync`), or nil while its load runs (`fallback`).
    public func weights(for key: ExpertKey) -> ExpertWeights? {
        weights(for: key, session: 0)
    }

    /// `weights(for:)` for session `id`.
    fileprivate func sessionMetrics(_ id: Int) -> StorageMetrics {
        state.lock()
        defer { state.unlock() }
        return sessions[id]?.metrics ?? StorageMetrics()
    }

    fileprivate func weights(for key: ExpertKey, session id: Int) -> ExpertWeights? {
        state.lock()
        defer { state.unlock() }
        if sessions[id, default: SessionState()].inUse != nil {
            sessions[id]!.inUse = nil
            mergeSessions()
            // The expert this session computed with may now make room for another's need.
            if sharedBySessions { state.broadcast() }
        }
        if !sessions[id]!.counted.contains(key) { countNeed(key, session: id) }
        let start = clock.now
        var waited = false
        defer {
            if waited {
                residency.metrics.stallNanoseconds += clock.now - start
                sessions[id]?.metrics.stallNanoseconds += clock.now - start
            }
        }
        guard cache.entry(for: key) != nil else { return fallback(key, session: id) }

        // Each pass finds `key` in one of four states — resident (hot, or staging and then
        // promoted), loading, failed in this step, or absent — and returns, or waits for a load
        // to end (under `sync`, runs it) and looks again.
        while true {
            if let entry = residency.entries[key] {
                switch entry.state {
                case .resident(let weights, _):
                    if entry.tier == .staging, !residency.promote(key), !(releaseOtherSessionsHolds() && residency.promote(key)) {
                        if settings.policy == .fallback { return fallback(key, session: id) }
                        waited = true
                        waitForAnyLoad()  // the hot set is all in-flight loads; one will finish
                        continue
                    }
                    residency.markUsed(key)
                    sessions[id]!.inUse = key
                    sessions[id]!.pins[key] = nil
                    mergeSessions()
                    state.broadcast()  // the unpinned expert may make room for a waiting need
                    return weights
                case .loading:
                    if settings.policy == .fallback { return fallback(key, session: id) }
                    waited = true
                    waitForReadiness(of: key)
                    continue
                }
            }
            if failed.contains(key) {
                // Only `fallback` may go on without an expert; under `wait` and `sync` the run ends.
                if settings.policy != .fallback, firstFailure == nil {
                    firstFailure = .loadFailed(expert: key, faults: loadFaults[key] ?? [])
                }
                return fallback(key, session: id)
            }
            switch settings.policy {
            case .fallback:
                queue.push(key, .need(rank: sessions[id]!.pins[key] ?? 0))
                state.broadcast()
                return fallback(key, session: id)
            case .wait:
                queue.push(key, .blocking)
                state.broadcast()
                waited = true
                waitForReadiness(of: key)
            case .sync:
                let bytes = cache.byteCount(of: key)
                guard residency.reserve(bytes, in: .hot, for: key, claim: .need(rank: -1)) else {
                    waited = true
                    waitForAnyLoad()
                    continue
                }
                queue.remove(key)
                residency.beginLoading(key, bytes: bytes, tier: .hot, purpose: nil)
                waited = true
                let job = LoadJob(key: key, entry: cache.entry(for: key)!, speculative: false)
                state.unlock()
                let outcome = load(job)
                state.lock()
                finish(job, outcome)
            }
        }
    }

    // MARK: Predictions and steps

    /// Lookahead predictions further ahead than this many steps are not loaded, only weighed in
    /// eviction: loaded that early, they sit in the staging tier until other loads displace
    /// them unused.
    static let lookaheadLoadHorizon = 2

    /// Predictions of a kind are loaded only while at least this share of their earlier loads
    /// was used before leaving memory: a load used as often as it is wasted saves the disk as
    /// much time as it costs it.
    static let usefulLoadShare = 0.5

    /// Replaces the lookahead predictions: `lookahead[k − 1]` are the experts `source` predicts
    /// for token t + k (t the last step run), best first. Queued predictions no longer named are
    /// cancelled; those of the first `lookaheadLoadHorizon` offsets are queued by offset if that
    /// source's record at the offset, on the experts it named while they were not in memory
    /// (the ones a load is for), earns it.
    public func predict(lookahead: [[ExpertKey]], source: LookaheadSource = .head) {
        state.lock()
        defer { state.unlock() }
        residency.setPredictions(lookahead, source: source)
        let previous = queue.removeAll { _, priority in priority.isLookahead }
        residency.metrics.cancelledPrefetches += previous.filter { residency.predictedOffsets[$0] == nil }.count
        queueLoads(lookahead, source: source, whileRunning: false)
    }

    /// Queues the loads `source` predicts for the tokens after the one running now, made while
    /// it runs (`lookahead[k − 1]` for the running token + k): they start as soon as the disk is
    /// free of the running token's loads instead of when the next token begins, with the same
    /// rules as `predict(lookahead:source:)`, which replaces them when the next token begins.
    public func prefetch(ahead lookahead: [[ExpertKey]], source: LookaheadSource = .head) {
        state.lock()
        defer { state.unlock() }
        queueLoads(lookahead, source: source, whileRunning: true)
    }

    /// Queues the predictions of the first `lookaheadLoadHorizon` offsets that their source's
    /// record earns, and are not in memory.
    private func queueLoads(_ lookahead: [[ExpertKey]], source: LookaheadSource, whileRunning: Bool) {
        for (index, keys) in lookahead.enumerated()
        where index < Self.lookaheadLoadHorizon && residency.calibration.load(offset: index + 1, source: source) >= predictionBar
            && residency.calibration.usefulness(of: .lookahead(source, offset: index + 1)) >= Self.usefulLoadShare
        {
            for (order, key) in keys.enumerated() where residency.entries[key] == nil && !failed.contains(key) {
                queue.push(key, .lookahead(offset: index + 1, order: order, source: source, whileRunning: whileRunning))
            }
        }
        wakeIOIfQueued()
    }

    /// Replaces the lookahead forecast the eviction reads: the chance that each (layer, expert)
    /// pair is used in the coming tokens (`LookaheadForecast.chanceOfUse`).
    public func forecast(chanceOfUse: [ExpertKey: Double]) {
        state.lock()
        residency.forecast = chanceOfUse
        state.unlock()
    }

    /// Replaces the next-layer preview: `keys` (best first), the experts MoE layer `layer` is
    /// previewed to need for the token being computed. Queued previews are cancelled; the new
    /// ones not in memory are queued right after the needs if previews of absent experts at
    /// their rank (the router's first choice, second, …) have proved right often enough to pay
    /// (`previewThreshold`, and the bar of every prediction):
    /// a right preview only reads earlier an expert the layer would read anyway, while a wrong
    /// one occupies the disk the next layer's needs then queue behind. They are scored when
    /// that layer announces its needs.
    public func predict(nextLayer keys: [ExpertKey], layer: Int) {
        state.lock()
        defer { state.unlock() }
        residency.setNextLayer(keys, layer: layer)
        residency.metrics.cancelledPrefetches += queue.removeAll { key, priority in priority.isNextLayer && !keys.contains(key) }.count
        let bar = max(settings.previewThreshold, predictionBar)
        guard residency.calibration.usefulness(of: .preview) >= Self.usefulLoadShare else { return }
        for (order, key) in keys.enumerated()
        where residency.calibration.nextLayer(rank: order) >= bar
            && residency.entries[key] == nil && !failed.contains(key)
        {
            queue.push(key, .nextLayer(order: order))
        }
        wakeIOIfQueued()
    }

    /// Wakes the IO threads when loads wait. A prediction that queued nothing wakes no one: on a
    /// machine whose cores all compute, every needless wake-up costs the decode a context switch.
    private func wakeIOIfQueued() {
        if !queue.isEmpty { state.broadcast() }
    }

    /// The measured precision a prediction needs to be loaded: `prefetchThreshold`, and
    /// `prefetchLift` times that of guessing at random.
    private var predictionBar: Double {
        max(settings.prefetchThreshold, settings.prefetchLift * residency.calibration.baseRate(totalPairs: cache.manifest.experts.count))
    }

    /// Sets the prompt-level set (experts the whole generation is predicted to use) and queues
    /// the ones not in memory at the lowest priority, if earlier prompt-level loads were used
    /// often enough (`usefulLoadShare`).
    public func preload(promptSet keys: [ExpertKey]) {
        state.lock()
        defer { state.unlock() }
        residency.setPromptSet(keys)
        let previous = queue.removeAll { _, priority in priority.level == PrefetchPriority.promptClass }
        residency.metrics.cancelledPrefetches += previous.filter { !residency.promptSet.contains($0) }.count
        guard residency.calibration.usefulness(of: .prompt) >= Self.usefulLoadShare else { return }
        for (order, key) in keys.enumerated() where residency.entries[key] == nil && !failed.contains(key) {
            queue.push(key, .prompt(order: order))
        }
        wakeIOIfQueued()
    }

    /// Forgets every prediction and cancels their queued loads: a new generation starts, and
    /// what was predicted for the old one no longer applies.
    public func resetPredictions() {
        state.lock()
        defer { state.unlock() }
        residency.clearPredictions()
        residency.metrics.cancelledPrefetches += queue.removeAll { _, priority in priority.level >= 2 }.count
    }

    /// Starts a step of `tokens` tokens (a prompt, or one decoded token): recency counts in
    /// steps, and experts that failed may be tried again.
    public func beginStep(tokens: Int = 1) {
        beginStep(tokens: tokens, session: 0)
    }

    /// `beginStep` for session `id`.
    fileprivate func beginStep(tokens: Int, session id: Int) {
        state.lock()
        sessions[id, default: SessionState()].stepTokens = tokens
        residency.beginStep()
        failed = []
        state.unlock()
    }

    /// Ends a step: no expert is in use or pinned any more, and the step's uses score the
    /// predictions made for it.
    public func endStep() {
        endStep(session: 0)
    }

    /// `endStep` for session `id`.
    fileprivate func endStep(session id: Int) {
        state.lock()
        residency.endStep(singleToken: (sessions[id]?.stepTokens ?? 1) == 1)
        // The step's needs and pins end with it; the session's counts go on.
        sessions[id] = SessionState(metrics: sessions[id]?.metrics ?? StorageMetrics())
        mergeSessions()
        queue.demoteNeeds()
        state.broadcast()
        state.unlock()
    }

    /// A session of its own for one generation's passes, sharing this store's tiers, queue and
    /// IO with every other.
    public func makeSession() -> Session {
        state.lock()
        defer { state.unlock() }
        let id = nextSession
        nextSession += 1
        sessions[id] = SessionState()
        return Session(store: self, id: id)
    }

    /// `Session.cancelQueuedLoads` for session `id`.
    fileprivate func cancelQueuedLoads(session id: Int) {
        state.lock()
        defer { state.unlock() }
        guard sessions.keys.allSatisfy({ $0 == id || $0 == 0 }) else { return }
        residency.metrics.cancelledPrefetches += queue.removeAll { _, _ in true }.count
    }

    /// Forgets session `id`: nothing it pinned or used holds memory any more.
    fileprivate func endSession(_ id: Int) {
        state.lock()
        sessions[id] = nil
        mergeSessions()
        state.broadcast()
        state.unlock()
    }

    /// A snapshot of the counters.
    public func metrics() -> StorageMetrics {
        state.lock()
        defer { state.unlock() }
        return residency.metrics
    }

    /// The expert a `wait` or `sync` need could not get, which ends the run.
    public var failure: (any Error)? {
        state.lock()
        defer { state.unlock() }
        return firstFailure
    }

    /// The first distinct faults detected, one line each (file, expert, what went wrong).
    public func faults() -> [String] {
        state.lock()
        defer { state.unlock() }
        return faultLog
    }

    /// Bytes each in-memory tier holds now.
    public func residentBytes() -> [ResidencyTier: Int] {
        state.lock()
        defer { state.unlock() }
        return [.hot: residency.heldBytes(in: .hot), .staging: residency.heldBytes(in: .staging)]
    }

    /// Where each expert in memory or on its way is now, and each expert a current prediction
    /// (lookahead, prompt-level set or next-layer preview) names; every other is on disk only.
    public func placements() -> [ExpertKey: ExpertPlacement] {
        state.lock()
        defer { state.unlock() }
        var placements: [ExpertKey: ExpertPlacement] = [:]
        for (key, entry) in residency.entries {
            placements[key] = ExpertPlacement(tier: entry.tier, isLoading: !entry.isResident, isPredicted: false)
        }
        var predicted = Set(residency.predictedOffsets.keys).union(residency.promptSet)
        if let nextLayer = residency.nextLayer { predicted.formUnion(nextLayer.ranks.keys) }
        for key in predicted {
            placements[key, default: ExpertPlacement(tier: .disk, isLoading: false, isPredicted: true)].isPredicted = true
        }
        return placements
    }

    /// Whether `key` is in memory now (either tier).
    public func isResident(_ key: ExpertKey) -> Bool {
        state.lock()
        defer { state.unlock() }
        return residency.isResident(key)
    }

    /// Blocks until no load is queued or in flight. Where waiters run the loads themselves
    /// (`ExpertIOExecutor.waitersRunLoads`), runs the queued loads until none can start.
    public func waitUntilIdle() {
        state.lock()
        while !closed && (!queue.isEmpty || residency.entries.values.contains { !$0.isResident }) {
            if waitersRunLoads {
                if !runQueuedLoad() { break }
            } else {
                state.wait()
            }
        }
        state.unlock()
    }

    /// Stops the IO threads (after their current reads) and counts prefetched experts never
    /// used as wasted.
    public func close() {
        state.lock()
        closed = true
        state.broadcast()
        while servingThreads > 0 { state.wait() }
        residency.settleUnusedPrefetches()
        state.unlock()
    }

    // MARK: Internals (under `state` unless said otherwise)

    /// One expert to read.
    private struct LoadJob {
        let key: ExpertKey
        let entry: ExpertCacheManifest.Expert
        let speculative: Bool
    }

    private enum LoadOutcome {
        case loaded(ExpertWeights, ExpertBuffer, bytesRead: Int, nanoseconds: UInt64, faults: [String], kinds: [InjectedFault.Kind])
        case failed(bytesRead: Int, nanoseconds: UInt64, faults: [String], kinds: [InjectedFault.Kind])
    }

    /// The pins and in-use experts of every session, as eviction sees them: a pinned expert
    /// keeps the best rank any session gave it.
    /// Breaks the stalemate of sessions that share a batched forward pass: when a need of the
    /// running step finds the hot set full of what other sessions pin or last computed with,
    /// and no load is in flight to change that, nothing would ever make room, since those
    /// sessions' turns in the pass come after this one on the same thread. Their pins and
    /// in-use marks are then dropped (both only keep bytes in memory: weights being computed
    /// with are held by their computation, so an eviction only frees them once it ends);
    /// false when there was nothing to drop or a load in flight will change the hot set.
    private func releaseOtherSessionsHolds() -> Bool {
        guard sharedBySessions, !residency.pins.isEmpty || !residency.inUse.isEmpty,
            !residency.entries.values.contains(where: { !$0.isResident })
        else { return false }
        for id in sessions.keys {
            sessions[id]!.pins = [:]
            sessions[id]!.inUse = nil
        }
        mergeSessions()
        return true
    }

    private func mergeSessions() {
        var pins: [ExpertKey: Int] = [:], inUse: Set<ExpertKey> = [], holders = 0
        for session in sessions.values where !session.pins.isEmpty || session.inUse != nil {
            holders += 1
            if holders == 1 { pins = session.pins } else { pins.merge(session.pins) { min($0, $1) } }
            if let key = session.inUse { inUse.insert(key) }
        }
        residency.pins = pins
        residency.inUse = inUse
    }

    private func countNeed(_ key: ExpertKey, session id: Int) {
        sessions[id]!.counted.insert(key)
        var counts = StorageMetrics()
        counts.needed = 1
        if let entry = residency.entries[key], entry.isResident {
            counts.hits = 1
            if entry.tier == .staging { counts.stagingHits = 1 }
        } else {
            counts.missedBytes = cache.byteCount(of: key)
        }
        residency.metrics.addGenerationCounts(counts)
        sessions[id]!.metrics.addGenerationCounts(counts)
    }

    private func fallback(_ key: ExpertKey, session id: Int) -> ExpertWeights? {
        residency.metrics.fallbacks += 1
        sessions[id]?.metrics.fallbacks += 1
        sessions[id]?.pins[key] = nil
        mergeSessions()
        if sharedBySessions { state.broadcast() }
        return nil
    }

    /// Lowers the calling IO thread's scheduling priority for good (nice + 10 on Linux, utility
    /// QoS elsewhere), for a policy whose decode never waits for a load: its copying and hashing
    /// then wait for the compute threads instead of taking a core from them mid-kernel, which
    /// stalls every thread of the kernel. (Once lowered, a thread may not raise it again without
    /// privileges, so a decode that waits for loads keeps its IO at the compute's priority.)
    private static func yieldCoresToCompute() {
        #if os(Linux)
            errno = 0
            let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)  // who 0: this thread alone
            if errno == 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, current + 10)) }
        #else
            Thread.current.qualityOfService = .utility
        #endif
    }

    /// Waits until `key`'s current or queued load ends: without the lock on its readiness
    /// signal while IO threads load, or running the queued loads on this thread until the
    /// signal opens where no other thread will.
    private func waitForReadiness(of key: ExpertKey) {
        let latch = readiness[key] ?? ExpertReadiness()
        readiness[key] = latch
        if waitersRunLoads {
            while !latch.isOpen {
                precondition(runQueuedLoad(), "waiting for \(key), whose load can never start: no other thread runs loads")
            }
            return
        }
        state.unlock()
        latch.wait()
        state.lock()
    }

    /// Waits until some load ends (the store's state may then let a waiting need go on):
    /// blocks while IO threads load, or runs the next queued load on this thread where no other
    /// thread will.
    private func waitForAnyLoad() {
        guard waitersRunLoads else { return state.wait() }
        precondition(runQueuedLoad(), "waiting for a load that can never start: no other thread runs loads")
    }

    /// The body of a dedicated IO thread (`ExpertLoads.serve()`): runs loads as they can start,
    /// sleeping on `state` when none can, until the store closes.
    func serveLoads() {
        if settings.policy == .fallback { Self.yieldCoresToCompute() }
        ThreadPool.shared.shareCores(1)
        defer { ThreadPool.shared.shareCores(-1) }
        state.lock()
        servingThreads += 1
        while !closed {
            if !runQueuedLoad() { state.wait() }
        }
        servingThreads -= 1
        state.broadcast()
        state.unlock()
    }

    /// Runs the next load that can start on the calling thread (`ExpertLoads.runNext()`);
    /// false when none can, or the store is closed.
    func runNextLoad() -> Bool {
        state.lock()
        defer { state.unlock() }
        return !closed && runQueuedLoad()
    }

    /// Takes the next load that can start, runs it without the lock and publishes its outcome;
    /// false when none can start.
    private func runQueuedLoad() -> Bool {
        guard let job = nextJob() else { return false }
        state.unlock()
        let outcome = load(job)
        state.lock()
        finish(job, outcome)
        return true
    }

    /// The best queued load that can get room now, with its bytes reserved; nil when none can.
    /// Needs are started in use order; a prediction without room is dropped.
    private func nextJob() -> LoadJob? {
        var needsBlocked = false
        for (key, priority) in queue.ordered() {
            guard let entry = cache.entry(for: key), residency.entries[key] == nil, !failed.contains(key) else {
                queue.remove(key)
                continue
            }
            if priority.isNeed {
                if needsBlocked { continue }
                let rank = priority.level == 0 ? priority.order : Int.max
                let reserved =
                    residency.reserve(entry.length, in: .hot, for: key, claim: .need(rank: rank))
                    || (priority.level == 0 && releaseOtherSessionsHolds()
                        && residency.reserve(entry.length, in: .hot, for: key, claim: .need(rank: rank)))
                if reserved {
                    queue.remove(key)
                    residency.beginLoading(key, bytes: entry.length, tier: .hot, purpose: nil)
                    return LoadJob(key: key, entry: entry, speculative: false)
                }
                needsBlocked = true
            } else {
                queue.remove(key)
                if residency.reserve(entry.length, in: .staging, for: key, claim: .prediction(score: residency.score(key))) {
                    residency.beginLoading(key, bytes: entry.length, tier: .staging, purpose: purpose(of: priority))
                    return LoadJob(key: key, entry: entry, speculative: true)
                }
                residency.metrics.droppedPrefetches += 1
            }
        }
        return nil
    }

    /// What a queued prediction of `priority` is loaded for.
    private func purpose(of priority: PrefetchPriority) -> LoadPurpose {
        if priority.isNextLayer { return .preview }
        if priority.isLookahead, let source = priority.source { return .lookahead(source, offset: priority.offset) }
        return .prompt
    }

    /// Reads, checks and wraps one expert, retrying after faults. Runs without the lock.
    private func load(_ job: LoadJob) -> LoadOutcome {
        let entry = job.entry, path = cache.path(ofFile: entry.file)
        let request = DiskRead(file: entry.file, path: path, offset: entry.offset, length: entry.length, expert: job.key)
        var bytesRead = 0, faults: [String] = [], kinds: [InjectedFault.Kind] = []
        var nanoseconds: UInt64 = 0
        for _ in 0...settings.retries {
            let buffer = pool.acquire(capacity: entry.length)
            do {
                let start = clock.now
                let count = try disk.read(request, into: buffer.base)
                nanoseconds += clock.now - start
                bytesRead += count
                guard count == entry.length else {
                    throw ExpertCacheError.shortRead(file: path, expert: job.key, expected: entry.length, read: count)
                }
                try cache.checkHash(of: job.key, bytes: UnsafeRawBufferPointer(start: buffer.base, count: entry.length))
                let weights = try cache.weights(of: job.key, base: buffer.base, owner: buffer)
                return .loaded(weights, buffer, bytesRead: bytesRead, nanoseconds: nanoseconds, faults: faults, kinds: kinds)
            } catch let error as ExpertCacheError {
                if case .io = error {
                    faults.append("\(error.description) (reading expert \(job.key))")
                } else {
                    faults.append(error.description)
                }
                switch error {
                case .shortRead: kinds.append(.shortRead)
                case .expertHashMismatch: kinds.append(.corruption)
                default: kinds.append(.ioError)
                }
            } catch {
                faults.append("\(path): expert \(job.key): \(error)")
                kinds.append(.ioError)
            }
        }
        return .failed(bytesRead: bytesRead, nanoseconds: nanoseconds, faults: faults, kinds: kinds)
    }

    /// Publishes a load's outcome and opens the expert's readiness signal.
    private func finish(_ job: LoadJob, _ outcome: LoadOutcome) {
        let faults: [String], kinds: [InjectedFault.Kind], bytesRead: Int, nanoseconds: UInt64
        switch outcome {
        case .loaded(let weights, let buffer, let read, let time, let f, let k):
            (faults, kinds, bytesRead, nanoseconds) = (f, k, read, time)
            residency.complete(job.key, weights: weights, buffer: buffer)
            residency.metrics.reads += 1
            if job.speculative { residency.metrics.prefetchedBytes += job.entry.length }
        case .failed(let read, let time, let f, let k):
            (faults, kinds, bytesRead, nanoseconds) = (f, k, read, time)
            residency.fail(job.key)
            failed.insert(job.key)
            loadFaults[job.key] = f
            residency.metrics.failedLoads += 1
        }
        residency.metrics.bytesRead += bytesRead
        residency.metrics.readNanoseconds += nanoseconds
        for kind in kinds {
            switch kind {
            case .ioError: residency.metrics.ioErrors += 1
            case .shortRead: residency.metrics.shortReads += 1
            case .corruption: residency.metrics.corruptions += 1
            }
        }
        if case .loaded = outcome { residency.metrics.retries += kinds.count } else { residency.metrics.retries += max(0, kinds.count - 1) }
        for fault in faults where faultLog.count < 32 && !faultLog.contains(fault) { faultLog.append(fault) }
        readiness.removeValue(forKey: job.key)?.open()
        state.broadcast()
    }
}

extension ExpertStore {
    /// Whether generations' sessions other than one share the store now (besides the store's
    /// own): only then may one session's release unblock another's waiting need.
    private var sharedBySessions: Bool { sessions.count > 2 }

    /// What one session holds in the store between its calls.
    fileprivate struct SessionState {
        /// Needs of the current layer already counted.
        var counted: Set<ExpertKey> = []
        /// Needs of the current layer not yet taken, by their rank of use.
        var pins: [ExpertKey: Int] = [:]
        /// The expert the session computes with now.
        var inUse: ExpertKey?
        /// Tokens of the session's current step.
        var stepTokens = 1
        /// What the session's own needs met: needed, hits, staging hits, missed bytes,
        /// fallbacks and stall (the store's IO serves every session and is counted by the store).
        var metrics = StorageMetrics()
    }

    /// One generation's view of a shared store: the expert provider of its passes, with its own
    /// counted needs, pins, expert in use and steps, over the store's tiers, queue and IO.
    /// Generations that run at the same time each use a session of their own, so none unpins
    /// or unmarks what another is about to use.
    public final class Session: ExpertProvider, @unchecked Sendable {
        /// The store it draws on.
        public let store: ExpertStore
        private let id: Int

        fileprivate init(store: ExpertStore, id: Int) {
            self.store = store
            self.id = id
        }

        deinit { store.endSession(id) }

        /// `ExpertStore.weights(for:)`, for this session.
        public func weights(for key: ExpertKey) -> ExpertWeights? { store.weights(for: key, session: id) }

        /// `ExpertStore.willNeed(_:)`, for this session.
        @discardableResult
        public func willNeed(_ keys: [ExpertKey]) -> [ExpertKey] { store.willNeed(keys, session: id) }

        /// The store's failure.
        public var failure: (any Error)? { store.failure }

        /// What this session's needs met so far: needed, hits, staging hits, missed bytes,
        /// fallbacks and stall; the other fields are zero, as IO is the store's.
        public func metrics() -> StorageMetrics { store.sessionMetrics(id) }

        /// `ExpertStore.beginStep(tokens:)`, for this session.
        public func beginStep(tokens: Int = 1) { store.beginStep(tokens: tokens, session: id) }

        /// `ExpertStore.endStep()`, for this session.
        public func endStep() { store.endStep(session: id) }

        /// This session's generation was cancelled: when no other session is under way, every
        /// queued load is dropped (counted as cancelled prefetches), since only this generation's
        /// needs and predictions put them there; loads already reading finish.
        public func cancelQueuedLoads() { store.cancelQueuedLoads(session: id) }
    }
}
