import ChronosEngine
import ChronosServer
import ChronosTensor
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct ServerRoutesTests {
    /// An application over `state` with `configuration`.
    private func application(_ state: ServerState, _ configuration: ServerConfiguration = ServerConfiguration()) -> some ApplicationProtocol
    {
        Application(router: ServerRoutes(state: state, configuration: configuration, metrics: ServerMetrics()).router())
    }

    /// The error object of a response (empty when there is none).
    private func errorObject(_ response: TestResponse) -> [String: Any] {
        let object = try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
        return object?["error"] as? [String: Any] ?? [:]
    }

    @Test func whileTheModelLoadsHealthAndGenerationAnswer503() async throws {
        try await application(ServerState()).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body) == #"{"status":"loading"}"#)
            }
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(errorObject(response)["code"] as? String == "model_loading")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func anUnknownRouteGetsOpenAIsErrorObject() async throws {
        try await application(ServerState()).test(.router) { client in
            try await client.execute(uri: "/v1/nothing", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(errorObject(response)["message"] as? String == "no route for GET /v1/nothing")
            }
        }
    }

    @Test func anOversizedBodyIsRefused() async throws {
        var configuration = ServerConfiguration()
        configuration.maxRequestBytes = 1024
        try await application(ServerState(), configuration).test(.router) { client in
            let body = ByteBuffer(string: String(repeating: "x", count: 4096))
            try await client.execute(uri: "/v1/completions", method: .post, body: body) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorObject(response)["message"] as? String == "the request body is larger than the 1024 bytes this server accepts")
            }
        }
    }

    @Test func theAPIKeyGuardsV1Only() async throws {
        var configuration = ServerConfiguration()
        configuration.apiKey = "sekrit"
        try await application(ServerState(), configuration).test(.router) { client in
            try await client.execute(uri: "/v1/models", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(errorObject(response)["code"] as? String == "invalid_api_key")
            }
            try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer wrong"]) { response in
                #expect(response.status == .unauthorized)
                #expect(errorObject(response)["message"] as? String == "incorrect API key provided")
            }
            try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sekrit"]) { response in
                #expect(response.status == .serviceUnavailable, "past the key, the model is still loading")
            }
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
            }
        }
    }

    @Test func corsPreflightIsAnsweredForTheOrigin() async throws {
        var configuration = ServerConfiguration()
        configuration.corsOrigin = "http://localhost:3000"
        try await application(ServerState(), configuration).test(.router) { client in
            try await client.execute(uri: "/v1/chat/completions", method: .options, headers: [.origin: "http://localhost:3000"]) {
                response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "http://localhost:3000")
            }
        }
    }

    @Test func theConfigurationNamesTheOptionOutOfRange() {
        var configuration = ServerConfiguration()
        configuration.parallel = 0
        #expect(throws: InvalidSetting(name: "--parallel", value: "0", expected: "between 1 and 64")) { try configuration.validate() }
        configuration = ServerConfiguration()
        configuration.corsOrigin = "localhost"
        #expect(throws: InvalidSetting.self) { try configuration.validate() }
    }
}

@Suite(.serialized) struct ServedModelTests {
    /// The shipped model with every expert in memory, served two at a time.
    static let state: ServerState = {
        let state = ServerState()
        if let model = try? ServedModel(directory: shippedModel, settings: OffloadSettings(mode: .resident), maxTokensLimit: 64) {
            state.serve(GenerationScheduler(model: model, parallel: 2, metrics: ServerMetrics()))
        }
        return state
    }()

    private func post(_ client: some TestClientProtocol, _ path: String, _ body: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: path, method: .post, body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
    }

    /// The text of a stream's chunks, and its last data line.
    private func streamedText(_ body: String) throws -> (text: String, last: String) {
        var text = ""
        var last = ""
        for line in body.split(separator: "\n", omittingEmptySubsequences: true) {
            #expect(line.hasPrefix("data: "))
            last = String(line.dropFirst(6))
            guard last != "[DONE]" else { continue }
            let chunk = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
            let choice = (chunk["choices"] as? [[String: Any]])?.first
            text += (choice?["text"] as? String) ?? ((choice?["delta"] as? [String: Any])?["content"] as? String) ?? ""
        }
        return (text, last)
    }

