import ArgumentParser
import ChronosEngine
import ChronosStorage
import ChronosTensor
import Foundation

extension MissPolicy: ExpressibleByArgument {}
extension EvictionPolicy: ExpressibleByArgument {}
extension ExpertResidencyMode: ExpressibleByArgument {}

/// The options that say how routed experts are kept, loaded and timed, shared by the commands
/// that run a model with offloaded experts.
struct OffloadOptions: ParsableArguments {
    @Option(
        help:
            "Expert bytes allowed in memory: a fraction of all expert bytes (0.3, 30%) or a size (300MB, 1.5GiB). Offloads experts from the packed expert cache."
    )
    var expertBudget: String?
    @Option(
        help:
            "What to do when a needed expert is not resident: wait (exact), fallback (lossy: shared expert or renormalise), sync (read on the decode thread)."
    )
    var policy: MissPolicy = .wait
    @Option(help: "Eviction: scored (recency + predictions) or lru (default: scored; lru for --experts lru).")
    var eviction: EvictionPolicy?
    @Option(
        parsing: .unconditional,
        help: "Share of the budget kept for predicted and demoted experts (the RAM staging tier; default: 0.6 for chronos, 0 for lru).")
    var staging: Double?
    @Option(parsing: .unconditional, help: "Dedicated IO threads.") var ioThreads = 2
    @Option(parsing: .unconditional, help: "Simulated disk: latency per read in ms (or CHRONOS_SIM_SSD_MS).") var ssdMs: Double?
    @Option(parsing: .unconditional, help: "Simulated disk: bandwidth in MB/s (or CHRONOS_SIM_SSD_MBPS).") var ssdMbps: Double?
    @Flag(help: "Drop the cluster files from the OS page cache first (posix_fadvise DONTNEED): a cold-cache run.")
    var cold = false
    @Option(
        help:
            "Inject a fault: KIND:N (the N-th read) or KIND:L<layer>/E<expert>, optional xCOUNT; KIND is io-error, short-read or corrupt (repeatable)."
    )
    var fault: [String] = []
    @Flag(help: "Do not feed the lookahead head's predictions to the prefetcher.") var noLookahead = false
    @Flag(help: "Do not load the intent classifier's set (intent.safetensors) during the prefill.") var noIntent = false
    @Flag(help: "Do not prefetch the experts each layer previews for the next MoE layer during decode.") var noNextLayer = false
    @Flag(help: "Do not predict the routing of text that repeats earlier text from the routing that followed it.") var noRepetition = false
    @Option(
        parsing: .unconditional,
        help: "Expert ids the lookahead head predicts per future token (and MoE layer, for a trained head) (default: top-k).")
    var lookaheadExperts: Int?
    @Option(
        parsing: .unconditional,
        help: "Name an expert for a future token only when the lookahead head gives it this chance of use there (top-k × its probability).")
    var lookaheadChance = 0.6
    @Option(
        parsing: .unconditional,
        help: "Load lookahead predictions only while the predictor's measured precision on experts not in memory reaches this.")
    var prefetchThreshold = 0.3
    @Option(
        parsing: .unconditional,
        help: "Load next-layer previews only while their measured precision (on experts not in memory) reaches this.")
    var previewThreshold = 0.6

    /// The simulated disk the flags or the environment describe, if any.
    func diskModel() throws -> DiskModel? {
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
    func budget() throws -> ExpertBudget? {
        guard let expertBudget else { return nil }
        guard let budget = ExpertBudget(parsing: expertBudget) else {
            throw ValidationError(
                "--expert-budget '\(expertBudget)' is invalid: expected a fraction in (0, 1] (0.3), a percentage up to 100% (30%) or a size from 1 B to 1 PB (300MB, 1.5GiB)"
            )
        }
        return budget
    }

    /// Checks every option where it enters, naming it, its value and its range.
    func validate() throws {
        try checkingOptions {
            _ = try diskModel()
            _ = try faults()
            try settings(mode: .chronos, budget: budget() ?? .fraction(1)).validate()
        }
    }

    /// The parsed faults.
    func faults() throws -> [InjectedFault] {
        try fault.map { text in
            guard let fault = InjectedFault(parsing: text) else {
                throw ValidationError("--fault '\(text)' is not KIND:N or KIND:L<layer>/E<expert> (KIND: io-error, short-read, corrupt)")
            }
            return fault
        }
    }

    /// Settings for a run of `mode` at `budget`.
    func settings(mode: ExpertResidencyMode, budget: ExpertBudget, policy: MissPolicy? = nil) throws -> OffloadSettings {
        OffloadSettings(
            mode: mode, budget: budget, policy: policy ?? self.policy, eviction: eviction, stagingFraction: staging,
            ioThreads: ioThreads, disk: try diskModel(), cold: cold, faults: try faults(),
            predictors: PredictorSelection(lookahead: !noLookahead, intent: !noIntent, nextLayer: !noNextLayer, repetition: !noRepetition),
            lookaheadExperts: lookaheadExperts,
            lookaheadChance: lookaheadChance, prefetchThreshold: prefetchThreshold, previewThreshold: previewThreshold)
    }
}
