import ArgumentParser
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

    /// Two tiny models trained for 4 steps, decoded by child processes and offloaded at one
    /// budget: the report holds both, sized alike, and a second run into it is refused.
    func testATinyComparisonRunsEndToEnd() throws {
        let chronos = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).deletingLastPathComponent()
            .appendingPathComponent("chronos")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: chronos.path), "no chronos executable beside the tests")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("compare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("train.jsonl"), prompts = root.appendingPathComponent("prompts.txt")
        let lines = (0..<40).map {
            "{\"text\": \"It is a truth universally acknowledged, number \($0), that a single man must be in want of a wife.\"}"
        }
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        try "It is a truth universally acknowledged\n".write(to: prompts, atomically: true, encoding: .utf8)
        let report = root.appendingPathComponent("report")
        let arguments =
            [
                "--out", report.path, "--runs", root.appendingPathComponent("runs").path, "--data", data.path, "--heldout", data.path,
                "--prompts", prompts.path, "--decode-tokens", "4", "--offload-tokens", "4", "--budgets", "0.5"
            ] + Self.tiny
        try CompareCommand.parse(arguments).compare(executable: chronos, commandLine: "chronos compare")

        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("report.json"))) as? [String: Any])
        let models = try XCTUnwrap(object["models"] as? [[String: Any]])
        XCTAssertEqual(models.map { $0["name"] as? String }, ["conventional", "chronos"])
        let parameters = models.compactMap { $0["parameters"] as? Int }
        XCTAssertEqual(parameters.count, 2)
        XCTAssertLessThanOrEqual(abs(Double(parameters[0] - parameters[1])) / Double(parameters[1]), 0.05)
        for model in models {
            let stage = try XCTUnwrap((model["stages"] as? [[String: Any]])?.first)
            XCTAssertEqual(stage["steps"] as? Int, 4)
            XCTAssertTrue((stage["held_out_cross_entropy"] as? Double)?.isFinite ?? false)
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
        let again = ["--out", root.appendingPathComponent("report-2").path] + arguments.dropFirst(2)
        XCTAssertThrowsError(try CompareCommand.parse(Array(again)).compare(executable: chronos, commandLine: "chronos compare")) { error in
            XCTAssertTrue(CompareCommand.message(for: error).contains("holds an earlier run; name another --runs directory"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("report-2").path))
    }
}
