import ChronosFormats
import Foundation

/// A run's training curve drawn from its `metrics.jsonl`, as `loss.svg` beside it: the step's
/// total loss, its cross-entropy where the stage logs one, and the held-out cross-entropy at
/// each evaluation, against the step.
enum LossCurve {
    /// The chart's name in the run directory.
    static let fileName = "loss.svg"

    /// The lines drawn: the log's key and the legend's name.
    static let series = [
        (key: "loss", name: "training loss"), (key: "ce", name: "training cross-entropy"),
        (key: "heldout_ce", name: "held-out cross-entropy"), (key: "eval_heldout_ce", name: "held-out cross-entropy")
    ]

    /// The chart of the log at `metrics`, titled after `stage`. A line that is not a JSON
    /// object (the torn last line of a killed run) is passed over, and a step logged twice (a
    /// resumed run repeats the steps after its snapshot) keeps its last value.
    static func chart(metrics: URL, stage: TrainingStage) throws -> String {
        var values: [String: [Int: Double]] = [:]
        for line in try String(decoding: Data(contentsOf: metrics), as: UTF8.self).split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = (object["step"] as? NSNumber)?.intValue
            else { continue }
            for (key, _) in series { if let value = (object[key] as? NSNumber)?.doubleValue { values[key, default: [:]][step] = value } }
        }
        let lines = series.compactMap { key, name in
            values[key].map { byStep in SVGChart.Series(name, byStep.sorted { $0.key < $1.key }.map { SVGChart.Point(Double($0), $1) }) }
        }
        return SVGChart(
            title: "Training loss: \(stage.rawValue)", x: SVGChart.Axis("step", unit: ""),
            y: SVGChart.Axis("loss", unit: "nats", fromZero: false), series: lines, width: 640
        ).svg
    }

    /// Writes the chart of `runDirectory/metrics.jsonl` to `runDirectory/loss.svg`, atomically.
    static func write(runDirectory: URL, stage: TrainingStage) throws {
        let svg = try chart(metrics: runDirectory.appendingPathComponent("metrics.jsonl"), stage: stage)
        try AtomicFile.write(Data(svg.utf8), to: runDirectory.appendingPathComponent(fileName))
    }
}
