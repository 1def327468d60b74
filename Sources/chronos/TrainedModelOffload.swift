import ChronosBench
import ChronosEngine
import ChronosModel
import ChronosOptions
import ChronosStorage
import Foundation

/// Offloaded decoding of a model just trained, measured as `bench offload` measures it: the
/// model is packed, then prompts are decoded greedily under `lru` and `chronos` (both waiting
/// for a missed expert) on a simulated disk, the two alternating prompt by prompt.
struct TrainedModelOffload {
    /// Simulated disk latency per read, in ms.
    var ssdMs: Double
    /// Simulated disk bandwidth, in MB/s.
    var ssdMbps: Double
    /// Tokens decoded per prompt.
    var tokens = 32

    /// Writes the packed expert cache of the model in `directory` (`chronos pack`).
    static func pack(_ directory: URL) throws {
        try ExpertCachePacker.pack(directory: directory, model: ModelRegistry.load(directory: directory))
    }

    /// The simulated disk, described for a report.
    var diskDescription: String { String(format: "simulated disk of %g MB/s and %g ms per read", ssdMbps, ssdMs) }

    /// `lru` and `chronos` at `budget` (a fraction of the expert bytes) on `prompts`, or on
    /// `bench offload`'s built-in prompts when nil; `progress` hears each prompt start.
    func measure(_ model: URL, budget: Double, prompts: [[Int]]? = nil, progress: @escaping (String) -> Void = { _ in }) throws -> (
        lru: OffloadRunMetrics, chronos: OffloadRunMetrics
    ) {
        let options = try OffloadOptions.parse(["--ssd-ms", String(ssdMs), "--ssd-mbps", String(ssdMbps)])
        let summary = try ModelLoader.load(directory: model).summary
        let bench = OffloadBench(
            directory: model, prompts: try prompts ?? OffloadBench.defaultPrompts(directory: model, vocab: summary.vocabSize),
            tokens: tokens, disk: try options.diskModel(),
            settings: { try options.settings(mode: $0.mode, budget: $0.budget, policy: $0.policy) }, progress: progress)
        let runs = try bench.measure([
            OffloadBench.Configuration(.lru, .fraction(budget), options.policy),
            OffloadBench.Configuration(.chronos, .fraction(budget), options.policy)
        ])
        return (runs[0].metrics, runs[1].metrics)
    }
}
