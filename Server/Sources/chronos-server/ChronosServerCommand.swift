import ArgumentParser
import ChronosEngine
import ChronosFormats
import ChronosOptions
import ChronosServer
import ChronosStorage
import ChronosTensor
import Foundation
import Hummingbird

/// `chronos-server`: an OpenAI-compatible HTTP server over one model.
@main
struct ChronosServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chronos-server",
        abstract: "Serve a model over OpenAI's API: /v1/completions, /v1/chat/completions, /v1/models.",
        discussion: """
            Without --model, serves the Austen MoE model that ships in models/austen-moe with its experts \
            streamed from its packed expert cache under a budget of half their bytes, as `chronos generate` \
            runs it. Also answers GET /health (503 while the model loads), GET /metrics (Prometheus), \
            GET /v1/chronos/experts (where every expert is now), GET /v1/chronos/events (each decoding \
            step's expert IO, as server-sent events) and GET /v1/chronos/model; GET / is a web UI (chat, \
            the live expert monitor, the model, offload benchmarks, and with --workspace pretraining runs and \
            tuning studies).
            """)

    @Option(help: "Model directory or GGUF file (default: the shipped models/austen-moe).") var model: String?
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "The TCP port.") var port = 8080
    @Option(help: "Require this key as Authorization: Bearer KEY on /v1/*.") var apiKey: String?
    @Option(help: "Read the key from this file (surrounding whitespace ignored).") var apiKeyFile: String?
    @Option(parsing: .unconditional, help: "Generations decoding at once; later requests wait for one to end.") var parallel = 1
    @Flag(
        inversion: .prefixedNo,
        help: "Run the generations decoding at once as one forward pass per token (continuous batching), or each on its own.")
    var batching = true
    @Option(parsing: .unconditional, help: "The most new tokens a request may ask for, and what one that names none gets.")
    var maxTokensLimit = 2048
    @Option(help: "Let browsers call the API from this origin (* for any).") var corsOrigin: String?
    @Option(parsing: .unconditional, help: "The largest request body accepted, in bytes.") var maxRequestBytes = 1 << 20
    @Option(
        help:
            "A folder for pretraining runs and tuning studies started from the web UI: their data, tokenizers and outputs are paths inside it (without it, training is refused)."
    )
    var workspace: String?
    @Option(help: "Compute backend: swift, openblas or accelerate (default: CHRONOS_BACKEND, else the best available).")
    var backend: String?
    @Option(help: "Where experts live when offloaded: chronos (prediction + prefetch), lru, mmap or resident (default: chronos).")
    var experts: ExpertResidencyMode?
    @OptionGroup var offload: OffloadOptions

    /// How the served model's experts are kept: offloaded under the budget given or, for the
    /// shipped model, half the expert bytes; every expert in memory when there is neither.
    func offloadSettings() throws -> OffloadSettings {
        let budget = try offload.budget() ?? (model == nil ? .fraction(0.5) : nil)
        guard let budget else {
            if let experts, experts != .resident {
                throw ValidationError("--experts \(experts.rawValue) offloads experts: give --expert-budget too")
            }
            guard offload.fault.isEmpty, !offload.cold, offload.ssdMs == nil, offload.ssdMbps == nil else {
                throw ValidationError("--fault, --cold and --ssd-* apply to offloaded experts; give --expert-budget too")
            }
            return try offload.settings(mode: .resident, budget: .fraction(1))
        }
        return try offload.settings(mode: experts ?? .chronos, budget: budget)
    }

    /// The listening settings the options give.
    func serverConfiguration() throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.apiKey = try key()
        configuration.parallel = parallel
        configuration.maxTokensLimit = maxTokensLimit
        configuration.corsOrigin = corsOrigin
        configuration.maxRequestBytes = maxRequestBytes
        configuration.workspace = try workspace.map { path throws(InvalidSetting) in try TrainingWorkspace(path: path) }
        return configuration
    }

    /// The key from --api-key or --api-key-file.
    private func key() throws -> String? {
        guard let apiKeyFile else { return apiKey }
        guard apiKey == nil else { throw ValidationError("give --api-key or --api-key-file, not both") }
        let text: String
        do {
            text = try String(contentsOfFile: apiKeyFile, encoding: .utf8)
        } catch {
            throw ValidationError("--api-key-file \(apiKeyFile) cannot be read: \(error.localizedDescription)")
        }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw ValidationError("--api-key-file \(apiKeyFile) holds no key") }
        return key
    }

    func validate() throws {
        do {
            _ = try Backends.environmentBackend()
            _ = try InstructionSet.environmentSet()
            _ = try ThreadPool.environmentThreadCount()
            try serverConfiguration().validate()
        } catch let error as InvalidSetting {
            throw ValidationError(error.description)
        }
        _ = try offloadSettings()
        if let model, !ModelDirectory(path: model).hasConfig, !GGUFFile.isGGUF(URL(fileURLWithPath: model)) {
            throw ValidationError("--model \(model) is neither a model directory (it has no config.json) nor a GGUF file")
        }
    }

    func run() async throws {
        if let backend {
            do { _ = try Backends.select(backend) } catch { throw ValidationError("--backend: \(error)") }
        }
        let configuration = try serverConfiguration()
        let directory = try model ?? Self.shippedModel()
        let settings = try offloadSettings()
        let state = ServerState()
        let metrics = ServerMetrics()
        let routes = ServerRoutes(state: state, configuration: configuration, metrics: metrics, assets: try WebAssets.bundled())
        let application = Application(
            router: routes.router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "chronos-server"))
        log("loading \(directory) (experts: \(settings.mode.rawValue)\(settings.mode == .resident ? "" : ", budget \(settings.budget)"))")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.runService() }
            group.addTask {
                let served = try await Self.load(
                    directory: directory, settings: settings, maxTokensLimit: configuration.maxTokensLimit, batching: batching)
                state.serve(GenerationScheduler(model: served, parallel: configuration.parallel, metrics: metrics))
                log("serving \(served.id) on http://\(configuration.host):\(configuration.port)")
            }
            // The server runs until it is stopped; a model that fails to load stops it.
            try await group.next()
            try await group.next()
        }
        state.scheduler?.model.offloaded.close()
    }

    /// Loads the model on a thread of its own, leaving the server's threads to answer meanwhile.
    static func load(directory: String, settings: OffloadSettings, maxTokensLimit: Int, batching: Bool) async throws -> ServedModel {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try ServedModel(
                            directory: URL(fileURLWithPath: directory), settings: settings, maxTokensLimit: maxTokensLimit,
                            batching: batching)
                    })
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// The shipped model's directory: under the current directory, its parent (`Server/`), or a
    /// directory above the running executable.
    static func shippedModel() throws -> String {
        let path = "models/austen-moe"
        var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(candidates[0].deletingLastPathComponent())
        while executable.path != "/" {
            candidates.append(executable)
            executable.deleteLastPathComponent()
        }
        for base in candidates {
            let directory = ModelDirectory(base.appendingPathComponent(path))
            if directory.hasConfig { return directory.path }
        }
        throw ValidationError("the shipped model \(path) was not found from this directory; pass --model DIR")
    }
}

/// Writes a line to standard error.
private func log(_ line: String) {
    FileHandle.standardError.write(Data("chronos-server: \(line)\n".utf8))
}
