import ArgumentParser
import ChronosEngine
import ChronosStorage
import ChronosTensor
import Foundation

extension MissPolicy: ExpressibleByArgument {}
extension EvictionPolicy: ExpressibleByArgument {}
extension ExpertResidencyMode: ExpressibleByArgument {}

/// The options that say how routed experts are kept, loaded and timed, shared by `chronos` and
/// `chronos-server` wherever a model runs with offloaded experts.
public struct OffloadOptions: ParsableArguments, Sendable {
    /// `--expert-budget`: the expert bytes allowed in memory, as given.
    @Option(
        help:
            "Expert bytes allowed in memory: a fraction of all expert bytes (0.3, 30%) or a size (300MB, 1.5GiB). Offloads experts from the packed expert cache."
    )
    public var expertBudget: String?
    /// `--policy`: what a decode step does about a needed expert that is not in memory.
    @Option(
        help:
            "What to do when a needed expert is not resident: wait (exact), fallback (lossy: shared expert or renormalise), sync (read on the decode thread)."
    )
    public var policy: MissPolicy = .wait
    /// `--eviction`: which expert leaves memory first.
    @Option(help: "Eviction: scored (recency + predictions) or lru (default: scored; lru for --experts lru).")
    public var eviction: EvictionPolicy?
    /// `--staging`: the share of the budget for predicted and demoted experts.
    @Option(
        parsing: .unconditional,
        help: "Share of the budget kept for predicted and demoted experts (the RAM staging tier; default: 0.6 for chronos, 0 for lru).")
    public var staging: Double?
    /// `--io-threads`: the threads that read experts.
    @Option(parsing: .unconditional, help: "Dedicated IO threads.") public var ioThreads = 2
    /// `--ssd-ms`: the simulated disk's latency per read.
    @Option(parsing: .unconditional, help: "Simulated disk: latency per read in ms (or CHRONOS_SIM_SSD_MS).") public var ssdMs: Double?
    /// `--ssd-mbps`: the simulated disk's bandwidth.
    @Option(parsing: .unconditional, help: "Simulated disk: bandwidth in MB/s (or CHRONOS_SIM_SSD_MBPS).") public var ssdMbps: Double?
    /// `--cold`: start with the expert files out of the page cache.
    @Flag(help: "Drop the cluster files from the OS page cache first (posix_fadvise DONTNEED): a cold-cache run.")
    public var cold = false
    /// `--fault`: faults to inject into expert reads, as given.
    @Option(
        help:
            "Inject a fault: KIND:N (the N-th read) or KIND:L<layer>/E<expert>, optional xCOUNT; KIND is io-error, short-read or corrupt (repeatable)."
    )
    public var fault: [String] = []
    /// `--no-lookahead`: the lookahead head predicts nothing for the prefetcher.
    @Flag(help: "Do not feed the lookahead head's predictions to the prefetcher.") public var noLookahead = false
    /// `--no-intent`: the intent classifier's set is not loaded.
    @Flag(help: "Do not load the intent classifier's set (intent.safetensors) during the prefill.") public var noIntent = false
    /// `--no-next-layer`: next-layer previews are not prefetched.
    @Flag(help: "Do not prefetch the experts each layer previews for the next MoE layer during decode.") public var noNextLayer = false
    /// `--no-repetition`: repeated text does not predict routing.
    @Flag(help: "Do not predict the routing of text that repeats earlier text from the routing that followed it.") public var noRepetition =
        false
    /// `--lookahead-experts`: expert ids predicted per future token.
    @Option(
        parsing: .unconditional,
        help: "Expert ids the lookahead head predicts per future token (and MoE layer, for a trained head) (default: top-k).")
    public var lookaheadExperts: Int?
    /// `--lookahead-chance`: the chance of use below which a prediction is dropped.
    @Option(
        parsing: .unconditional,
        help: "Name an expert for a future token only when the lookahead head gives it this chance of use there (top-k × its probability).")
    public var lookaheadChance = 0.6
    /// `--prefetch-threshold`: the measured precision lookahead loads need.
    @Option(
        parsing: .unconditional,
        help: "Load lookahead predictions only while the predictor's measured precision on experts not in memory reaches this.")
    public var prefetchThreshold = 0.3
    /// `--preview-threshold`: the measured precision next-layer loads need.
    @Option(
        parsing: .unconditional,
        help: "Load next-layer previews only while their measured precision (on experts not in memory) reaches this.")
    public var previewThreshold = 0.6

    /// Options at their defaults.
    public init() {}

    /// The simulated disk the flags or the environment describe, if any.
    public func diskModel() throws -> DiskModel? {
        let environment = try DiskModel.fromEnvironment()
        if ssdMs != nil || ssdMbps != nil {
            return try DiskModel.checked(
                milliseconds: ssdMs ?? (environment?.latency).map { $0 * 1000 } ?? 0.1,
                megabytesPerSecond: ssdMbps ?? (environment?.bandwidth).map { $0 / 1e6 } ?? 2000,
                latencyName: "--ssd-ms", bandwidthName: "--ssd-mbps")
        }
        return environment
    }

    /// The parsed budget, or nil when none was given.
    public func budget() throws -> ExpertBudget? {
        guard let expertBudget else { return nil }
        guard let budget = ExpertBudget(parsing: expertBudget) else {
            throw ValidationError(
                "--expert-budget '\(expertBudget)' is invalid: expected a fraction in (0, 1] (0.3), a percentage up to 100% (30%) or a size from 1 B to 1 PB (300MB, 1.5GiB)"
            )
        }
        return budget
    }

    /// Checks every option where it enters, naming it, its value and its range.
    public func validate() throws {
        _ = try faults()
        do {
            _ = try diskModel()
            try settings(mode: .chronos, budget: budget() ?? .fraction(1)).validate()
        } catch let invalid as InvalidSetting {
            throw ValidationError(invalid.renamed { Self.optionNames[$0] ?? InvalidSetting.optionName($0) }.description)
        }
    }

    /// The options of the settings `OffloadSettings` checks under other names.
    private static let optionNames = ["staging_fraction": "--staging", "latency_ms": "--ssd-ms", "bandwidth_mbps": "--ssd-mbps"]

    /// The parsed faults.
    public func faults() throws -> [InjectedFault] {
        try fault.map { text in
            guard let fault = InjectedFault(parsing: text) else {
                throw ValidationError("--fault '\(text)' is not KIND:N or KIND:L<layer>/E<expert> (KIND: io-error, short-read, corrupt)")
            }
            return fault
        }
    }

    /// Settings for a run of `mode` at `budget`.
    public func settings(mode: ExpertResidencyMode, budget: ExpertBudget, policy: MissPolicy? = nil) throws -> OffloadSettings {
        OffloadSettings(
            mode: mode, budget: budget, policy: policy ?? self.policy, eviction: eviction, stagingFraction: staging,
            ioThreads: ioThreads, disk: try diskModel(), cold: cold, faults: try faults(),
            predictors: PredictorSelection(lookahead: !noLookahead, intent: !noIntent, nextLayer: !noNextLayer, repetition: !noRepetition),
            lookaheadExperts: lookaheadExperts,
            lookaheadChance: lookaheadChance, prefetchThreshold: prefetchThreshold, previewThreshold: previewThreshold)
    }
}
