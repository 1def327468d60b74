import ChronosBench
import ChronosEngine
import ChronosModel
import ChronosStorage
import Foundation
import Hummingbird
import Synchronization

/// `POST /v1/chronos/benchmarks`: the budgets to sweep, tokens per prompt and the simulated disk.
struct BenchmarkRequestBody: Decodable {
    var budgets: [Double]?
    var tokens: Int?
    var ssdMs: Double?
    var ssdMbps: Double?

    enum CodingKeys: String, CodingKey {
        case budgets, tokens
        case ssdMs = "ssd_ms"
        case ssdMbps = "ssd_mbps"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        budgets = try container.decodeIfPresent([Double].self, forKey: .budgets)
        tokens = try container.decodeIntegerIfPresent(Int.self, forKey: .tokens)
        ssdMs = try container.decodeIfPresent(Double.self, forKey: .ssdMs)
        ssdMbps = try container.decodeIfPresent(Double.self, forKey: .ssdMbps)
    }
}

/// Offload benchmarks run in the background for the web UI on the served model's packed
/// experts, one at a time: `chronos bench offload --sweep` over the chosen budgets (`resident`
/// once, then `mmap`, `lru` and `chronos` with each miss policy at each budget) on the built-in
/// prompts and a simulated disk, each budget's results published as soon as it is measured.
/// A benchmark competes with the requests being served for the processor.
public final class BenchmarkJobs: Sendable {
    /// What one benchmark sweeps.
    public struct Settings: Sendable, Equatable {
        /// Expert budgets, as fractions of all expert bytes, in the order they run.
        public var budgets: [Double]
        /// Tokens decoded per prompt.
        public var tokens: Int
        /// The simulated disk every configuration reads experts from.
        public var disk: DiskModel
    }

    /// Where a benchmark is.
    public enum State: String, Sendable {
        /// Measuring.
        case running
        /// Every budget measured.
        case finished
        /// Stopped by an error.
        case failed
        /// Stopped on request, after the budget it was measuring.
        case cancelled
    }

    /// One configuration's result at one budget.
    struct Row: Sendable {
        let baseline: String
        let policy: String?
        let tokensPerSecond: Double
        let stallMsPerToken: Double
        let hitRate: Double
        let note: String?
    }

    /// One benchmark.
    struct Job: Sendable {
        let id: Int
        let settings: Settings
        var state = State.running
        var progress = ""
        var budgets: [(budget: Double, rows: [Row])] = []
        var error: String?
        var cancelRequested = false
    }

    /// Budgets one benchmark may sweep, and the range of each (a fraction of all expert bytes).
    static let budgetCount = 1...6
    static let budgetRange = 0.01...1.0
    /// Tokens per prompt one benchmark may ask for.
    static let tokensRange = 1...256
    /// The simulated disk's latency (ms) and bandwidth (MB/s) one benchmark may ask for.
    static let latencyRange = 0.0...1000.0
    static let bandwidthRange = 1.0...1_000_000.0

    /// The packed model directory the benchmarks run on.
    let directory: URL
    /// The served model's offload settings, from which each configuration's are made.
    let template: OffloadSettings
    private let jobs = Mutex<[Job]>([])

    /// Benchmarks of the model in `directory`, configured like `template` but for the mode,
    /// budget, policy and disk each configuration sets.
    public init(directory: URL, template: OffloadSettings) {
        self.directory = directory
        self.template = template
    }

    /// The settings `body` asks for, each field checked against its range (defaults: budgets
    /// 10, 30, 50 and 100 %, 16 tokens, 0.2 ms and 1000 MB/s).
    static func settings(from body: Data) throws(APIError) -> Settings {
        let fields = try RequestValidator.decode(BenchmarkRequestBody.self, from: body)
        let budgets = fields.budgets ?? [0.1, 0.3, 0.5, 1]
        guard budgetCount.contains(budgets.count) else {
            throw .invalid(
                "budgets", "budgets must list \(budgetCount.lowerBound) to \(budgetCount.upperBound) budgets, got \(budgets.count)")
        }
        for (index, budget) in budgets.enumerated() where !budgetRange.contains(budget) {
            throw .invalid(
                "budgets[\(index)]", "budgets[\(index)] is \(budget): expected a fraction of the expert bytes from 0.01 to 1")
        }
        let tokens = fields.tokens ?? 16
        guard tokensRange.contains(tokens) else {
            throw .invalid("tokens", "tokens is \(tokens): expected \(tokensRange.lowerBound) to \(tokensRange.upperBound)")
        }
        let latency = fields.ssdMs ?? 0.2, bandwidth = fields.ssdMbps ?? 1000
        guard latencyRange.contains(latency) else {
            throw .invalid("ssd_ms", "ssd_ms is \(latency): expected a latency from 0 to 1000 ms")
        }
        guard bandwidthRange.contains(bandwidth) else {
            throw .invalid("ssd_mbps", "ssd_mbps is \(bandwidth): expected a bandwidth from 1 to 1000000 MB/s")
        }
        return Settings(budgets: budgets, tokens: tokens, disk: DiskModel(milliseconds: latency, megabytesPerSecond: bandwidth))
    }

