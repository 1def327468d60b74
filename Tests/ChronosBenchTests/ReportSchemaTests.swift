import ChronosBench
import ChronosEngine
import ChronosStorage
import Foundation
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The JSON and CSV the benchmarks write: their field names, row counts and values.
final class ReportSchemaTests: XCTestCase {
    /// lru/wait at 300 of 1000 expert bytes: 2 prompts, 4 decode steps in 0.5 s (8 tokens/s),
    /// 0.1 s of prefill (50 ms to first token), 400 bytes read in 8 reads and 200 missed (100
    /// and 50 per token, 2 reads a token of 50 bytes).
    private func lruRun() -> OffloadBench.Run {
        var m = metrics(.lru, policy: .wait, budgetBytes: 300, steps: 4, seconds: 0.5)
        m.prompts = 2
        m.prefillSeconds = 0.1
        m.decode.bytesRead = 400
        m.decode.reads = 8
        m.decode.missedBytes = 200
        m.decode.needed = 8
        m.decode.hits = 6
        var run = OffloadBench.Run(metrics: m)
        run.oracleHitRate = 0.875
        run.agreement = 1
        run.boundTokensPerSecond = 20
        return run
    }

    private func skippedRun() -> OffloadBench.Run {
        OffloadBench.Run(metrics: metrics(.chronos, policy: .wait), note: "budget below one expert")
    }

    static let jsonKeys: Set<String> = [
        "name", "policy", "budget", "budget_bytes", "expert_bytes", "tokens_per_s", "ttft_ms", "stall_ms_per_token", "hit_rate",
        "oracle_hit_rate", "bytes_read_per_token", "reads_per_token", "bytes_per_read", "missed_bytes_per_token", "wasted_prefetch_bytes",
        "prefetched_bytes",
        "peak_expert_bytes", "fallbacks", "faults", "prompts", "decode_steps", "next_layer_recall", "repetition_recall",
        "repetition_precision", "recall_t1", "precision_t1", "recall_t1_shuffled", "recall_t1_frequency", "recall_t1_previous",
        "recall_by_offset", "prompt_recall", "prompt_precision", "prompt_recall_chance", "bound_tokens_per_s", "greedy_agreement",
        "cross_entropy"
    ]

