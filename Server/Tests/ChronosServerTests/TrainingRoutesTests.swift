import ChronosServer
import ChronosTensor
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite(.serialized) struct TrainingRoutesTests {
    /// A workspace holding a tiny corpus (`train.jsonl`), a search space (`space.json`) and a link
    /// (`outside`) to a folder beside it, out of the workspace.
    let workspace: URL

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("chronos-training-\(UUID().uuidString)")
        workspace = base.appendingPathComponent("workspace")
        let outside = base.appendingPathComponent("outside")
        for directory in [workspace, outside] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let lines = (0..<60).map { i in
            "{\"text\": \"It is a truth universally acknowledged, number \(i), that a single man in possession of a good fortune must be in want of a wife.\"}"
        }
        try lines.joined(separator: "\n").write(to: workspace.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        try #"{"parameters": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.01, "log": true}]}"#.write(
            to: workspace.appendingPathComponent("space.json"), atomically: true, encoding: .utf8)
        try "secret".write(to: outside.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(at: workspace.appendingPathComponent("outside"), withDestinationURL: outside)
    }

    /// Routes over a server whose model is still loading, with `workspace` when given.
    private func application(workspace: URL?) throws -> some ApplicationProtocol {
        var configuration = ServerConfiguration()
        configuration.workspace = try workspace.map { try TrainingWorkspace(path: $0.path) }
        return Application(router: ServerRoutes(state: ServerState(), configuration: configuration, metrics: ServerMetrics()).router())
    }

    /// A run of the tiny shape on the corpus, into `output`, of `steps` steps.
    private func tinyRun(_ output: String, steps: Int) -> String {
        #"{"data":"train.jsonl","output":"\#(output)","shape":"tiny","vocab_size":300,"steps":\#(steps),"batch_size":2,"#
            + #""seq_len":12,"eval_every":3,"eval_sequences":2,"checkpoint_every":3}"#
    }

    private func post(_ client: some TestClientProtocol, _ path: String, _ body: String) async throws -> (
        HTTPResponse.Status, [String: Any]
    ) {
        try await client.execute(uri: path, method: .post, body: ByteBuffer(string: body)) { response in
            (response.status, (try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]) ?? [:])
        }
    }

    /// The jobs `GET path` lists under `key`.
    private func jobs(_ client: some TestClientProtocol, _ path: String, _ key: String) async throws -> [[String: Any]] {
        let body = try await client.execute(uri: path, method: .get) { String(buffer: $0.body) }
        let list = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        return try #require(list[key] as? [[String: Any]], "\(body)")
    }

    /// Job `id` of `path` once it has stopped running (or after a minute).
    private func waitForEnd(_ client: some TestClientProtocol, _ path: String, _ key: String, id: Int) async throws -> [String: Any] {
        var job: [String: Any] = [:]
        for _ in 0..<600 {
            job = try #require(try await jobs(client, path, key).first { $0["id"] as? Int == id })
            if job["state"] as? String != "running" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return job
    }

    @Test func withoutAWorkspaceTrainingAndTuningAreRefused() async throws {
        try await application(workspace: nil).test(.router) { client in
            for path in ["/v1/chronos/training", "/v1/chronos/tuning"] {
                let (status, body) = try await post(client, path, tinyRun("runs/a", steps: 2))
                #expect(status == .conflict)
                let error = try #require(body["error"] as? [String: Any])
                #expect(error["code"] as? String == "no_workspace")
                #expect((error["message"] as? String)?.contains("--workspace") == true)
                let listed = try await client.execute(uri: path, method: .get) { $0.status }
                #expect(listed == .conflict)
            }
        }
        #expect(throws: InvalidSetting.self) { try TrainingWorkspace(path: workspace.appendingPathComponent("train.jsonl").path) }
        #expect(throws: InvalidSetting.self) { try TrainingWorkspace(path: workspace.appendingPathComponent("missing").path) }
    }

    @Test func everyPathStaysInsideTheWorkspaceAndEveryFieldIsChecked() async throws {
        let refusals: [(body: String, param: String)] = [
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: "train.jsonl", with: "../outside/data.jsonl"), "data"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: "train.jsonl", with: "/etc/passwd"), "data"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: "train.jsonl", with: "outside/data.jsonl"), "data"),
            (tinyRun("outside/run", steps: 2), "output"),
            (tinyRun("../run", steps: 2), "output"),
            (tinyRun(".", steps: 2), "output"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: "train.jsonl", with: "missing.jsonl"), "data"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: #""shape""#, with: #""tokenizer":"outside","shape""#), "tokenizer"),
            (tinyRun("runs/a", steps: 0), "steps"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: #""batch_size":2"#, with: #""batch_size":0"#), "batch_size"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: #""vocab_size":300"#, with: #""vocab_size":100"#), "vocab_size"),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: #""shape":"tiny""#, with: #""shape":"huge""#), "shape"),
            (
                tinyRun("runs/a", steps: 2).replacingOccurrences(
                    of: #""shape":"tiny""#, with: #""shape":"tiny","model":{"num_experts_per_tok":9}"#),
                "model.num_experts_per_tok"
            ),
            (tinyRun("runs/a", steps: 2).replacingOccurrences(of: #""steps""#, with: #""lr":0.1,"steps""#), "lr")
        ]
        try await application(workspace: workspace).test(.router) { client in
            for (body, param) in refusals {
                let (status, answer) = try await post(client, "/v1/chronos/training", body)
                #expect(status == .badRequest, "\(body)")
                let error = try #require(answer["error"] as? [String: Any], "\(body)")
                #expect(error["param"] as? String == param, "\(error)")
                #expect((error["message"] as? String)?.hasPrefix(param) == true, "\(error)")
            }
            let study = #"{"data":"train.jsonl","output":"studies/a","shape":"tiny","vocab_size":300,"space":"../space.json"}"#
            let (status, answer) = try await post(client, "/v1/chronos/tuning", study)
            #expect(status == .badRequest)
            #expect((answer["error"] as? [String: Any])?["param"] as? String == "space")
        }
        #expect(!FileManager.default.fileExists(atPath: workspace.appendingPathComponent("runs").path), "nothing was written")
    }

    @Test func aPretrainingRunTrainsInTheBackgroundOneJobAtATime() async throws {
        try await application(workspace: workspace).test(.router) { client in
            // A long run: a second job is refused while it runs, and DELETE stops it.
            let (started, long) = try await post(client, "/v1/chronos/training", tinyRun("runs/long", steps: 100_000))
            #expect(started == .accepted)
            let longID = try #require(long["id"] as? Int)
            for (path, body) in [("/v1/chronos/training", tinyRun("runs/other", steps: 2)), ("/v1/chronos/tuning", Self.study)] {
                let (busy, refusal) = try await post(client, path, body)
                #expect(busy == .conflict)
                #expect((refusal["error"] as? [String: Any])?["code"] as? String == "job_running")
            }
            let unknown = try await client.execute(uri: "/v1/chronos/training/999", method: .delete) { $0.status }
            #expect(unknown == .notFound)
            for _ in 0..<600 {
                let job = try #require(try await jobs(client, "/v1/chronos/training", "training").first { $0["id"] as? Int == longID })
                if let curve = job["curve"] as? [Any], !curve.isEmpty { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let stopped = try await client.execute(uri: "/v1/chronos/training/\(longID)", method: .delete) { $0.status }
            #expect(stopped == .accepted)
            let cancelled = try await waitForEnd(client, "/v1/chronos/training", "training", id: longID)
            #expect(cancelled["state"] as? String == "cancelled", "\(cancelled)")
            #expect((cancelled["step"] as? Int ?? 0) < 100_000)

            // A short run to its end: a loss per step, held-out cross-entropy at each evaluation.
            let (accepted, short) = try await post(client, "/v1/chronos/training", tinyRun("runs/short", steps: 6))
            #expect(accepted == .accepted)
            let job = try await waitForEnd(client, "/v1/chronos/training", "training", id: try #require(short["id"] as? Int))
            #expect(job["state"] as? String == "finished", "\(job)")
            let curve = try #require(job["curve"] as? [[String: Any]])
            #expect(curve.compactMap { $0["step"] as? Int } == Array(1...6))
            #expect(curve.allSatisfy { ($0["loss"] as? Double ?? 0) > 0 && ($0["ce"] as? Double ?? 0) > 0 })
            #expect(curve.filter { $0["heldout_ce"] is Double }.compactMap { $0["step"] as? Int } == [3, 6])

            // The output keeps the run: a new job into it is refused.
            let (again, conflict) = try await post(client, "/v1/chronos/training", tinyRun("runs/short", steps: 6))
            #expect(again == .conflict)
            #expect((conflict["error"] as? [String: Any])?["code"] as? String == "earlier_run")
            let (study, refusal) = try await post(
                client, "/v1/chronos/tuning", Self.study.replacingOccurrences(of: "studies/lr", with: "runs/short"))
            #expect(study == .conflict, "a study does not go into a run's directory")
            #expect((refusal["error"] as? [String: Any])?["param"] as? String == "output")
        }
        for file in ["metrics.jsonl", "job.json", "config.json", "tokenizer/tokenizer.json"] {
            #expect(FileManager.default.fileExists(atPath: workspace.appendingPathComponent("runs/short/\(file)").path), "\(file)")
        }
        // A server started again on the workspace lists both runs from their logs.
        try await application(workspace: workspace).test(.router) { client in
            let listed = try await jobs(client, "/v1/chronos/training", "training")
            let outputs = Dictionary(uniqueKeysWithValues: listed.compactMap { job in (job["output"] as? String).map { ($0, job) } })
            #expect(outputs.keys.sorted() == ["runs/long", "runs/short"])
            #expect(outputs["runs/long"]?["state"] as? String == "cancelled")
            #expect(outputs["runs/short"]?["state"] as? String == "finished")
            #expect((outputs["runs/short"]?["curve"] as? [Any])?.count == 6)
            #expect(outputs["runs/short"]?["id"] is NSNull)
        }
    }

    /// A study of two trials of three steps over the learning rate, without pruning.
    static let study =
        #"{"data":"train.jsonl","output":"studies/lr","shape":"tiny","vocab_size":300,"steps":3,"batch_size":2,"#
        + #""seq_len":12,"eval_every":3,"eval_sequences":2,"space":"space.json","trials":2,"startup_trials":2,"prune":false}"#

    @Test func aStudyRunsItsTrialsAndKeepsTheBest() async throws {
        try await application(workspace: workspace).test(.router) { client in
            let (status, body) = try await post(client, "/v1/chronos/tuning", Self.study)
            #expect(status == .accepted, "\(body)")
            let job = try await waitForEnd(client, "/v1/chronos/tuning", "tuning", id: try #require(body["id"] as? Int))
            #expect(job["state"] as? String == "finished", "\(job)")
            let trials = try #require(job["trials"] as? [[String: Any]])
            #expect(trials.compactMap { $0["number"] as? Int } == [0, 1])
            #expect(trials.allSatisfy { ($0["values"] as? [Double])?.count == 1 })
            #expect(trials.allSatisfy { (($0["parameters"] as? [String: Any])?["lr"] as? Double ?? 0) > 0 })
            let best = try #require(job["best"] as? Int)
            let values = trials.map { ($0["values"] as? [Double])?.first ?? .infinity }
            #expect(values[best] == values.min())
        }
        #expect(FileManager.default.fileExists(atPath: workspace.appendingPathComponent("studies/lr/trials.jsonl").path))
        try await application(workspace: workspace).test(.router) { client in
            let listed = try await jobs(client, "/v1/chronos/tuning", "tuning")
            #expect(listed.count == 1)
            #expect((listed.first?["trials"] as? [Any])?.count == 2)
            #expect(listed.first?["state"] as? String == "finished")
        }
    }
}
