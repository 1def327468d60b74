import ArgumentParser
import ChronosTraining
import Foundation
import XCTest

@testable import chronos

/// `chronos compare`: its options are checked where they enter, and a tiny comparison runs end
/// to end, with the `chronos` binary built beside the tests as the decode child.
final class CompareCommandTests: XCTestCase {
    /// A tiny model's shape and schedule.
    static let tiny = [
        "--vocab-size", "300", "--hidden", "16", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "8",
        "--kv-latent", "8", "--rope-dim", "4", "--window", "8", "--experts", "4", "--top-k", "2", "--expert-width", "16",
        "--shared-width", "24", "--lookahead", "2", "--seq-len", "12", "--batch", "2", "--warmup", "1", "--steps", "4",
        "--eval-every", "2", "--eval-sequences", "2", "--param-tolerance", "0.05", "--backend", "swift"
    ]

    private func message(_ arguments: [String]) -> String? {
        do {
            _ = try CompareCommand.parse(["--out", "/nonexistent/report"] + Self.tiny + arguments)
            return nil
        } catch {
            return CompareCommand.message(for: error)
        }
    }

    func testOptionsAreCheckedNamingOptionValueAndRange() {
        XCTAssertNil(message([]))
        XCTAssertEqual(message(["--param-tolerance", "0.7"]), "--param-tolerance 0.7 is invalid: expected between 0.0 and 0.5")
        XCTAssertTrue(message(["--param-tolerance", "0"])?.hasPrefix("--param-tolerance 0.0 is invalid: expected at least") ?? false)
        XCTAssertTrue(message(["--shared-experts", "0"])?.hasPrefix("--shared-experts 0 is invalid") ?? false)
        XCTAssertTrue(message(["--budgets", "0.1,1.5"])?.hasPrefix("--budgets '0.1,1.5' is invalid") ?? false)
        XCTAssertTrue(message(["--budgets", "0.3,0.3"])?.hasPrefix("--budgets '0.3,0.3' is invalid") ?? false)
        XCTAssertTrue(message(["--decode-tokens", "0"])?.hasPrefix("--decode-tokens 0 is invalid") ?? false)
        XCTAssertTrue(message(["--ssd-mbps", "0"])?.hasPrefix("--ssd-mbps 0.0 is invalid") ?? false)
        XCTAssertTrue(message(["--match", "depth"])?.contains("depth") ?? false)
    }

    func testReadsTheDecodeSpeedOfGenerate() {
        let output = "It was\n…\nprompt 9 tokens, generated 8 tokens, time to first token 3.0 ms, 123.45 tokens/s (length)\n"
        XCTAssertEqual(CompareCommand.decodeSpeed(output), 123.45)
        XCTAssertNil(CompareCommand.decodeSpeed("no summary"))
    }

    struct Interrupted: Error {}

