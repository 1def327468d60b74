import ArgumentParser
import ChronosEngine
import ChronosStorage
import ChronosTensor

/// The case of `T` that `text` names, or an error listing the names.
private func choice<T: RawRepresentable & CaseIterable>(_ text: String) throws -> T where T.RawValue == String {
    guard let value = T(rawValue: text) else {
        throw ValidationError("'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return value
}

/// How the served model's routed experts are kept, loaded and predicted: the offload options of
/// `chronos generate`, read into the libraries' `OffloadSettings`.
struct ServerOffloadOptions: ParsableArguments {
    @Option(
        help: "Where experts live when offloaded: chronos (prediction + prefetch), lru, mmap or resident (default: chronos).",
        transform: choice)
    var experts: ExpertResidencyMode?
    @Option(
        help: """
            Expert bytes allowed in memory: a fraction of all expert bytes (0.3, 30%) or a size (300MB, 1.5GiB); \
            0.5 for the shipped model; without it, another --model keeps every expert in memory.
            """)
    var expertBudget: String?
    @Option(
        help: "When a needed expert is not in memory: wait (exact), fallback (lossy), sync (read on the decode thread).", transform: choice)
    var policy: MissPolicy = .wait
    @Option(help: "Eviction: scored (recency + predictions) or lru (default: scored; lru for --experts lru).", transform: choice)
    var eviction: EvictionPolicy?
    @Option(
        parsing: .unconditional, help: "Share of the budget kept for predicted and demoted experts (default: 0.6 for chronos, 0 for lru).")
    var staging: Double?
    @Option(parsing: .unconditional, help: "Dedicated IO threads.") var ioThreads = 2
    @Option(parsing: .unconditional, help: "Simulated disk: latency per read in ms (or CHRONOS_SIM_SSD_MS).") var ssdMs: Double?
    @Option(parsing: .unconditional, help: "Simulated disk: bandwidth in MB/s (or CHRONOS_SIM_SSD_MBPS).") var ssdMbps: Double?
    @Flag(help: "Do not feed the lookahead head's predictions to the prefetcher.") var noLookahead = false
    @Flag(help: "Do not load the intent classifier's set (intent.safetensors) during the prefill.") var noIntent = false
    @Flag(help: "Do not prefetch the experts each layer previews for the next MoE layer.") var noNextLayer = false
    @Flag(help: "Do not predict the routing of text that repeats earlier text.") var noRepetition = false
    @Option(parsing: .unconditional, help: "Expert ids the lookahead head predicts per future token (default: top-k).")
    var lookaheadExperts: Int?
    @Option(parsing: .unconditional, help: "Name an expert for a future token only at this chance of use there.")
    var lookaheadChance = 0.6
    @Option(parsing: .unconditional, help: "Load lookahead predictions only while their measured precision reaches this.")
    var prefetchThreshold = 0.3
    @Option(parsing: .unconditional, help: "Load next-layer previews only while their measured precision reaches this.")
    var previewThreshold = 0.6

    /// The command-line names of the settings `OffloadSettings` checks under other names.
    private static let optionNames = [
        "staging_fraction": "--staging", "latency_ms": "--ssd-ms", "bandwidth_mbps": "--ssd-mbps"
    ]

    /// The settings for the model: `defaultBudget` when no budget is given (the shipped model's),
    /// every expert in memory when there is neither.
    func settings(defaultBudget: ExpertBudget?) throws -> OffloadSettings {
        var budget: ExpertBudget?
        if let expertBudget {
            guard let parsed = ExpertBudget(parsing: expertBudget) else {
                throw ValidationError(
                    "--expert-budget '\(expertBudget)' is invalid: expected a fraction in (0, 1] (0.3), a percentage up to 100% (30%) or a size from 1 B to 1 PB (300MB, 1.5GiB)"
                )
            }
            budget = parsed
        }
        budget = budget ?? defaultBudget
        if budget == nil, let experts, experts != .resident {
            throw ValidationError("--experts \(experts.rawValue) offloads experts: give --expert-budget too")
        }
        do {
            let settings = OffloadSettings(
                mode: budget == nil ? .resident : experts ?? .chronos, budget: budget ?? .fraction(1), policy: policy, eviction: eviction,
                stagingFraction: staging, ioThreads: ioThreads, disk: try diskModel(),
                predictors: PredictorSelection(
                    lookahead: !noLookahead, intent: !noIntent, nextLayer: !noNextLayer, repetition: !noRepetition),
                lookaheadExperts: lookaheadExperts, lookaheadChance: lookaheadChance, prefetchThreshold: prefetchThreshold,
                previewThreshold: previewThreshold)
            try settings.validate()
            return settings
        } catch {
            throw ValidationError(error.renamed { Self.optionNames[$0] ?? InvalidSetting.optionName($0) }.description)
        }
    }

    /// The simulated disk the options or the environment describe, if any.
    private func diskModel() throws(InvalidSetting) -> DiskModel? {
        let environment = try DiskModel.fromEnvironment()
        guard ssdMs != nil || ssdMbps != nil else { return environment }
        return try DiskModel.checked(
            milliseconds: ssdMs ?? (environment?.latency).map { $0 * 1000 } ?? 0.1,
            megabytesPerSecond: ssdMbps ?? (environment?.bandwidth).map { $0 / 1e6 } ?? 2000)
    }
}
