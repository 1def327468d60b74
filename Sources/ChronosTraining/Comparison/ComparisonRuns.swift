import ChronosFormats
import ChronosModel
import Foundation

/// Why a comparison's run directory cannot be used.
public struct ComparisonRunsError: Error, CustomStringConvertible, Equatable {
    /// The run directory.
    public var directory: String
    /// What is wrong and what to do.
    public var reason: String

    /// One line naming the directory and the problem.
    public var description: String { "\(directory): \(reason)" }
}

/// The run directory of a comparison: `comparison.json` (the settings both models are trained
/// with), the tokenizer, and one pipeline run per model in `NAME/`. Every stage of a pipeline
/// snapshots as it goes and records its result when done, so opening the directory again with
/// the same settings continues the comparison where it stopped.
public struct ComparisonRuns: Sendable {
    /// The record of the settings.
    public static let recordName = "comparison.json"
    /// The models compared, in report order.
    public static let modelNames = ["conventional", "chronos"]

    /// The run directory.
    public let directory: URL
    /// Whether the directory held this comparison already.
    public let continuing: Bool

    /// Opens `directory` for a comparison trained under `settings`: creates it with their
    /// record, or continues it when its record holds the same settings. Refuses a record of
    /// other settings, naming the first that differs, and model runs without a record.
    public init(directory: URL, settings: [String: String]) throws {
        self.directory = directory
        let record = directory.appendingPathComponent(Self.recordName)
        func refuse(_ reason: String) -> ComparisonRunsError { ComparisonRunsError(directory: directory.path, reason: reason) }
        if FileManager.default.fileExists(atPath: record.path) {
            guard let earlier = try? JSONDecoder().decode([String: String].self, from: Data(contentsOf: record)) else {
                throw refuse("\(Self.recordName) is not a comparison's record; name another --runs directory")
            }
            if let key = Set(earlier.keys).union(settings.keys).sorted().first(where: { earlier[$0] != settings[$0] }) {
                throw refuse(
                    "holds a comparison with other settings (\(key): \(earlier[key] ?? "none") there, \(settings[key] ?? "none") now); "
                        + "repeat its options to continue it, or name another --runs directory")
            }
            continuing = true
            return
        }
        for name in Self.modelNames {
            let run = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: run.path) {
                throw refuse("\(run.path) holds an earlier run; name another --runs directory")
            }
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(settings), to: record)
        continuing = false
    }

    /// The pipeline of model `name`: pretraining as `pretrain` describes (its output ignored),
    /// then `alignment`, the fine-tuning stages of a configuration relocated here, each stage
    /// writing into `DIRECTORY/NAME/N-STAGE`.
    public func pipeline(_ name: String, pretrain: PretrainSettings, alignment: [PipelineStage]) -> PipelineConfiguration {
        PipelineConfiguration(
            output: run(name), model: pretrain.model, tokenizer: pretrain.tokenizer,
            stages: [PipelineStage(pretraining: pretrain)] + alignment, file: "the \(name) model's pipeline")
    }

    /// The pipeline run directory of model `name`.
    public func run(_ name: String) -> URL { directory.appendingPathComponent(name) }
}