    @Test func greedyTextIsTheSameStreamedAndWhole() async throws {
        let app = Application(
            router: ServerRoutes(state: Self.state, configuration: ServerConfiguration(), metrics: ServerMetrics()).router())
        try await app.test(.router) { client in
            let request = #"{"model":"austen-moe","prompt":"It is a truth universally","max_tokens":12,"temperature":0"#
            let (status, body) = try await post(client, "/v1/completions", request + "}")
            #expect(status == .ok)
            let whole = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let choice = try #require((whole["choices"] as? [[String: Any]])?.first)
            let text = try #require(choice["text"] as? String)
            #expect(!text.isEmpty)
            #expect((whole["usage"] as? [String: Any])?["completion_tokens"] as? Int == 12)
            #expect(choice["finish_reason"] as? String == "length")

            let (streamStatus, streamBody) = try await post(client, "/v1/completions", request + #","stream":true}"#)
            #expect(streamStatus == .ok)
            let streamed = try streamedText(streamBody)
            #expect(streamed.text == text)
            #expect(streamed.last == "[DONE]")

            // A stop text inside the greedy continuation ends it there, unsent.
            let words = text.split(separator: " ")
            if words.count > 2 {
                let stop = " " + words[2]
                let (_, stopBody) = try await post(client, "/v1/completions", request + #","stream":true,"stop":"\#(stop)"}"#)
                let stopped = try streamedText(stopBody)
                #expect(stopped.text == String(text[..<text.range(of: stop)!.lowerBound]))
                #expect(stopBody.contains(#""finish_reason":"stop""#))
            }
        }
    }

    @Test func anOffloadBenchmarkRunsInTheBackgroundAndReportsEachBudget() async throws {
        let app = Application(
            router: ServerRoutes(state: Self.state, configuration: ServerConfiguration(), metrics: ServerMetrics()).router())
        try await app.test(.router) { client in
            let (refused, refusal) = try await post(client, "/v1/chronos/benchmarks", #"{"budgets":[0.3,2]}"#)
            #expect(refused == .badRequest)
            #expect(refusal.contains(#""param":"budgets[1]""#))
            let unknown = try await client.execute(uri: "/v1/chronos/benchmarks/999", method: .delete) { $0.status }
            #expect(unknown == .notFound)

            let (status, _) = try await post(client, "/v1/chronos/benchmarks", #"{"budgets":[0.5],"tokens":2}"#)
            #expect(status == .accepted)
            let (busy, _) = try await post(client, "/v1/chronos/benchmarks", #"{"budgets":[0.5],"tokens":2}"#)
            #expect(busy == .conflict, "one benchmark at a time")
            var job: [String: Any] = [:]
            for _ in 0..<1200 {
                let body = try await client.execute(uri: "/v1/chronos/benchmarks", method: .get) { String(buffer: $0.body) }
                let list = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
                job = try #require((list["benchmarks"] as? [[String: Any]])?.last)
                if job["state"] as? String != "running" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(job["state"] as? String == "finished", "\(job)")
            let results = try #require(job["results"] as? [[String: Any]])
            #expect(results.count == 1)
            #expect(results.first?["budget"] as? Double == 0.5)
            let runs = try #require(results.first?["runs"] as? [[String: Any]])
            #expect(Set(runs.compactMap { $0["baseline"] as? String }) == ["resident", "mmap", "lru", "chronos"])
            #expect(runs.allSatisfy { ($0["tokens_per_s"] as? Double ?? 0) > 0 })
            let hitRates = runs.filter { $0["baseline"] as? String == "resident" }.compactMap { $0["hit_rate"] as? Double }
            #expect(hitRates == [1], "every expert of the resident run is in memory")
        }
    }

    @Test func logprobsListEveryTokenOfTheText() async throws {
        let app = Application(
            router: ServerRoutes(state: Self.state, configuration: ServerConfiguration(), metrics: ServerMetrics()).router())
        try await app.test(.router) { client in
            let (status, body) = try await post(
                client, "/v1/completions",
                #"{"model":"austen-moe","prompt":"It is a truth universally","max_tokens":8,"temperature":0,"logprobs":2}"#)
            #expect(status == .ok)
            let whole = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let choice = try #require((whole["choices"] as? [[String: Any]])?.first)
            let logprobs = try #require(choice["logprobs"] as? [String: Any])
            let tokens = try #require(logprobs["tokens"] as? [String])
            let chosen = try #require(logprobs["token_logprobs"] as? [Double])
            let top = try #require(logprobs["top_logprobs"] as? [[String: Double]])
            let offsets = try #require(logprobs["text_offset"] as? [Int])
            #expect(tokens.count == 8 && chosen.count == 8 && top.count == 8 && offsets.count == 8)
            #expect(tokens.joined() == choice["text"] as? String)
            // Greedy decoding picks the most probable token: its log-probability is the best alternative's.
            for (value, alternatives) in zip(chosen, top) {
                #expect(value <= 0)
                #expect(alternatives.count <= 2 && !alternatives.isEmpty)
                #expect(abs(alternatives.values.max()! - value) < 1e-5)
            }
            #expect(offsets.first == 0)

            let (_, chatBody) = try await post(
                client, "/v1/chat/completions",
                #"{"model":"austen-moe","messages":[{"role":"user","content":"Who is Emma?"}],"max_tokens":5,"temperature":0,"stream":true,"logprobs":true,"top_logprobs":3}"#
            )
            var content: [[String: Any]] = [], text = ""
            for line in chatBody.split(separator: "\n") where line.hasPrefix("data: {") {
                let chunk = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])
                let choice = try #require((chunk["choices"] as? [[String: Any]])?.first)
                text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
                content += ((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]]) ?? []
            }
            #expect(content.count == 5)
            #expect(content.map { $0["token"] as? String ?? "?" }.joined() == text)
            #expect(content.allSatisfy { ($0["top_logprobs"] as? [[String: Any]])?.count == 3 && $0["bytes"] is [Int] })
        }
    }

    @Test func chatAnswersAMessage() async throws {
        let app = Application(
            router: ServerRoutes(state: Self.state, configuration: ServerConfiguration(), metrics: ServerMetrics()).router())
        try await app.test(.router) { client in
            let (status, body) = try await post(
                client, "/v1/chat/completions",
                #"{"model":"austen-moe","messages":[{"role":"user","content":"Who is Emma?"}],"max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#
            )
            #expect(status == .ok)
            #expect(body.contains(#""delta":{"content":"","role":"assistant"}"#))
            #expect(body.contains(#""choices":[],"#))
            #expect(body.contains(#""completion_tokens":"#))
            #expect(body.hasSuffix("data: [DONE]\n\n"))
            let (modelsStatus, models) = try await client.execute(uri: "/v1/models", method: .get) { ($0.status, String(buffer: $0.body)) }
            #expect(modelsStatus == .ok)
            #expect(models.contains(#""id":"austen-moe""#))
        }
    }
}