    /// Starts a benchmark with `settings` on a thread of its own; returns its id. Refused while
    /// another runs, and when the model has no packed expert cache.
    func start(_ settings: Settings) throws(APIError) -> Int {
        guard (try? ExpertCache.open(modelDirectory: directory)) != nil else {
            throw APIError(
                status: .conflict,
                message: "the served model has no packed expert cache to benchmark: run `chronos pack \(directory.path)` first",
                type: "invalid_request_error", code: "no_expert_cache")
        }
        let id: Int? = jobs.withLock { jobs in
            guard !jobs.contains(where: { $0.state == .running }) else { return nil }
            let id = (jobs.last?.id ?? 0) + 1
            jobs.append(Job(id: id, settings: settings))
            return id
        }
        guard let id else {
            throw APIError(
                status: .conflict, message: "a benchmark is already running: wait for it or cancel it", type: "invalid_request_error",
                code: "benchmark_running")
        }
        let thread = Thread { [self] in run(id, settings) }
        thread.name = "chronos-benchmark"
        thread.stackSize = 8 << 20
        thread.start()
        return id
    }

    /// Asks benchmark `id` to stop after the budget it is measuring; throws 404 for an unknown id.
    func cancel(_ id: Int) throws(APIError) {
        let found = jobs.withLock { jobs in
            guard let index = jobs.firstIndex(where: { $0.id == id }) else { return false }
            if jobs[index].state == .running { jobs[index].cancelRequested = true }
            return true
        }
        guard found else { throw APIError(status: .notFound, message: "no benchmark \(id)", type: "invalid_request_error", param: "id") }
    }

    /// Every benchmark so far, newest last: its settings, state, latest progress line and the
    /// results of each budget measured.
    var json: JSONValue {
        .object(["benchmarks": .array(jobs.withLock { $0 }.map(Self.json))])
    }

    private static func json(_ job: Job) -> JSONValue {
        [
            "id": .number(Double(job.id)), "state": .string(job.state.rawValue), "progress": .string(job.progress),
            "error": job.error.map { .string($0) } ?? nil,
            "settings": [
                "budgets": .array(job.settings.budgets.map { .number($0) }), "tokens": .number(Double(job.settings.tokens)),
                "ssd_ms": .number(job.settings.disk.latency * 1000), "ssd_mbps": .number(job.settings.disk.bandwidth / 1e6)
            ],
            "results": .array(
                job.budgets.map { budget, rows in
                    [
                        "budget": .number(budget),
                        "runs": .array(
                            rows.map { row in
                                [
                                    "baseline": .string(row.baseline), "policy": row.policy.map { .string($0) } ?? nil,
                                    "tokens_per_s": .number(row.tokensPerSecond), "stall_ms_per_token": .number(row.stallMsPerToken),
                                    "hit_rate": .number(row.hitRate), "note": row.note.map { .string($0) } ?? nil
                                ]
                            })
                    ]
                })
        ]
    }

    /// Why a sweep stopped early on request.
    private struct Cancelled: Error {}

    private func update(_ id: Int, _ change: (inout Job) -> Void) {
        jobs.withLock { jobs in
            if let index = jobs.firstIndex(where: { $0.id == id }) { change(&jobs[index]) }
        }
    }

    private func run(_ id: Int, _ settings: Settings) {
        let template = self.template
        do {
            let summary = try ModelLoader.load(directory: directory).summary
            let prompts = try OffloadBench.defaultPrompts(directory: directory, vocab: summary.vocabSize)
            let bench = OffloadBench(
                directory: directory, prompts: prompts, tokens: settings.tokens, disk: settings.disk,
                settings: { configuration in
                    var offload = template
                    offload.mode = configuration.mode
                    offload.budget = configuration.budget
                    offload.policy = configuration.policy ?? template.policy
                    offload.disk = settings.disk
                    return offload
                },
                progress: { [self] line in update(id) { $0.progress = line } })
            try bench.sweep(fractions: settings.budgets) { budget, runs in
                let rows = runs.map { run in
                    Row(
                        baseline: run.metrics.name, policy: run.metrics.policy?.rawValue, tokensPerSecond: run.metrics.tokensPerSecond,
                        stallMsPerToken: run.metrics.stallMsPerToken, hitRate: run.metrics.hitRate, note: run.note)
                }
                var stop = false
                update(id) { job in
                    job.budgets.append((budget, rows))
                    stop = job.cancelRequested
                }
                if stop { throw Cancelled() }
            }
            update(id) {
                $0.state = .finished
                $0.progress = ""
            }
        } catch is Cancelled {
            update(id) {
                $0.state = .cancelled
                $0.progress = ""
            }
        } catch {
            update(id) {
                $0.state = .failed
                $0.error = "\(error)"
            }
        }
    }
}
