import ChronosEngine
import ChronosStorage
import Foundation

/// The offload benchmark's outputs: a table for people, a JSON object per run, a CSV row per run
/// of a sweep.
extension OffloadBench {
    /// The printed table, one row per run, with ratios to `resident`.
    public static func table(_ runs: [Run]) -> String {
        let header = [
            "baseline", "policy", "budget", "tok/s", "×res", "bound", "TTFT ms", "stall ms/tok", "hit %", "oracle", "next L",
            "repeat", "recall@1", "shuf", "freq", "prev", "prompt", "chance", "read/tok", "reads/tok", "B/read", "wasted", "peak", "fallbk",
            "faults", "agree %",
            "CE"
        ]
        let reference = runs.first { $0.metrics.mode == .resident }?.metrics.tokensPerSecond ?? 0
        var rows = [header]
        for run in runs {
            let m = run.metrics
            if let note = run.note {
                rows.append([m.name, m.policy?.rawValue ?? "-", "-", note] + Array(repeating: "", count: header.count - 4))
                continue
            }
            func percent(_ x: Double?) -> String { x.map { String(format: "%.1f", $0 * 100) } ?? "-" }
            let p = m.predictions
            rows.append([
                m.name, m.policy?.rawValue ?? "-",
                String(format: "%.0f%%", Double(m.budgetBytes) / Double(max(1, m.totalExpertBytes)) * 100),
                String(format: "%.2f", m.tokensPerSecond), reference > 0 ? String(format: "%.2f", m.tokensPerSecond / reference) : "-",
                run.boundTokensPerSecond.map { String(format: "%.2f", $0) } ?? "-",
                String(format: "%.1f", m.timeToFirstTokenMs), String(format: "%.2f", m.stallMsPerToken), percent(m.hitRate),
                percent(run.oracleHitRate), percent(p.nextLayer.recall), percent(p.repetition.recall), percent(p.lookahead.first?.recall),
                percent(p.lookaheadShuffled.first?.recall),
                percent(p.lookaheadFrequency.first?.recall), percent(p.lookaheadPrevious.first?.recall),
                percent(p.prompt.recall), percent(p.promptChance.recall),
                OffloadRunMetrics.bytes(m.bytesReadPerToken), String(format: "%.2f", m.readsPerToken),
                OffloadRunMetrics.bytes(m.bytesPerRead), OffloadRunMetrics.bytes(Double(m.decode.wastedPrefetchBytes)),
                OffloadRunMetrics.bytes(Double(m.peakExpertBytes)), "\(m.fallbacks)", "\(m.faults)", percent(run.agreement),
                run.crossEntropy.map { String(format: "%.3f", $0) } ?? "-"
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// The JSON object of one run; a figure that was not measured is `null`, and a run that
    /// could not run carries its `note`.
    public static func json(_ run: Run, budget: ExpertBudget) -> [String: Any] {
        let m = run.metrics, p = m.predictions
        var object: [String: Any] = [
            "name": m.name, "policy": m.policy?.rawValue ?? NSNull(), "budget": budget.description, "budget_bytes": m.budgetBytes,
            "expert_bytes": m.totalExpertBytes, "tokens_per_s": m.tokensPerSecond, "ttft_ms": m.timeToFirstTokenMs,
            "stall_ms_per_token": m.stallMsPerToken, "hit_rate": m.hitRate, "oracle_hit_rate": run.oracleHitRate ?? NSNull(),
            "bytes_read_per_token": m.bytesReadPerToken, "reads_per_token": m.readsPerToken, "bytes_per_read": m.bytesPerRead,
            "missed_bytes_per_token": m.missedBytesPerToken, "wasted_prefetch_bytes": m.decode.wastedPrefetchBytes,
            "prefetched_bytes": m.decode.prefetchedBytes, "peak_expert_bytes": m.peakExpertBytes, "fallbacks": m.fallbacks,
            "faults": m.faults, "prompts": m.prompts, "decode_steps": m.decodeSteps,
            "next_layer_recall": p.nextLayer.recall ?? NSNull(),
            "repetition_recall": p.repetition.recall ?? NSNull(), "repetition_precision": p.repetition.precision ?? NSNull(),
            "recall_t1": p.lookahead.first?.recall ?? NSNull(), "precision_t1": p.lookahead.first?.precision ?? NSNull(),
            "recall_t1_shuffled": p.lookaheadShuffled.first?.recall ?? NSNull(),
            "recall_t1_frequency": p.lookaheadFrequency.first?.recall ?? NSNull(),
            "recall_t1_previous": p.lookaheadPrevious.first?.recall ?? NSNull(),
            "recall_by_offset": p.lookahead.map { $0.recall ?? -1 },
            "prompt_recall": p.prompt.recall ?? NSNull(), "prompt_precision": p.prompt.precision ?? NSNull(),
            "prompt_recall_chance": p.promptChance.recall ?? NSNull(),
            "bound_tokens_per_s": run.boundTokensPerSecond ?? NSNull(),
            "greedy_agreement": run.agreement ?? NSNull(), "cross_entropy": run.crossEntropy ?? NSNull()
        ]
        if let note = run.note { object["note"] = note }
        return object
    }

    /// `{"runs": [...], "context": {...}}` as pretty-printed JSON with sorted keys.
    public static func jsonDocument(runs: [[String: Any]], context: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: ["runs": runs, "context": context], options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The CSV columns of a sweep.
    public static let csvColumns = [
        "budget", "baseline", "policy", "tokens_per_s", "ttft_ms", "stall_ms_per_token", "hit_rate", "oracle_hit_rate", "recall_t1",
        "recall_t1_shuffled", "recall_t1_frequency", "bytes_read_per_token", "wasted_prefetch_bytes", "peak_expert_bytes", "fallbacks",
        "faults", "bound_tokens_per_s", "greedy_agreement", "cross_entropy", "note"
    ]

    /// The CSV header line of a sweep.
    public static var csvHeader: String { csvColumns.joined(separator: ",") }

    /// One CSV row of a sweep: the run at `budget` (a fraction of all expert bytes); a figure
    /// that was not measured is an empty field, and a run that could not run has only its
    /// budget, baseline, policy and note.
    public static func csvRow(_ run: Run, budget: Double) -> String {
        let m = run.metrics, p = m.predictions
        func number(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        if let note = run.note {
            return [String(budget), m.name, m.policy?.rawValue ?? "-"].joined(separator: ",")
                + String(repeating: ",", count: csvColumns.count - 3) + note
        }
        return [
            String(budget), m.name, m.policy?.rawValue ?? "-", number(m.tokensPerSecond), number(m.timeToFirstTokenMs),
            number(m.stallMsPerToken), number(m.hitRate), number(run.oracleHitRate), number(p.lookahead.first?.recall),
            number(p.lookaheadShuffled.first?.recall),
            number(p.lookaheadFrequency.first?.recall), number(m.bytesReadPerToken), "\(m.decode.wastedPrefetchBytes)",
            "\(m.peakExpertBytes)", "\(m.fallbacks)", "\(m.faults)", number(run.boundTokensPerSecond), number(run.agreement),
            number(run.crossEntropy), ""
        ].joined(separator: ",")
    }

    /// The CSV file of a sweep: the header, then one row per run of each budget in turn.
    public static func csv(_ budgets: [(budget: Double, runs: [Run])]) -> String {
        ([csvHeader] + budgets.flatMap { budget, runs in runs.map { csvRow($0, budget: budget) } }).joined(separator: "\n") + "\n"
    }
}
