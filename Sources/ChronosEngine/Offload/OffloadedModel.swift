import ChronosFormats
import ChronosModel
import ChronosRouting
import ChronosStorage
import ChronosTensor
import Foundation

/// A model loaded for a storage run: dense weights resident, routed experts kept as the
/// settings' mode says (all resident, memory-mapped, or in budgeted tiers fed from the expert
/// cache), with the predictors that feed the prefetcher. Once loaded it does not change, so
/// generations on several threads may share it (each through its own `OffloadSession`).
public final class OffloadedModel: @unchecked Sendable {
    /// Where the routed experts are kept.
    public enum Backing {
        /// All in memory: loaded from the checkpoint, or read from the cache of a stripped one.
        case resident
        /// The cluster files memory-mapped, the OS paging experts in (`mmap`).
        case mapped(MappedExperts)
        /// Budgeted tiers that IO threads fill from the cache (`lru`, `chronos`).
        case tiered(ExpertStore)
    }

    /// The model.
    public let model: any LanguageModel
    /// The settings it was loaded with.
    public let settings: OffloadSettings
    /// The packed cache (nil for `resident`, unless the checkpoint was stripped of its experts).
    public let cache: ExpertCache?
    /// Where the routed experts are kept.
    public let backing: Backing
    /// Bytes of all routed experts.
    public let totalExpertBytes: Int
    /// The expert budget in bytes.
    public let budgetBytes: Int
    /// The cluster files as the real disk reads them.
    private let fileDisk: FileExpertDisk?
    /// Predicts t+1…t+K (`chronos` on a model with a lookahead head).
    public private(set) var lookahead: (any LookaheadPredictor)?
    /// Predicts the prompt-level set (`chronos`).
    public private(set) var promptPredictor: (any PromptExpertPredictor)?
    /// Whether decode steps prefetch each layer's preview of the next MoE layer (`chronos`).
    public private(set) var previewsNextLayer = false
    /// Whether decode steps predict the routing of repeated text (`chronos`).
    public private(set) var predictsRepetition = false

    /// Loads the model in `directory` as `settings` say; the expert cache must be packed for
    /// every mode but `resident`, and is checked against the model. A checkpoint stripped of its
    /// experts needs the cache in every mode: `resident` then reads every expert from it into
    /// memory.
    public init(directory: URL, settings: OffloadSettings) throws {
        self.settings = settings
        if settings.mode == .resident {
            var cache: ExpertCache?
            let model: any LanguageModel
            if StrippedCheckpoint.isStripped(directory: directory) {
                let opened = try ExpertCache.open(modelDirectory: directory)
                model = try ModelRegistry.load(directory: directory, experts: opened.readAllExperts())
                try opened.validate(against: model)
                cache = opened
            } else {
                model = try ModelRegistry.load(directory: directory)
            }
            self.model = model
            self.cache = cache
            backing = .resident
            fileDisk = nil
            totalExpertBytes = cache?.totalExpertBytes ?? model.parameterCounts.expertBytes
            budgetBytes = totalExpertBytes
            Self.prefault(directory: directory)
            return
        }
        let cache = try ExpertCache.open(modelDirectory: directory)
        let fileDisk = try FileExpertDisk(cache: cache)
        self.fileDisk = fileDisk
        if settings.cold { fileDisk.dropPageCache() }
        self.cache = cache
        totalExpertBytes = cache.totalExpertBytes
        budgetBytes = settings.budget.bytes(ofTotal: cache.totalExpertBytes)
        let simulated = settings.disk.map { SimulatedDisk(wrapping: fileDisk, model: $0) }
        let base: any ExpertDisk = simulated ?? fileDisk

        if settings.mode == .mmap {
            let mapped = try MappedExperts(cache: cache, simulated: simulated, pageCacheBytes: budgetBytes)
            backing = .mapped(mapped)
            model = try ModelRegistry.load(directory: directory, experts: mapped)
        } else {
            let faulty = settings.faults.isEmpty ? nil : FaultInjectingDisk(wrapping: base, faults: settings.faults)
            let store = try ExpertStore(
                cache: cache, disk: faulty ?? base,
                settings: ExpertStoreSettings(
                    budget: Self.tiers(
                        total: budgetBytes, expertBytes: cache.totalExpertBytes, settings: settings,
                        largestExpert: cache.manifest.largestExpertBytes),
                    policy: settings.policy, eviction: settings.resolvedEviction,
                    ioThreads: settings.ioThreads, retries: settings.retries,
                    prefetchThreshold: settings.prefetchThreshold,
                    previewThreshold: settings.previewThreshold))
            backing = .tiered(store)
            do {
                model = try ModelRegistry.load(directory: directory, experts: store)
            } catch {
                store.close()
                throw error
            }
        }
        do {
            try cache.validate(against: model)
        } catch {
            store?.close()
            throw error
        }
        Self.prefault(directory: directory, except: Set(cache.manifest.experts.flatMap { $0.tensors.map(\.source) }))
        if settings.mode == .chronos {
            do {
                try loadPredictors(directory: directory, cache: cache)
            } catch {
                store?.close()
                throw error
            }
        }
    }

