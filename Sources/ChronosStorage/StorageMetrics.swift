/// Counters of an expert store: what was needed and found, what was read, waited for,
/// prefetched, wasted and injected. Snapshots subtract, so a phase (prefill, decode) can be
/// measured on its own; peaks are kept from the later snapshot.
public struct StorageMetrics: Sendable, Equatable, Codable {
    /// (layer, expert) needs announced by the MoE blocks.
    public var needed = 0
    /// Needs already resident (hot or staging) when announced.
    public var hits = 0
    /// Needs served from the staging tier (promoted to the hot set).
    public var stagingHits = 0
    /// Nanoseconds the decode thread spent waiting for expert bytes (blocked or reading).
    public var stallNanoseconds: UInt64 = 0
    /// Bytes of the needs that were not resident when announced (what a perfect prefetcher
    /// would have had to read ahead).
    public var missedBytes = 0
    /// Experts read from disk successfully.
    public var reads = 0
    /// Nanoseconds spent in disk reads, summed over IO threads (for the bandwidth achieved).
    public var readNanoseconds: UInt64 = 0
    /// Bytes read from disk, retries included.
    public var bytesRead = 0
    /// Bytes read for predictions (lookahead or prompt-level) rather than for a need.
    public var prefetchedBytes = 0
    /// Bytes prefetched that were used before leaving memory.
    public var prefetchUsedBytes = 0
    /// Bytes prefetched that left memory (or were still unused at the end) without being used.
    public var wastedPrefetchBytes = 0
    /// Queued predictions cancelled because a newer prediction no longer named them.
    public var cancelledPrefetches = 0
    /// Predictions dropped because their tier had no room for them.
    public var droppedPrefetches = 0
    /// Experts given up by a tier (demotions included).
    public var evictions = 0
    /// Experts moved from the hot set to staging instead of being dropped.
    public var demotions = 0
    /// Requests for weights answered with nil (the block fell back).
    public var fallbacks = 0
    /// IO errors detected (injected or real).
    public var ioErrors = 0
    /// Reads that returned fewer bytes than asked.
    public var shortReads = 0
    /// Reads whose bytes did not match the expert's hash.
    public var corruptions = 0
    /// Reads repeated after a fault.
    public var retries = 0
    /// Loads that failed after every retry.
    public var failedLoads = 0
    /// Most bytes the hot set held at once.
    public var peakHotBytes = 0
    /// Most bytes the staging tier held at once.
    public var peakStagingBytes = 0
    /// Most expert bytes held in memory at once, both tiers together.
    public var peakResidentBytes = 0
    /// Bytes held now, both tiers together.
    public var residentBytes = 0

    /// Counters that start at zero.
    public init() {}

    /// Faults detected, all kinds together.
    public var faults: Int { ioErrors + shortReads + corruptions }

    /// hits / needed (1 when nothing was needed).
    public var hitRate: Double { needed > 0 ? Double(hits) / Double(needed) : 1 }

    /// Adds the counts one generation's needs make — needed, hits, staging hits, missed bytes,
    /// fallbacks and stall — from `counts`.
    mutating func addGenerationCounts(_ counts: StorageMetrics) {
        needed += counts.needed
        hits += counts.hits
        stagingHits += counts.stagingHits
        missedBytes += counts.missedBytes
        fallbacks += counts.fallbacks
        stallNanoseconds += counts.stallNanoseconds
    }

    /// These metrics with the counts of one generation's needs (needed, hits, staging hits,
    /// missed bytes, fallbacks and stall) taken from `generation`: the store's IO serves every
    /// generation sharing it, but what each one's needs met is its own.
    public func withGenerationCounts(of generation: StorageMetrics) -> StorageMetrics {
        var m = self
        m.needed = generation.needed
        m.hits = generation.hits
        m.stagingHits = generation.stagingHits
        m.missedBytes = generation.missedBytes
        m.fallbacks = generation.fallbacks
        m.stallNanoseconds = generation.stallNanoseconds
        return m
    }
    /// What happened between `earlier` and `self`; peaks and current bytes are `self`'s.
    public func since(_ earlier: StorageMetrics) -> StorageMetrics {
        var d = self
        d.needed -= earlier.needed
        d.hits -= earlier.hits
        d.stagingHits -= earlier.stagingHits
        d.stallNanoseconds -= earlier.stallNanoseconds
        d.missedBytes -= earlier.missedBytes
        d.reads -= earlier.reads
        d.readNanoseconds -= earlier.readNanoseconds
        d.bytesRead -= earlier.bytesRead
        d.prefetchedBytes -= earlier.prefetchedBytes
        d.prefetchUsedBytes -= earlier.prefetchUsedBytes
        d.wastedPrefetchBytes -= earlier.wastedPrefetchBytes
        d.cancelledPrefetches -= earlier.cancelledPrefetches
        d.droppedPrefetches -= earlier.droppedPrefetches
        d.evictions -= earlier.evictions
        d.demotions -= earlier.demotions
        d.fallbacks -= earlier.fallbacks
        d.ioErrors -= earlier.ioErrors
        d.shortReads -= earlier.shortReads
        d.corruptions -= earlier.corruptions
        d.retries -= earlier.retries
        d.failedLoads -= earlier.failedLoads
        return d
    }

    /// The counters of two runs summed; peaks are the larger, current bytes `other`'s.
    public func adding(_ other: StorageMetrics) -> StorageMetrics {
        var s = other
        s.needed += needed
        s.hits += hits
        s.stagingHits += stagingHits
        s.stallNanoseconds += stallNanoseconds
        s.missedBytes += missedBytes
        s.reads += reads
        s.readNanoseconds += readNanoseconds
        s.bytesRead += bytesRead
        s.prefetchedBytes += prefetchedBytes
        s.prefetchUsedBytes += prefetchUsedBytes
        s.wastedPrefetchBytes += wastedPrefetchBytes
        s.cancelledPrefetches += cancelledPrefetches
        s.droppedPrefetches += droppedPrefetches
        s.evictions += evictions
        s.demotions += demotions
        s.fallbacks += fallbacks
        s.ioErrors += ioErrors
        s.shortReads += shortReads
        s.corruptions += corruptions
        s.retries += retries
        s.failedLoads += failedLoads
        s.peakHotBytes = max(peakHotBytes, other.peakHotBytes)
        s.peakStagingBytes = max(peakStagingBytes, other.peakStagingBytes)
        s.peakResidentBytes = max(peakResidentBytes, other.peakResidentBytes)
        return s
    }
}
