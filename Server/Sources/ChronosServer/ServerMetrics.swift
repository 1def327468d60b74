import ChronosModel
import ChronosStorage
import Prometheus
import Synchronization

/// The server's Prometheus metrics: requests, tokens, time to first token, decode rate, and the
/// expert store's counters, read from the store when scraped.
public final class ServerMetrics: Sendable {
    /// The registry `GET /metrics` writes out.
    public let registry = PrometheusCollectorRegistry()
    private let promptTokens: Counter
    private let generatedTokens: Counter
    private let generationsActive: Gauge
    private let generationsWaiting: Gauge
    private let generationsCancelled: Counter
    private let firstTokenSeconds: ValueHistogram
    private let decodeTokensPerSecond: ValueHistogram
    private let store: StoreMetrics
    private let passes: Counter
    private let passSequences: Counter
    /// The store counters at the last scrape, from which the counters' increments are taken.
    private let lastStorage = Mutex(StorageMetrics())
    /// The batcher's counts at the last scrape.
    private let lastPasses = Mutex((passes: 0, sequences: 0))

    /// The expert store's series.
    private struct StoreMetrics: Sendable {
        let needs, hits, stallSeconds, reads, bytesRead, prefetchedBytes, prefetchUsedBytes, evictions, fallbacks: Counter
        let hitRate, hotBytes, stagingBytes: Gauge
    }

    /// Metrics in a registry of their own.
    public init() {
        let r = registry
        promptTokens = r.makeCounter(descriptor: Self.metric("prompt_tokens", "total", "Prompt tokens of the generations run."))
        generatedTokens = r.makeCounter(descriptor: Self.metric("generated_tokens", "total", "Tokens generated."))
        generationsActive = r.makeGauge(descriptor: Self.metric("generations_active", "", "Generations decoding now."))
        generationsWaiting = r.makeGauge(descriptor: Self.metric("generations_waiting", "", "Requests waiting for a generation slot."))
        generationsCancelled = r.makeCounter(
            descriptor: Self.metric("generations_cancelled", "total", "Generations ended early because their client went away."))
        firstTokenSeconds = r.makeValueHistogram(
            descriptor: Self.metric(
                "time_to_first_token", "seconds", "From a request's acceptance to its first generated text, waiting for a slot included."),
            buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        decodeTokensPerSecond = r.makeValueHistogram(
            descriptor: Self.metric("decode_tokens", "per_second", "Each generation's decode rate after its first token."),
            buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000])
        passes = r.makeCounter(descriptor: Self.metric("forward_passes", "total", "Forward passes run over the model."))
        passSequences = r.makeCounter(
            descriptor: Self.metric(
                "forward_pass_sequences", "total", "Generations the forward passes ran: over passes, the mean batch."))
        store = StoreMetrics(
            needs: r.makeCounter(descriptor: Self.metric("expert_needs", "total", "Routed experts the forward passes needed.")),
            hits: r.makeCounter(descriptor: Self.metric("expert_hits", "total", "Needed experts that were in memory.")),
            stallSeconds: r.makeCounter(
                descriptor: Self.metric("expert_stall", "seconds_total", "Time the forward passes waited for experts.")),
            reads: r.makeCounter(descriptor: Self.metric("expert_reads", "total", "Expert reads from the expert cache.")),
            bytesRead: r.makeCounter(descriptor: Self.metric("expert_read", "bytes_total", "Bytes read from the expert cache.")),
            prefetchedBytes: r.makeCounter(descriptor: Self.metric("expert_prefetched", "bytes_total", "Bytes loaded ahead of need.")),
            prefetchUsedBytes: r.makeCounter(
                descriptor: Self.metric("expert_prefetch_used", "bytes_total", "Prefetched bytes that a forward pass then used.")),
            evictions: r.makeCounter(descriptor: Self.metric("expert_evictions", "total", "Experts evicted from memory.")),
            fallbacks: r.makeCounter(
                descriptor: Self.metric("expert_fallbacks", "total", "Needs computed without their expert (--policy fallback).")),
            hitRate: r.makeGauge(descriptor: Self.metric("expert_hit_rate", "", "Hits over needs since the server started.")),
            hotBytes: r.makeGauge(
                descriptor: Self.metric("expert_resident", "bytes", "Expert bytes in memory, by tier."), labels: [("tier", "hot")]),
            stagingBytes: r.makeGauge(
                descriptor: Self.metric("expert_resident", "bytes", "Expert bytes in memory, by tier."), labels: [("tier", "staging")]))
    }

