import ChronosFormats
import Foundation

/// The report's page and pictures.
extension ComparisonReport {
    /// `report.md`: the setup, one table of sizes, quality, decode speed and memory, and one
    /// table of offloaded decoding by budget.
    public func markdown() -> String {
        var lines = ["# Conventional MoE against Chronos", ""]
        lines.append("Both models pretrained on `\(data)` for \(steps) steps with seed \(seed); held-out cross-entropy on `\(heldOut)`;")
        if let alignment {
            let names = (models.first?.stages.dropFirst().map(\.name) ?? []).joined(separator: ", ")
            lines.append(
                "then fine-tuned through the stages of `\(alignment)` (\(names)), the conventional model without the Chronos terms;")
        }
        lines.append("decode and offload measured on the prompts of `\(prompts)`. \(date), \(machine).")
        lines.append("")
        for model in models { lines.append("- **\(model.name)**: \(model.recipe)") }
        lines.append(
            String(
                format: "- parameters matched by expert %@: %@ against %@ (%+.2f %%, tolerance %.2f %%)", matching,
                models.first.map { String($0.parameters) } ?? "-", models.last.map { String($0.parameters) } ?? "-",
                parameterDifference * 100, parameterTolerance * 100))
        lines.append("")
        lines.append("| measure | " + models.map(\.name).joined(separator: " | ") + " |")
        lines.append("| --- |" + String(repeating: " ---: |", count: models.count))
        func row(_ name: String, _ value: (Model) -> String) {
            lines.append("| \(name) | " + models.map(value).joined(separator: " | ") + " |")
        }
        row("total parameters") { String($0.parameters) }
        row("active parameters per token") { String($0.activeParameters) }
        row("routed experts × width, top-k") { "\($0.experts) × \($0.expertWidth), \($0.topK)" }
        row("shared experts × width") { $0.sharedExperts > 0 ? "\($0.sharedExperts) × \($0.sharedWidth)" : "none" }
        let stageNames = models.first?.stages.map(\.name) ?? []
        for (index, stage) in stageNames.enumerated() {
            row("held-out cross-entropy after \(stage) (nats/token)") { model in
                index < model.stages.count ? String(format: "%.4f", model.stages[index].heldOutCrossEntropy) : "-"
            }
            row("\(stage) training time (s)") { index < $0.stages.count ? String(format: "%.0f", $0.stages[index].seconds) : "-" }
        }
        row("decode tokens/s, all experts in memory: mean (slowest–fastest prompt)") { model in
            model.decode.map { decode in
                let speeds = decode.tokensPerSecondByPrompt
                let spread = speeds.isEmpty ? "" : String(format: " (%.0f–%.0f)", speeds.min()!, speeds.max()!)
                return String(format: "%.1f", decode.tokensPerSecond) + spread
            } ?? "-"
        }
        row("peak resident memory of the decode process (MiB)") {
            $0.decode.map { String(format: "%.1f", Double($0.peakResidentBytes) / 1_048_576) } ?? "-"
        }
        let stageMetrics = stageNames.indices.dropFirst().flatMap { index in
            Set(models.flatMap { index < $0.stages.count ? Array($0.stages[index].metrics.keys) : [] }).sorted().map { (index, $0) }
        }
        if !stageMetrics.isEmpty {
            lines.append("")
            lines.append("Each fine-tuning stage's own evaluation at its end:")
            lines.append("")
            lines.append("| stage | metric | " + models.map(\.name).joined(separator: " | ") + " |")
            lines.append("| --- | --- |" + String(repeating: " ---: |", count: models.count))
            for (index, metric) in stageMetrics {
                let values = models.map { model in
                    (index < model.stages.count ? model.stages[index].metrics[metric] : nil).map { String(format: "%.4f", $0) } ?? "-"
                }
                lines.append("| \(stageNames[index]) | \(metric) | " + values.joined(separator: " | ") + " |")
            }
        }
        lines.append("")
        lines.append("Offloaded decoding (\(disk); `lru` and `chronos` wait for a missed expert):")
        lines.append("")
        lines.append("| budget | model | runtime | hit rate | stall (ms/token) | tokens/s | × the same model's lru |")
        lines.append("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
        let budgets = Array(Set(models.flatMap { $0.offload.map(\.budget) })).sorted()
        for budget in budgets {
            for model in models {
                let points = model.offload.filter { $0.budget == budget }
                let lru = points.first { $0.mode == "lru" }
                for point in points {
                    let ratio =
                        lru.map { $0.tokensPerSecond > 0 ? String(format: "%.2f", point.tokensPerSecond / $0.tokensPerSecond) : "-" } ?? "-"
                    lines.append(
                        String(
                            format: "| %.0f %% | %@ | %@ | %.1f %% | %.2f | %.1f | %@ |", budget * 100, model.name, point.mode,
                            point.hitRate * 100, point.stallMsPerToken, point.tokensPerSecond, ratio))
                }
            }
        }
        lines.append("")
        lines.append("![Training and held-out cross-entropy of both models](loss.svg)")
        lines.append("")
        lines.append("![Decode speed and stall against the expert budget](offload.svg)")
        lines.append("")
        lines.append("Command: `\(command)`")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Training cross-entropy (every step) and held-out cross-entropy (at each evaluation) of
    /// both models against the step.
    public func lossChart() -> String {
        var series: [SVGChart.Series] = []
        for model in models {
            series.append(
                SVGChart.Series(
                    "\(model.name): training",
                    model.curve.compactMap { p in p.trainingCrossEntropy.map { SVGChart.Point(Double(p.step), $0) } }))
        }
        for model in models {
            series.append(
                SVGChart.Series(
                    "\(model.name): held-out",
                    model.curve.compactMap { p in p.heldOutCrossEntropy.map { SVGChart.Point(Double(p.step), $0) } }))
        }
        return SVGChart(
            title: "Cross-entropy during pretraining", x: SVGChart.Axis("step", unit: ""),
            y: SVGChart.Axis("cross-entropy", unit: "nats/token", fromZero: false), series: series, width: 720
        ).svg
    }

    /// Decode tokens/s and stall per token against the expert budget, side by side, one line
    /// per model and runtime.
    public func offloadChart() -> String {
        var speed: [SVGChart.Series] = [], stall: [SVGChart.Series] = []
        for model in models {
            let modes = model.offload.map(\.mode).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            for mode in modes {
                let points = model.offload.filter { $0.mode == mode }.sorted { $0.budget < $1.budget }
                speed.append(SVGChart.Series("\(model.name), \(mode)", points.map { SVGChart.Point($0.budget * 100, $0.tokensPerSecond) }))
                stall.append(SVGChart.Series("\(model.name), \(mode)", points.map { SVGChart.Point($0.budget * 100, $0.stallMsPerToken) }))
            }
        }
        let budget = SVGChart.Axis("expert budget", unit: "% of expert bytes")
        return SVGChart.document([
            SVGChart(title: "Decode speed", x: budget, y: SVGChart.Axis("decode speed", unit: "tokens/s"), series: speed),
            SVGChart(title: "Stall waiting for experts", x: budget, y: SVGChart.Axis("stall", unit: "ms/token"), series: stall)
        ])
    }
}