    /// The tier budgets for `total` bytes of a model whose experts take `expertBytes`: the
    /// staging share of `settings`, less what the hot set needs to hold the largest expert,
    /// unless staging could not then hold even the largest expert or the hot set alone can hold
    /// every expert (nothing is left to predict), when the hot set gets everything.
    public static func tiers(total: Int, expertBytes: Int, settings: OffloadSettings, largestExpert: Int) -> ResidencyBudget {
        let hot = max(ResidencyBudget(total: total, stagingFraction: settings.resolvedStagingFraction).hot, largestExpert)
        return total - hot >= largestExpert && total < expertBytes
            ? ResidencyBudget(hot: hot, staging: total - hot)
            : ResidencyBudget(hot: total, staging: 0)
    }

    /// The tiered store (`lru`, `chronos`), nil for the other backings.
    public var store: ExpertStore? {
        if case .tiered(let store) = backing { store } else { nil }
    }

    /// The storage counters so far (nil for `resident`).
    public func storageMetrics() -> StorageMetrics? {
        switch backing {
        case .resident: nil
        case .mapped(let mapped): mapped.metrics()
        case .tiered(let store): store.metrics()
        }
    }

    /// With `cold`, drops the cluster files from the OS page cache (before each generation, so
    /// runs that share the files do not warm them for one another).
    public func dropPageCacheIfCold() {
        if settings.cold { fileDisk?.dropPageCache() }
    }

    /// Stops the IO threads.
    public func close() {
        store?.close()
    }

    /// Stops the IO threads and returns `metrics`, the runs made on this model, with what only
    /// closing settles: the decode's prefetched bytes that were never used.
    public func close(finalising metrics: OffloadRunMetrics) -> OffloadRunMetrics {
        close()
        var metrics = metrics
        if let final = storageMetrics() {
            metrics.decode.wastedPrefetchBytes = final.wastedPrefetchBytes - metrics.prefill.wastedPrefetchBytes
        }
        return metrics
    }

    /// The predictors of a `chronos` run, as far as the settings allow: the next-layer preview
    /// and the repetition of earlier text (any MoE model); a trained lookahead head
    /// (`lookahead.safetensors`) if the directory has one, else a Chronos-native head; the intent
    /// classifier (`intent.safetensors`) if there is one.
    private func loadPredictors(directory: URL, cache: ExpertCache) throws {
        let summary = model.summary
        previewsNextLayer = settings.predictors.nextLayer
        predictsRepetition = settings.predictors.repetition
        if settings.predictors.lookahead {
            let perOffset = settings.lookaheadExperts ?? summary.expertsPerToken
            if let head = try TrainedLookaheadHead.load(from: directory, summary: summary) {
                lookahead = TrainedLookaheadPredictor(
                    head: head, topK: summary.expertsPerToken, expertsPerOffset: perOffset,
                    minimumChance: settings.lookaheadChance)
            } else if let horizon = summary.lookaheadSteps, horizon > 0 {
                lookahead = ChronosLookaheadPredictor(
                    summary: summary, horizon: horizon, expertsPerOffset: perOffset,
                    minimumChance: settings.lookaheadChance)
            }
        }
        if settings.predictors.intent, let classifier = try IntentClassifier.load(from: directory, summary: summary) {
            let bytes = Dictionary(uniqueKeysWithValues: cache.manifest.experts.map { ($0.key, $0.length) })
            promptPredictor = IntentExpertPredictor(classifier: classifier, bytes: bytes)
        }
    }

    /// Bytes of prompt-level experts to preload: `promptSetShare` of the staging tier.
    func promptSetBudget() -> Int {
        guard settings.mode == .chronos else { return 0 }
        return Int(Double(store?.settings.budget.staging ?? 0) * settings.promptSetShare)
    }

    /// Faults every page of the checkpoint's tensors (those named in `except` aside) into
    /// memory, so the dense weights are resident before timing starts.
    static func prefault(directory: URL, except: Set<String> = []) {
        guard let checkpoint = try? SafetensorsCheckpoint(directory: directory) else { return }
        var sink: UInt8 = 0
        for name in checkpoint.tensorNames where !except.contains(name) {
            guard let tensor = try? checkpoint.tensor(named: name) else { continue }
            let base = UnsafeRawPointer(tensor.rawPointer)
            for offset in stride(from: 0, to: tensor.byteCount, by: 4096) { sink &+= base.load(fromByteOffset: offset, as: UInt8.self) }
        }
        withExtendedLifetime(sink) {}
    }
}
