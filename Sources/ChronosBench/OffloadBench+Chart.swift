import ChronosFormats
import Foundation

/// The picture of a sweep.
extension OffloadBench {
    /// Tokens/s and stall per token against the expert budget, side by side, one line per
    /// lossless baseline: `resident`, `mmap`, and `lru` and `chronos` under the `wait` policy.
    /// Runs that could not run (a budget below one expert) are left out.
    public static func chart(_ budgets: [(budget: Double, runs: [Run])]) -> String {
        var names: [String] = []
        var speed: [String: [SVGChart.Point]] = [:], stall: [String: [SVGChart.Point]] = [:]
        for (budget, runs) in budgets {
            for run in runs where run.note == nil && (run.metrics.policy == nil || run.metrics.policy == .wait) {
                let name = run.label
                if !names.contains(name) { names.append(name) }
                speed[name, default: []].append(SVGChart.Point(budget * 100, run.metrics.tokensPerSecond))
                stall[name, default: []].append(SVGChart.Point(budget * 100, run.metrics.stallMsPerToken))
            }
        }
        let budget = SVGChart.Axis("expert budget", unit: "% of expert bytes")
        return SVGChart.document([
            SVGChart(
                title: "Decode speed", x: budget, y: SVGChart.Axis("decode speed", unit: "tokens/s"),
                series: names.map { SVGChart.Series($0, speed[$0] ?? []) }),
            SVGChart(
                title: "Stall waiting for experts", x: budget, y: SVGChart.Axis("stall", unit: "ms/token"),
                series: names.map { SVGChart.Series($0, stall[$0] ?? []) })
        ])
    }
}
