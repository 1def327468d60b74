import ChronosEngine
import ChronosServer
import ChronosStorage
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct WebUITests {
    let assets: WebAssets

    init() throws {
        assets = try WebAssets.bundled()
    }

    /// The text of the UI's file at `path`.
    private func text(_ path: String) throws -> String {
        String(decoding: try #require(assets.files[path]).bytes, as: UTF8.self)
    }

    /// The string table of `language`.
    private func table(_ language: String) throws -> [String: String] {
        let data = try #require(assets.files["i18n/\(language).json"]).bytes
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: String], "i18n/\(language).json")
    }

    /// The `{name}` placeholders of `text`.
    private func placeholders(_ text: String) -> Set<String> {
        Set(text.matches(of: /\{(\w+)\}/).map { String($0.output.1) })
    }

    @Test func everyLanguageHasEveryKeyWithItsPlaceholders() throws {
        let english = try table("en")
        #expect(english.count > 50)
        for language in WebAssets.languages where language != "en" {
            let strings = try table(language)
            #expect(Set(strings.keys).subtracting(english.keys).isEmpty, "\(language) has keys English lacks")
            for (key, text) in english {
                let translated = try #require(strings[key], "\(language) lacks \(key)")
                #expect(!translated.isEmpty, "\(language): \(key) is empty")
                #expect(placeholders(translated) == placeholders(text), "\(language): \(key) has other placeholders than English")
            }
        }
        #expect(english.values.allSatisfy { !$0.isEmpty })
    }

    @Test func everyKeyThePageAndScriptUseIsInTheTables() throws {
        let english = try table("en")
        let prefixes = Set(english.keys.compactMap { $0.split(separator: ".").first.map(String.init) })
        var used = Set(try text("index.html").matches(of: /data-i18n(?:-[a-z-]+)?="([^"]+)"/).map { String($0.output.1) })
        // The script names its keys as string literals: those with a table's prefix are keys.
        for match in try text("app.js").matches(of: /"([a-zA-Z]+(?:\.[a-zA-Z]+)+)"/) {
            let literal = String(match.output.1)
            if let prefix = literal.split(separator: ".").first, prefixes.contains(String(prefix)) { used.insert(literal) }
        }
        #expect(used.count > 50)
        #expect(used.subtracting(english.keys).sorted() == [])
        #expect(Set(english.keys).subtracting(used).sorted() == [], "keys no page or script uses")
    }

    @Test func thePageAndItsAssetsAreServed() async throws {
        let app = Application(
            router: ServerRoutes(state: ServerState(), configuration: ServerConfiguration(), metrics: ServerMetrics(), assets: assets)
                .router())
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.headers[.contentSecurityPolicy]?.hasPrefix("default-src 'self'") == true)
                #expect(String(buffer: response.body).contains(#"<script src="/ui/app.js" defer></script>"#))
            }
            try await client.execute(uri: "/ui/app.js", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/javascript; charset=utf-8")
            }
            try await client.execute(uri: "/ui/i18n/zh-Hant.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("專家"))
            }
            try await client.execute(uri: "/ui/../Package.swift", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/ui/nothing.js", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("no route for GET /ui/nothing.js"))
            }
        }
    }
}

@Suite(.serialized) struct ChronosEndpointTests {
    /// The shipped model offloaded as the server runs it by default: half the expert bytes in memory.
    static let state: ServerState = {
        let state = ServerState()
        if let model = try? ServedModel(
            directory: shippedModel, settings: OffloadSettings(mode: .chronos, budget: .fraction(0.5)), maxTokensLimit: 64)
        {
            state.serve(GenerationScheduler(model: model, parallel: 1, metrics: ServerMetrics()))
        }
        return state
    }()

    private func application(heartbeat: Double = 10) -> some ApplicationProtocol {
        var configuration = ServerConfiguration()
        configuration.eventHeartbeatSeconds = heartbeat
        return Application(router: ServerRoutes(state: Self.state, configuration: configuration, metrics: ServerMetrics()).router())
    }