    func testOffloadJSONHasEveryFieldAndItsValuesRoundTrip() throws {
        let text = try OffloadBench.jsonDocument(
            runs: [
                OffloadBench.json(lruRun(), budget: .fraction(0.3)),
                OffloadBench.json(skippedRun(), budget: .fraction(0.3))
            ],
            context: ["tokens": 4, "disk": "real"])
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(Set(document.keys), ["runs", "context"])
        let context = try XCTUnwrap(document["context"] as? [String: Any])
        XCTAssertEqual(context["tokens"] as? Int, 4)
        XCTAssertEqual(context["disk"] as? String, "real")
        let runs = try XCTUnwrap(document["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 2)
        XCTAssertEqual(Set(runs[0].keys), Self.jsonKeys)
        XCTAssertEqual(Set(runs[1].keys), Self.jsonKeys.union(["note"]))
        let lru = runs[0]
        XCTAssertEqual(lru["name"] as? String, "lru")
        XCTAssertEqual(lru["policy"] as? String, "wait")
        XCTAssertEqual(lru["budget"] as? String, ExpertBudget.fraction(0.3).description)
        XCTAssertEqual(lru["budget_bytes"] as? Int, 300)
        XCTAssertEqual(lru["tokens_per_s"] as? Double, 8)
        XCTAssertEqual(lru["ttft_ms"] as? Double ?? 0, 50, accuracy: 1e-9)
        XCTAssertEqual(lru["hit_rate"] as? Double, 0.75)
        XCTAssertEqual(lru["oracle_hit_rate"] as? Double, 0.875)
        XCTAssertEqual(lru["bytes_read_per_token"] as? Double, 100)
        XCTAssertEqual(lru["missed_bytes_per_token"] as? Double, 50)
        XCTAssertEqual(lru["reads_per_token"] as? Double, 2)
        XCTAssertEqual(lru["bytes_per_read"] as? Double, 50)
        XCTAssertEqual(lru["bound_tokens_per_s"] as? Double, 20)
        XCTAssertEqual(lru["greedy_agreement"] as? Double, 1)
        XCTAssertTrue(lru["cross_entropy"] is NSNull, "a figure not measured is null")
        XCTAssertTrue(lru["recall_t1"] is NSNull)
        XCTAssertEqual(runs[1]["note"] as? String, "budget below one expert")
    }

    func testSweepCSVHasOneRowPerRunAndEveryColumn() throws {
        let columns = [
            "budget", "baseline", "policy", "tokens_per_s", "ttft_ms", "stall_ms_per_token", "hit_rate", "oracle_hit_rate",
            "recall_t1", "recall_t1_shuffled", "recall_t1_frequency", "bytes_read_per_token", "wasted_prefetch_bytes",
            "peak_expert_bytes", "fallbacks", "faults", "bound_tokens_per_s", "greedy_agreement", "cross_entropy", "note"
        ]
        let text = OffloadBench.csv([(budget: 0.3, runs: [lruRun(), skippedRun()]), (budget: 0.5, runs: [lruRun()])])
        XCTAssertTrue(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        XCTAssertEqual(lines.count, 4, "the header and one row per run of each budget")
        XCTAssertEqual(lines[0].split(separator: ",").map(String.init), columns)
        let rows = lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(columns, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
        for (index, line) in lines.enumerated() {
            XCTAssertEqual(line.split(separator: ",", omittingEmptySubsequences: false).count, columns.count, "line \(index)")
        }
        XCTAssertEqual(rows[0]["budget"], "0.3")
        XCTAssertEqual(rows[0]["baseline"], "lru")
        XCTAssertEqual(rows[0]["policy"], "wait")
        XCTAssertEqual(Double(rows[0]["tokens_per_s"]!), 8)
        XCTAssertEqual(Double(rows[0]["ttft_ms"]!)!, 50, accuracy: 1e-9)
        XCTAssertEqual(Double(rows[0]["hit_rate"]!), 0.75)
        XCTAssertEqual(Double(rows[0]["oracle_hit_rate"]!), 0.875)
        XCTAssertEqual(Double(rows[0]["bytes_read_per_token"]!), 100)
        XCTAssertEqual(Double(rows[0]["bound_tokens_per_s"]!), 20)
        XCTAssertEqual(rows[0]["cross_entropy"], "", "a figure not measured is an empty field")
        XCTAssertEqual(rows[0]["note"], "")
        XCTAssertEqual(rows[1]["baseline"], "chronos")
        XCTAssertEqual(rows[1]["tokens_per_s"], "")
        XCTAssertEqual(rows[1]["note"], "budget below one expert")
        XCTAssertEqual(rows[2]["budget"], "0.5")
    }

    func testSweepChartDrawsTheLosslessBaselinesAgainstTheBudget() {
        let resident = OffloadBench.Run(metrics: metrics(.resident, steps: 10, seconds: 0.1))
        let fallback = OffloadBench.Run(metrics: metrics(.lru, policy: .fallback, budgetBytes: 300, steps: 4, seconds: 0.1))
        let svg = OffloadBench.chart([
            (budget: 0.3, runs: [resident, lruRun(), fallback, skippedRun()]), (budget: 0.5, runs: [resident, lruRun()])
        ])
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        for text in ["Decode speed", "Stall waiting for experts", "expert budget (% of expert bytes)", "(tokens/s)", "(ms/token)"] {
            XCTAssertTrue(svg.contains(text), text)
        }
        XCTAssertEqual(svg.components(separatedBy: ">lru/wait</text>").count - 1, 2, "in both charts' legends")
        XCTAssertEqual(svg.components(separatedBy: ">resident</text>").count - 1, 2)
        XCTAssertFalse(svg.contains("lru/fallback"), "the lossy policy is not drawn")
        XCTAssertFalse(svg.contains("chronos"), "a run that could not run is not drawn")
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 4, "two lines of two budgets in each chart")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 8)
    }

    func testOffloadTableHasAHeaderAndARowPerRun() {
        let table = OffloadBench.table([OffloadBench.Run(metrics: metrics(.resident, steps: 4, seconds: 0.25)), lruRun(), skippedRun()])
        let lines = table.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[0].hasPrefix("baseline"))
        XCTAssertTrue(lines[2].contains("0.50"), "lru runs at 8 of resident's 16 tokens/s")
        XCTAssertTrue(lines[3].contains("budget below one expert"))
    }

    func testMeasurementJSONNamesItsFieldsAndOmitsAMissingBound() throws {
        var shown: [String] = []
        let report = BenchReport(show: { shown.append($0) }, progress: { _ in })
        report.add(Measurement(name: "streaming read", value: 20, unit: "GB/s"))
        report.add(Measurement(name: "matvec f32", value: 15, unit: "GB/s", bound: 20, boundName: "streaming read"))
        XCTAssertEqual(shown.count, 3, "the header, then one row per measurement")
        XCTAssertEqual(shown[0], BenchReport.header)
        XCTAssertTrue(shown[2].contains("0.75×"))

        let document = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(report.json(context: ["threads": "2"]).utf8)) as? [String: Any])
        XCTAssertEqual(document["context"] as? [String: String], ["threads": "2"])
        let measurements = try XCTUnwrap(document["measurements"] as? [[String: Any]])
        XCTAssertEqual(measurements.count, 2)
        XCTAssertEqual(Set(measurements[0].keys), ["name", "value", "unit"])
        XCTAssertEqual(Set(measurements[1].keys), ["name", "value", "unit", "bound", "bound_name", "ratio"])
        XCTAssertEqual(measurements[1]["ratio"] as? Double, 0.75)
        XCTAssertEqual(measurements[1]["bound_name"] as? String, "streaming read")
    }

    func testAReportWithoutAShowPrintsNothingButKeepsItsMeasurements() {
        let report = BenchReport(show: nil, progress: { _ in })
        report.add(Measurement(name: "decode", value: 3, unit: "tokens/s"))
        XCTAssertEqual(report.measurements, [Measurement(name: "decode", value: 3, unit: "tokens/s")])
    }
}
