import ChronosBench
import Foundation
import XCTest

/// The report directory `chronos compare` writes: its JSON fields, its files, and that it never
/// replaces an earlier report.
final class ComparisonReportTests: XCTestCase {
    private func model(_ name: String, parameters: Int, crossEntropy: Double, speedup: Double) -> ComparisonReport.Model {
        ComparisonReport.Model(
            name: name, recipe: "\(name) recipe", parameters: parameters, activeParameters: parameters / 2, experts: 4, topK: 2,
            expertWidth: 16, sharedExperts: name == "chronos" ? 1 : 0, sharedWidth: name == "chronos" ? 24 : 0,
            lookahead: name == "chronos" ? 2 : 0, lambdas: ["balance": 0.01, "temporal": 0, "lookahead": 0, "anchor": 0],
            stages: [ComparisonReport.Stage(name: "pretrain", steps: 4, heldOutCrossEntropy: crossEntropy, seconds: 1.5)],
            curve: [
                ComparisonReport.CurvePoint(step: 1, trainingCrossEntropy: 5.5, heldOutCrossEntropy: nil),
                ComparisonReport.CurvePoint(step: 2, trainingCrossEntropy: 5.2, heldOutCrossEntropy: crossEntropy)
            ],
            decode: ComparisonReport.Decode(
                prompts: 2, tokens: 8, tokensPerSecond: 100, peakResidentBytes: 50 << 20, tokensPerSecondByPrompt: [90, 110]),
            offload: [0.1, 0.5].flatMap { budget in
                [
                    ComparisonReport.OffloadPoint(budget: budget, mode: "lru", hitRate: 0.5, stallMsPerToken: 2, tokensPerSecond: 50),
                    ComparisonReport.OffloadPoint(
                        budget: budget, mode: "chronos", hitRate: 0.7, stallMsPerToken: 1, tokensPerSecond: 50 * speedup)
                ]
            })
    }

    private func report() -> ComparisonReport {
        ComparisonReport(
            date: "2026-12-07T12:00:00Z", machine: "test processor, 2 cores", command: "chronos compare --out X",
            data: "train.jsonl", heldOut: "heldout.jsonl", prompts: "prompts.txt", steps: 4, seed: 3, matching: "width",
            parameterTolerance: 0.01, disk: "simulated disk",
            models: [
                model("conventional", parameters: 1010, crossEntropy: 5.0, speedup: 1.1),
                model("chronos", parameters: 1000, crossEntropy: 5.1, speedup: 1.3)
            ])
    }

    private func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("compare-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory
    }

    func testJSONHasSnakeCaseFieldsAndReadsBack() throws {
        let data = try report().json()
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(
            Set(object.keys),
            [
                "date", "machine", "command", "data", "held_out", "prompts", "steps", "seed", "matching", "parameter_tolerance", "disk",
                "models"
            ])
        let models = try XCTUnwrap(object["models"] as? [[String: Any]])
        XCTAssertEqual(models.map { $0["name"] as? String }, ["conventional", "chronos"])
        XCTAssertEqual(
            Set(models[0].keys),
            [
                "name", "recipe", "parameters", "active_parameters", "experts", "top_k", "expert_width", "shared_experts",
                "shared_width", "lookahead", "lambdas", "stages", "curve", "decode", "offload"
            ])
        let stage = try XCTUnwrap((models[1]["stages"] as? [[String: Any]])?.first)
        XCTAssertEqual(stage["held_out_cross_entropy"] as? Double, 5.1)
        let decode = try XCTUnwrap(models[0]["decode"] as? [String: Any])
        XCTAssertEqual(decode["peak_resident_bytes"] as? Int, 50 << 20)
        XCTAssertEqual(decode["tokens_per_second_by_prompt"] as? [Double], [90, 110])
        let offload = try XCTUnwrap((models[1]["offload"] as? [[String: Any]])?.last)
        XCTAssertEqual(Set(offload.keys), ["budget", "mode", "hit_rate", "stall_ms_per_token", "tokens_per_second"])
        XCTAssertEqual(try ComparisonReport.decode(data), report())
    }

    func testWritesEveryFileAndRefusesToReplaceAReport() throws {
        let directory = try temporaryDirectory().appendingPathComponent("report")
        try report().write(to: directory)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertEqual(names, ComparisonReport.fileNames.sorted())
        let markdown = try String(contentsOf: directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("| held-out cross-entropy after pretrain (nats/token) | 5.0000 | 5.1000 |"), markdown)
        XCTAssertTrue(markdown.contains("| 10 % | chronos | chronos | 70.0 % | 1.00 | 65.0 | 1.30 |"), markdown)
        XCTAssertTrue(markdown.contains("+1.00 %"), markdown)
        XCTAssertTrue(markdown.contains("| 100.0 (90–110) | 100.0 (90–110) |"), markdown)
        for chart in ["loss.svg", "offload.svg"] {
            let svg = try String(contentsOf: directory.appendingPathComponent(chart), encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<?xml") && svg.contains("chronos"), chart)
        }

        var changed = report()
        changed.seed = 99
        XCTAssertThrowsError(try changed.write(to: directory)) { error in
            XCTAssertEqual(error as? ComparisonReportError, .exists(directory.path))
        }
        let kept = try ComparisonReport.decode(Data(contentsOf: directory.appendingPathComponent("report.json")))
        XCTAssertEqual(kept.seed, 3)
        let beside = try FileManager.default.contentsOfDirectory(atPath: directory.deletingLastPathComponent().path)
        XCTAssertEqual(beside, ["report"], "no staging directory is left behind")
    }

    /// A file at the report's path is refused too.
    func testRefusesAFileInTheWay() throws {
        let path = try temporaryDirectory().appendingPathComponent("report")
        try Data("x".utf8).write(to: path)
        XCTAssertThrowsError(try report().write(to: path))
    }

    /// The curve keeps every step's `ce` and every evaluation's `heldout_ce`, and skips a torn line.
    func testReadsTheCurveOfAMetricsLog() throws {
        let log = try temporaryDirectory().appendingPathComponent("metrics.jsonl")
        try Data(
            """
            {"ce":5.5,"loss":5.6,"step":1}
            {"ce":5.25,"loss":5.3,"step":2}
            {"heldout_ce":5.125,"step":2}
            {"ce":5.0,"st
            """.utf8
        ).write(to: log)
        XCTAssertEqual(
            try ComparisonReport.CurvePoint.read(metrics: log),
            [
                ComparisonReport.CurvePoint(step: 1, trainingCrossEntropy: 5.5, heldOutCrossEntropy: nil),
                ComparisonReport.CurvePoint(step: 2, trainingCrossEntropy: 5.25, heldOutCrossEntropy: 5.125)
            ])
    }
}