    /// The `chronos` executable built beside the tests, the decode child of a comparison.
    private func chronosExecutable() throws -> URL {
        let chronos = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).deletingLastPathComponent()
            .appendingPathComponent("chronos")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: chronos.path), "no chronos executable beside the tests")
        return chronos
    }

    /// A temporary directory with training text and a prompt; the compare arguments over them
    /// that write the report to `report` and the runs to `runs`.
    private func workspace() throws -> (root: URL, arguments: [String]) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("compare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let data = root.appendingPathComponent("train.jsonl"), prompts = root.appendingPathComponent("prompts.txt")
        let lines = (0..<40).map {
            "{\"text\": \"It is a truth universally acknowledged, number \($0), that a single man must be in want of a wife.\"}"
        }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        try "It is a truth universally acknowledged\n".write(to: prompts, atomically: true, encoding: .utf8)
        let arguments =
            [
                "--out", root.appendingPathComponent("report").path, "--runs", root.appendingPathComponent("runs").path, "--data",
                data.path, "--heldout", data.path, "--prompts", prompts.path, "--decode-tokens", "4", "--offload-tokens", "4",
                "--budgets", "0.5"
            ] + Self.tiny
        return (root, arguments)
    }

    private func report(_ directory: URL) throws -> [[String: Any]] {
        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any])
        return try XCTUnwrap(object["models"] as? [[String: Any]])
    }

    /// Two tiny models trained for 4 steps, decoded by child processes and offloaded at one
    /// budget: the report holds both, sized alike. The same comparison into a new report
    /// measures again without training; other settings or runs without a record are refused.
    func testATinyComparisonRunsEndToEnd() throws {
        let chronos = try chronosExecutable()
        let (root, arguments) = try workspace()
        defer { try? FileManager.default.removeItem(at: root) }
        let report = root.appendingPathComponent("report")
        try CompareCommand.parse(arguments).compare(executable: chronos, commandLine: "chronos compare")

        let models = try self.report(report)
        XCTAssertEqual(models.map { $0["name"] as? String }, ["conventional", "chronos"])
        let parameters = models.compactMap { $0["parameters"] as? Int }
        XCTAssertEqual(parameters.count, 2)
        XCTAssertLessThanOrEqual(abs(Double(parameters[0] - parameters[1])) / Double(parameters[1]), 0.05)
        for model in models {
            let stage = try XCTUnwrap((model["stages"] as? [[String: Any]])?.first)
            XCTAssertEqual(stage["steps"] as? Int, 4)
            let crossEntropy = try XCTUnwrap(stage["held_out_cross_entropy"] as? Double)
            XCTAssertEqual(crossEntropy, (stage["metrics"] as? [String: Double])?["heldout_ce"] ?? 0, accuracy: 1e-9)
            let decode = try XCTUnwrap(model["decode"] as? [String: Any])
            XCTAssertGreaterThan(decode["tokens_per_second"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(decode["peak_resident_bytes"] as? Int ?? 0, 1 << 20)
            let offload = try XCTUnwrap(model["offload"] as? [[String: Any]])
            XCTAssertEqual(offload.compactMap { $0["mode"] as? String }, ["lru", "chronos"])
        }
        XCTAssertEqual((models[0]["lambdas"] as? [String: Double])?["temporal"], 0)
        for name in ["report.md", "loss.svg", "offload.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: report.appendingPathComponent(name).path), name)
        }
        XCTAssertThrowsError(try CompareCommand.parse(arguments).compare(executable: chronos, commandLine: "chronos compare"))

        var trained: [String] = []
        let again = Array(["--out", root.appendingPathComponent("report-2").path] + arguments.dropFirst(2))
        try CompareCommand.parse(again).compare(executable: chronos, commandLine: "chronos compare") { name, event in
            if case .stageStarted = event { trained.append(name) }
        }
        XCTAssertEqual(trained, [], "a finished comparison is measured again, not trained again")
        XCTAssertEqual(
            try self.report(root.appendingPathComponent("report-2")).map { ($0["stages"] as? [[String: Any]])?.first?["steps"] as? Int },
            [4, 4])

        let otherSteps = Array(["--out", root.appendingPathComponent("report-3").path] + arguments.dropFirst(2) + ["--steps", "5"])
        XCTAssertThrowsError(try CompareCommand.parse(otherSteps).compare(executable: chronos, commandLine: "chronos compare")) { error in
            XCTAssertTrue(CompareCommand.message(for: error).contains("holds a comparison with other settings (optimization:"), "\(error)")
        }
        try FileManager.default.removeItem(at: root.appendingPathComponent("runs/\(ComparisonRuns.recordName)"))
        XCTAssertThrowsError(try CompareCommand.parse(otherSteps).compare(executable: chronos, commandLine: "chronos compare")) { error in
            XCTAssertTrue(CompareCommand.message(for: error).contains("holds an earlier run; name another --runs directory"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("report-3").path))
    }

    /// A comparison through SFT and distillation, stopped during the Chronos model's
    /// pretraining: the same command keeps the conventional model's finished stages, resumes
    /// the Chronos model from its snapshot, and reports every stage of both.
    func testAComparisonThroughTheStagesContinuesWhereItStopped() throws {
        let chronos = try chronosExecutable()
        let (root, arguments) = try workspace()
        defer { try? FileManager.default.removeItem(at: root) }
        let conversations = (0..<12).map { index in
            "{\"conversations\": [{\"role\": \"user\", \"content\": \"Define word \(index).\"}, "
                + "{\"role\": \"assistant\", \"content\": \"word \(index) (noun): a single man.\"}]}"
        }
        try conversations.joined(separator: "\n").write(to: root.appendingPathComponent("sft.jsonl"), atomically: true, encoding: .utf8)
        let prompts = (0..<4).map { index in
            "{\"conversations\": [{\"role\": \"user\", \"content\": \"Define word \(index).\"}, "
                + "{\"role\": \"assistant\", \"content\": \"\"}], \"reference\": \"a single man\", \"word\": \"word \(index)\"}"
        }
        try prompts.joined(separator: "\n").write(to: root.appendingPathComponent("prompts.jsonl"), atomically: true, encoding: .utf8)
        let stages: [String: Any] = [
            "output": "unused",
            "defaults": [
                "steps": 2, "batch_size": 2, "warmup_steps": 1, "eval_every": 0, "checkpoint_every": 1, "eval_examples": 2,
                "generation_examples": 2, "max_new_tokens": 4, "max_length": 24
            ],
            "stages": [
                ["stage": "sft", "data": "sft.jsonl", "heldout": "sft.jsonl", "eval_prompts": "prompts.jsonl"],
                ["stage": "distill", "data": "sft.jsonl", "heldout": "sft.jsonl", "teacher": "sft", "steps": 1]
            ]
        ]
        let stagesFile = root.appendingPathComponent("stages.json")
        try JSONSerialization.data(withJSONObject: stages).write(to: stagesFile)
        let command = arguments + ["--stages", stagesFile.path, "--checkpoint-every", "2"]

        XCTAssertThrowsError(
            try CompareCommand.parse(command).compare(executable: chronos, commandLine: "chronos compare") { name, event in
                if name == "chronos", case .pretrain(.step(let report, _, _)) = event, report.step == 3 { throw Interrupted() }
            })
        var events: [String] = []
        try CompareCommand.parse(command).compare(executable: chronos, commandLine: "chronos compare") { name, event in
            switch event {
            case .stageSkipped(let result): events.append("\(name) skip \(result.stage.rawValue)")
            case .stageStarted(let stage, _): events.append("\(name) start \(stage.rawValue)")
            case .pretrain(.started(_, _, _, _, let resumedAt)) where resumedAt > 0: events.append("\(name) at \(resumedAt)")
            default: break
            }
        }
        XCTAssertEqual(
            events,
            [
                "conventional skip pretrain", "conventional skip sft", "conventional skip distill", "chronos start pretrain",
                "chronos at 2", "chronos start sft", "chronos start distill"
            ])
        let models = try report(root.appendingPathComponent("report"))
        for model in models {
            let stages = try XCTUnwrap(model["stages"] as? [[String: Any]])
            XCTAssertEqual(stages.map { $0["name"] as? String }, ["pretrain", "sft", "distill"])
            XCTAssertEqual(stages.map { $0["steps"] as? Int }, [4, 2, 1])
            XCTAssertTrue(stages.allSatisfy { ($0["held_out_cross_entropy"] as? Double)?.isFinite ?? false })
            XCTAssertNotNil((stages[1]["metrics"] as? [String: Double])?["definition_f1"])
        }
        let markdown = try String(contentsOf: root.appendingPathComponent("report/report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("held-out cross-entropy after distill"))
        XCTAssertTrue(markdown.contains("| sft | definition_f1 |"))
        let distillation = try StageResult.read(from: root.appendingPathComponent("runs/conventional/6-distill"))
        XCTAssertEqual(distillation?.steps, 1)
    }
}
