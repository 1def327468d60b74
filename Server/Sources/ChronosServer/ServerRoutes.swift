import ChronosStorage
import Foundation
import Hummingbird

/// The server's HTTP interface: OpenAI's endpoints under `/v1`, Chronos's own expert report,
/// event stream and model report, `/health`, `/metrics` and the web UI, every error answered with
/// OpenAI's error object.
public struct ServerRoutes: Sendable {
    /// Whether the model is loaded, and the scheduler once it is.
    public let state: ServerState
    /// Listening and limits.
    public let configuration: ServerConfiguration
    /// The Prometheus metrics.
    public let metrics: ServerMetrics
    /// The web UI's files (nil: no UI is served).
    public let assets: WebAssets?
    /// Training and tuning jobs in the workspace (nil: the server has no workspace).
    public let training: TrainingJobs?

    /// Routes over `state` with `configuration`, counted in `metrics`, serving the UI in `assets`.
    public init(state: ServerState, configuration: ServerConfiguration, metrics: ServerMetrics, assets: WebAssets? = nil) {
        self.state = state
        self.configuration = configuration
        self.metrics = metrics
        self.assets = assets
        training = configuration.workspace.map(TrainingJobs.init)
    }

    /// The router serving every endpoint.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OpenAIErrorMiddleware(metrics: metrics))
        if let origin = configuration.corsOrigin {
            router.add(
                middleware: CORSMiddleware(
                    allowOrigin: origin == "*" ? .all : .custom(origin), allowHeaders: [.accept, .authorization, .contentType, .origin],
                    allowMethods: [.get, .post, .delete, .options]))
        }
        if let assets {
            router.get("/") { _, _ in try page(assets, "index.html") }
            router.get("ui/**") { _, context in try page(assets, context.parameters.getCatchAll().joined(separator: "/")) }
        }
        router.get("health") { _, _ in health() }
        router.get("metrics") { _, _ in prometheusText() }
        let api = router.group("v1")
        if let key = configuration.apiKey { api.add(middleware: APIKeyMiddleware(key: key)) }
        api.get("models") { _, _ in try models() }
        api.get("chronos/experts") { _, _ in try json(ExpertResidencyReport.json(for: scheduler().model)) }
        api.get("chronos/events") { request, _ in try events(request) }
        api.get("chronos/model") { request, _ in try modelReport(request) }
        api.get("chronos/benchmarks") { _, _ in try json(scheduler().model.benchmarks.json) }
        api.post("chronos/benchmarks") { request, _ in try await startBenchmark(request) }
        api.delete("chronos/benchmarks/:id") { _, context in try cancelBenchmark(context.parameters.get("id")) }
        api.get("chronos/training") { _, _ in try json(trainingJobs().json(.pretrain)) }
        api.post("chronos/training") { request, _ in try await startTraining(request, kind: .pretrain) }
        api.delete("chronos/training/:id") { _, context in try cancelTraining(context.parameters.get("id"), kind: .pretrain) }
        api.get("chronos/tuning") { _, _ in try json(trainingJobs().json(.study)) }
        api.post("chronos/tuning") { request, _ in try await startTraining(request, kind: .study) }
        api.delete("chronos/tuning/:id") { _, context in try cancelTraining(context.parameters.get("id"), kind: .study) }
        api.post("completions") { request, _ in try await answer(request, endpoint: .completion) }
        api.post("chat/completions") { request, _ in try await answer(request, endpoint: .chat) }
        return router
    }

    /// `POST /v1/chronos/benchmarks`: starts an offload benchmark of the served model (202 with
    /// its id); `GET /v1/chronos/benchmarks` follows it.
    private func startBenchmark(_ request: Request) async throws -> Response {
        var request = request
        let body = try await collect(&request)
        let benchmarks = try scheduler().model.benchmarks
        let id = try benchmarks.start(BenchmarkJobs.settings(from: body))
        return json(["id": .number(Double(id))], status: .accepted)
    }

    /// `DELETE /v1/chronos/benchmarks/ID`: the benchmark stops after the budget it is measuring.
    private func cancelBenchmark(_ id: String?) throws -> Response {
        guard let id, let number = Int(id) else {
            throw APIError(status: .notFound, message: "no benchmark \(id ?? "")", type: "invalid_request_error", param: "id")
        }
        try scheduler().model.benchmarks.cancel(number)
        return json(["id": .number(Double(number))], status: .accepted)
    }

    /// `POST /v1/chronos/training` (a pretraining run) or `/v1/chronos/tuning` (a study): starts
    /// the job in the workspace (202 with its id and output directory); `GET` on the same path
    /// follows it.
    private func startTraining(_ request: Request, kind: TrainingJobs.Kind) async throws -> Response {
        var request = request
        let body = try await collect(&request)
        let jobs = try trainingJobs()
        let id = try kind == .pretrain ? jobs.startPretraining(body) : jobs.startStudy(body)
        return json(["id": .number(Double(id))], status: .accepted)
    }

    /// `DELETE /v1/chronos/training/ID` or `/v1/chronos/tuning/ID`: the job stops at the end of
    /// the step it is taking.
    private func cancelTraining(_ id: String?, kind: TrainingJobs.Kind) throws -> Response {
        let jobs = try trainingJobs()
        guard let id, let number = Int(id) else {
            throw APIError(
                status: .notFound, message: "no \(TrainingJobs.noun(kind)) job \(id ?? "")", type: "invalid_request_error", param: "id")
        }
        try jobs.cancel(number, kind: kind)
        return json(["id": .number(Double(number))], status: .accepted)
    }

    /// The training jobs, or the 409 that says the server has no workspace.
    private func trainingJobs() throws(APIError) -> TrainingJobs {
        guard let training else { throw TrainingJobs.noWorkspace }
        return training
    }

    /// The UI's file at `path`, or the 404 that names the request.
    private func page(_ assets: WebAssets, _ path: String) throws -> Response {
        guard let response = assets.response(for: path) else { throw HTTPError(.notFound) }
        return response
    }

    /// `GET /v1/chronos/events`: each forward pass's IO snapshot as a server-sent event while
    /// requests decode, a heartbeat comment when none came for `eventHeartbeatSeconds`;
    /// `?limit=N` ends the stream after N snapshots.
    private func events(_ request: Request) throws -> Response {
        let hub = try scheduler().events
        let limit = try eventLimit(request)
        let heartbeat = Duration.milliseconds(Int(configuration.eventHeartbeatSeconds * 1000))
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                // A snapshot, or nil for a tick of the heartbeat's clock.
                let (messages, continuation) = AsyncStream<JSONValue?>.makeStream(bufferingPolicy: .bufferingNewest(256))
                let listener = hub.addListener { continuation.yield($0) }
                let clock = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: heartbeat)
                        continuation.yield(nil)
                    }
                }
                defer {
                    clock.cancel()
                    hub.removeListener(listener)
                    continuation.finish()
                }
                try await writer.write(ByteBuffer(string: ServerSentEvents.heartbeat))
                var sent = 0
                var idle = true
                for await message in messages {
                    if let message {
                        try await writer.write(ByteBuffer(string: ServerSentEvents.event(message)))
                        sent += 1
                        idle = false
                        if let limit, sent >= limit { break }
                    } else {
                        if idle { try await writer.write(ByteBuffer(string: ServerSentEvents.heartbeat)) }
                        idle = true
                    }
                }
                try await writer.finish(nil)
            })
    }

    /// The snapshots `?limit=` asks for, nil without one.
    private func eventLimit(_ request: Request) throws(APIError) -> Int? {
        guard let text = request.uri.queryParameters.get("limit") else { return nil }
        guard let value = Int(text), value > 0 else {
            throw .invalid("limit", "limit \(text.debugDescription) is invalid: expected a whole number of snapshots from 1")
        }
        return value
    }

    /// `GET /v1/chronos/model`: the served model's architecture, counts and bytes, and the memory
    /// its weights need at `?budget=` (as `--expert-budget` reads it; default: the serving budget).
    private func modelReport(_ request: Request) throws -> Response {
        let model = try scheduler().model
        var budget: ExpertBudget?
        if let text = request.uri.queryParameters.get("budget") {
            guard let parsed = ExpertBudget(parsing: text) else {
                throw APIError.invalid(
                    "budget",
                    "budget \(text.debugDescription) is invalid: expected a fraction in (0, 1] (0.3), a percentage up to 100% (30%) or a size from 1 B to 1 PB (300MB, 1.5GiB)"
                )
            }
            budget = parsed
        }
        return json(ModelReport.json(for: model, budget: budget))
    }

    /// 200 once the model is loaded, 503 while it loads.
    private func health() -> Response {
        let ready = state.scheduler != nil
        return json(["status": ready ? "ok" : "loading"], status: ready ? .ok : .serviceUnavailable)
    }

    /// The metrics in Prometheus's text format, the expert store's read now.
    private func prometheusText() -> Response {
        if let scheduler = state.scheduler {
            metrics.waiting(scheduler.slots.waiting)
            let offloaded = scheduler.model.offloaded
            if let storage = offloaded.storageMetrics() { metrics.updateStore(storage, resident: offloaded.store?.residentBytes() ?? [:]) }
            if let batcher = scheduler.model.batcher { metrics.updatePasses(batcher.passCounts) }
            if case .tiered(let store) = offloaded.backing {
                let layers = offloaded.model.summary.expertsPerLayer.indices.filter { offloaded.model.summary.expertsPerLayer[$0] > 0 }
                metrics.updateLayerResidency(store.placements(), layers: layers)
            }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.text())))
    }

    /// `GET /v1/models`: the one served model.
    private func models() throws -> Response {
        let model = try scheduler().model
        return json([
            "object": "list",
            "data": [["id": .string(model.id), "object": "model", "created": .number(Double(model.created)), "owned_by": "chronos"]]
        ])
    }

    /// The scheduler, or the 503 that says the model is loading.
    private func scheduler() throws(APIError) -> GenerationScheduler {
        guard let scheduler = state.scheduler else { throw .loading }
        return scheduler
    }

    /// A completion or chat completion: the body checked, the job started, the answer streamed
    /// as server-sent events or returned whole.
    private func answer(_ request: Request, endpoint: CompletionJob.Endpoint) async throws -> Response {
        var collected = request
        let body = try await collect(&collected)
        let requestBody = collected.body
        let scheduler = try scheduler()
        let validator = scheduler.model.validator
        let job = try endpoint == .chat ? validator.chat(body) : validator.completion(body)
        let header = AnswerHeader(endpoint: endpoint, model: scheduler.model.id)
        let handle = scheduler.start(job)
        // The connection closing cancels the generation at once, in its prefill or between
        // tokens. Watching for that reads the connection past this request (whose collected
        // body the watch replays first), so the connection is not kept alive after the answer.
        let cancelOnClose: @Sendable () -> Void = { handle.cancellation.cancel() }
        guard job.stream else {
            var response = try await requestBody.consumeWithInboundCloseHandler(
                { _ in try await whole(job, header: header, handle: handle) }, onInboundClosed: cancelOnClose)
            response.headers[.connection] = "close"
            return response
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"],
            body: ResponseBody { writer in
                defer { handle.cancellation.cancel() }
                try await requestBody.consumeWithInboundCloseHandler(
                    { _ in try await stream(job, header: header, handle: handle, to: &writer) }, onInboundClosed: cancelOnClose)
            })
    }

    /// The whole answer, once the generation has ended.
    private func whole(_ job: CompletionJob, header: AnswerHeader, handle: GenerationHandle) async throws -> Response {
        defer { handle.cancellation.cancel() }
        var text = "", logprobs: [TokenLogprob] = []
        do {
            for try await event in handle.events {
                switch event {
                case .text(let piece, let entries):
                    text += piece
                    logprobs += entries
                case .finished(let reason, let usage):
                    return json(
                        AnswerJSON.whole(
                            job.endpoint, header: header, text: text, finishReason: reason, usage: usage,
                            logprobs: job.topLogprobs == nil ? nil : logprobs))
                }
            }
        } catch {
            throw APIError.generationFailed("\(error)")
        }
        throw APIError.generationFailed("the generation was cancelled")
    }

    /// Writes the answer's chunks as they are generated, then `data: [DONE]`. A write that fails
    /// (the client has gone) ends the stream, and the caller then cancels the generation.
    private func stream(_ job: CompletionJob, header: AnswerHeader, handle: GenerationHandle, to writer: inout any ResponseBodyWriter)
        async throws
    {
        func send(_ value: JSONValue) async throws {
            try await writer.write(ByteBuffer(string: ServerSentEvents.event(value)))
        }
        let endpoint = job.endpoint
        if endpoint == .chat {
            try await send(AnswerJSON.chunk(endpoint, header: header, text: "", role: true, includeUsage: job.includeUsage))
        }
        var events = handle.events.makeAsyncIterator()
        // Characters of the answer before the next chunk's first token, for completions' text_offset.
        var textOffset = 0
        while true {
            let event: GenerationEvent?
            do {
                event = try await events.next()
            } catch {
                // The generation failed after the answer began: the stream says so in OpenAI's shape.
                try await send(["error": APIError.generationFailed("\(error)").json])
                break
            }
            guard let event else { break }
            switch event {
            case .text(let text, let entries):
                try await send(
                    AnswerJSON.chunk(
                        endpoint, header: header, text: text, includeUsage: job.includeUsage,
                        logprobs: job.topLogprobs == nil ? nil : entries, textOffset: textOffset))
                textOffset += entries.reduce(0) { $0 + $1.token.text.count }
            case .finished(let reason, let usage):
                try await send(AnswerJSON.chunk(endpoint, header: header, text: nil, finishReason: reason, includeUsage: job.includeUsage))
                if job.includeUsage { try await send(AnswerJSON.usageChunk(endpoint, header: header, usage: usage)) }
            }
        }
        try await writer.write(ByteBuffer(string: ServerSentEvents.done))
        try await writer.finish(nil)
    }

    /// The request's body, refused past `maxRequestBytes`; `request` then holds it collected.
    private func collect(_ request: inout Request) async throws(APIError) -> Data {
        do {
            let buffer = try await request.collectBody(upTo: configuration.maxRequestBytes)
            return Data(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw .bodyTooLarge(limit: configuration.maxRequestBytes)
        } catch {
            throw .invalid("", "the request body could not be read: \(error)")
        }
    }
}

/// A JSON response with `status`.
func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(
        status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: value.text)))
}