    /// Counts a finished HTTP request to `path` answered with `status`.
    public func requestAnswered(path: String, status: Int) {
        registry.makeCounter(
            descriptor: Self.metric("http_requests", "total", "HTTP requests answered."),
            labels: [("path", path), ("status", String(status))]
        ).increment()
    }

    /// A generation took a slot.
    func generationStarted() { generationsActive.increment() }

    /// A generation produced its first text `seconds` after its request was accepted.
    func firstToken(after seconds: Double) { firstTokenSeconds.record(seconds) }

    /// `count` requests wait for a slot now.
    public func waiting(_ count: Int) { generationsWaiting.set(Double(count)) }

    /// A generation ended.
    func generationEnded(_ outcome: GenerationOutcome) {
        generationsActive.decrement()
        promptTokens.increment(by: Double(outcome.usage.promptTokens))
        generatedTokens.increment(by: Double(outcome.usage.completionTokens))
        if outcome.metrics.decodeTokensPerSecond > 0 { decodeTokensPerSecond.record(outcome.metrics.decodeTokensPerSecond) }
        if outcome.finishReason == nil { generationsCancelled.increment() }
    }

    /// A generation failed.
    func generationFailed() { generationsActive.decrement() }

    /// Brings the expert store's series up to `storage` (the store's counters since it opened)
    /// and `resident` (bytes each tier holds now).
    public func updateStore(_ storage: StorageMetrics, resident: [ResidencyTier: Int]) {
        let delta = lastStorage.withLock { last in
            defer { last = storage }
            return storage.since(last)
        }
        store.needs.increment(by: Double(max(0, delta.needed)))
        store.hits.increment(by: Double(max(0, delta.hits)))
        store.stallSeconds.increment(by: Double(delta.stallNanoseconds) / 1e9)
        store.reads.increment(by: Double(max(0, delta.reads)))
        store.bytesRead.increment(by: Double(max(0, delta.bytesRead)))
        store.prefetchedBytes.increment(by: Double(max(0, delta.prefetchedBytes)))
        store.prefetchUsedBytes.increment(by: Double(max(0, delta.prefetchUsedBytes)))
        store.evictions.increment(by: Double(max(0, delta.evictions)))
        store.fallbacks.increment(by: Double(max(0, delta.fallbacks)))
        store.hitRate.set(storage.hitRate)
        store.hotBytes.set(Double(resident[.hot] ?? 0))
        store.stagingBytes.set(Double(resident[.staging] ?? 0))
    }

    /// Sets, for each MoE layer of `layers`, how many of its experts each in-memory tier holds
    /// now (`placements` as the store reports them; an expert still loading is not held yet).
    public func updateLayerResidency(_ placements: [ExpertKey: ExpertPlacement], layers: [Int]) {
        var held: [Int: [ResidencyTier: Int]] = [:]
        for (key, placement) in placements where !placement.isLoading { held[key.layer, default: [:]][placement.tier, default: 0] += 1 }
        for layer in layers {
            for tier in [ResidencyTier.hot, .staging] {
                registry.makeGauge(
                    descriptor: Self.metric("expert_layer_resident", "experts", "Experts of each MoE layer in memory now, by tier."),
                    labels: [("layer", String(layer)), ("tier", tier.rawValue)]
                ).set(Double(held[layer]?[tier] ?? 0))
            }
        }
    }

    /// Brings the pass series up to `counts`: the batcher's passes and the sequences they ran.
    public func updatePasses(_ counts: (passes: Int, sequences: Int)) {
        let delta = lastPasses.withLock { last in
            defer { last = counts }
            return (counts.passes - last.passes, counts.sequences - last.sequences)
        }
        passes.increment(by: Double(max(0, delta.0)))
        passSequences.increment(by: Double(max(0, delta.1)))
    }

    /// The name `chronos_NAME_UNIT`, with its help text.
    private static func metric(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "chronos", metricName: name, unitName: unit, helpText: help)
    }

    /// The metrics in Prometheus's text format.
    public func text() -> String { registry.emitToString() }
}