    private func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func theModelReportCountsAndSizesTheModel() async throws {
        let model = try #require(Self.state.scheduler?.model)
        let counts = model.offloaded.model.parameterCounts
        try await application().test(.router) { client in
            let report = try await client.execute(uri: "/v1/chronos/model", method: .get) { response in
                #expect(response.status == .ok)
                return try object(String(buffer: response.body))
            }
            #expect(report["model"] as? String == "austen-moe")
            #expect(report["layers"] as? Int == model.offloaded.model.summary.layerCount)
            let parameters = try #require(report["parameters"] as? [String: Any])
            #expect(parameters["total"] as? Int == counts.total)
            #expect(parameters["active_per_token"] as? Int == counts.activePerToken)
            let experts = try #require(report["experts"] as? [String: Any])
            #expect(experts["per_layer"] as? Int == 8 && experts["per_token"] as? Int == 2)
            let memory = try #require(report["memory"] as? [String: Any])
            #expect(memory["expert_bytes"] as? Int == model.offloaded.budgetBytes)

            let quarter = try await client.execute(uri: "/v1/chronos/model?budget=0.25", method: .get) {
                try object(String(buffer: $0.body))["memory"] as? [String: Any]
            }
            let bytes = ExpertBudget.fraction(0.25).bytes(ofTotal: model.offloaded.totalExpertBytes)
            #expect(quarter?["expert_bytes"] as? Int == bytes)
            #expect(quarter?["total_bytes"] as? Int == counts.denseBytes + bytes)

            try await client.execute(uri: "/v1/chronos/model?budget=lots", method: .get) { response in
                #expect(response.status == .badRequest)
                let error = try object(String(buffer: response.body))["error"] as? [String: Any]
                #expect(error?["param"] as? String == "budget")
            }
            try await client.execute(uri: "/v1/chronos/events?limit=0", method: .get) { response in
                #expect(response.status == .badRequest)
                let error = try object(String(buffer: response.body))["error"] as? [String: Any]
                #expect(error?["param"] as? String == "limit")
            }
        }
    }

    @Test func theEventStreamSendsEachStepWhileRequestsDecode() async throws {
        let model = try #require(Self.state.scheduler?.model)
        try await application(heartbeat: 0.05).test(.router) { client in
            let body = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    try await client.execute(uri: "/v1/chronos/events?limit=4", method: .get) { response in
                        #expect(response.status == .ok)
                        #expect(response.headers[.contentType] == "text/event-stream")
                        return String(buffer: response.body)
                    }
                }
                // Completions until the stream has its snapshots: it may begin listening after the first one ends.
                group.addTask {
                    let request = #"{"model":"austen-moe","prompt":"It is a truth universally","max_tokens":6,"temperature":0}"#
                    while !Task.isCancelled {
                        _ = try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: request)) { $0.status }
                    }
                    return nil
                }
                let body = try await group.next()!
                group.cancelAll()
                return try #require(body)
            }
            #expect(body.hasPrefix(ServerSentEvents.heartbeat))
            let blocks = body.split(separator: "\n\n").map(String.init)
            let events = blocks.filter { $0.hasPrefix("data: ") }
            #expect(events.count == 4)
            #expect(blocks.allSatisfy { $0 == ": heartbeat" || $0.hasPrefix("data: ") }, "\(blocks)")
            let layers = model.offloaded.model.summary.expertsPerLayer.filter { $0 > 0 }.count
            for event in events {
                let step = try object(String(event.dropFirst("data: ".count)))
                #expect(step["object"] as? String == "chronos.step")
                #expect(["prefill", "decode"].contains(step["phase"] as? String))
                let used = try #require(step["used"] as? [[String: Any]])
                #expect(used.count == layers, "every MoE layer routes each token")
                #expect(used.allSatisfy { ($0["experts"] as? [Int])?.isEmpty == false })
                let counters = try #require(step["step"] as? [String: Any])
                let needed = try #require(counters["needed"] as? Int)
                #expect(needed >= layers * 2)
                #expect((counters["hits"] as? Int).map { $0 <= needed } == true)
                let total = try #require(step["total"] as? [String: Any])
                #expect((total["hit_rate"] as? Double).map { (0...1).contains($0) } == true)
                let residency = try #require(step["residency"] as? [String: Any])
                #expect((residency["layers"] as? [Any])?.count == layers)
            }
        }
    }
}
