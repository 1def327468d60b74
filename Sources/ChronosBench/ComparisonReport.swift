import ChronosFormats
import Foundation

/// What `chronos compare` measured of a conventional MoE and a Chronos model trained alike:
/// sizes, held-out cross-entropy per stage, the training curves, decode speed and peak memory
/// of a child process, and offloaded decoding under `lru` and `chronos` at each expert budget.
/// Written as a directory of `report.md`, `report.json`, `loss.svg` and `offload.svg`.
public struct ComparisonReport: Codable, Sendable, Equatable {
    /// One trained stage: held-out cross-entropy on the pretraining held-out text, and the
    /// stage's own evaluation.
    public struct Stage: Codable, Sendable, Equatable {
        /// The stage's name (`pretrain`).
        public var name: String
        /// Optimiser steps run.
        public var steps: Int
        /// Held-out cross-entropy at the end, nats per token.
        public var heldOutCrossEntropy: Double
        /// Wall time of the stage's training.
        public var seconds: Double
        /// The stage's own evaluation at its end (`definition_f1`, `preference_accuracy`, …), by name.
        public var metrics: [String: Double]

        /// A stage result with every field given.
        public init(name: String, steps: Int, heldOutCrossEntropy: Double, seconds: Double, metrics: [String: Double] = [:]) {
            self.name = name
            self.steps = steps
            self.heldOutCrossEntropy = heldOutCrossEntropy
            self.seconds = seconds
            self.metrics = metrics
        }
    }

    /// One step of a training curve; a value not logged at that step is nil.
    public struct CurvePoint: Codable, Sendable, Equatable {
        /// The optimiser step.
        public var step: Int
        /// The step's training cross-entropy.
        public var trainingCrossEntropy: Double?
        /// The held-out cross-entropy evaluated after the step.
        public var heldOutCrossEntropy: Double?

        /// A point with every field given.
        public init(step: Int, trainingCrossEntropy: Double?, heldOutCrossEntropy: Double?) {
            self.step = step
            self.trainingCrossEntropy = trainingCrossEntropy
            self.heldOutCrossEntropy = heldOutCrossEntropy
        }
    }

    /// Decoding in a child process with every expert in memory.
    public struct Decode: Codable, Sendable, Equatable {
        /// Child processes run, one per prompt.
        public var prompts: Int
        /// Tokens generated per prompt.
        public var tokens: Int
        /// Mean decode tokens/s the children reported.
        public var tokensPerSecond: Double
        /// The largest peak resident memory of the children, in bytes, as the kernel accounted it.
        public var peakResidentBytes: Int
        /// Each child's decode tokens/s, in prompt order.
        public var tokensPerSecondByPrompt: [Double]

        /// A decode measurement with every field given.
        public init(prompts: Int, tokens: Int, tokensPerSecond: Double, peakResidentBytes: Int, tokensPerSecondByPrompt: [Double] = []) {
            self.prompts = prompts
            self.tokens = tokens
            self.tokensPerSecond = tokensPerSecond
            self.peakResidentBytes = peakResidentBytes
            self.tokensPerSecondByPrompt = tokensPerSecondByPrompt
        }
    }

    /// Offloaded decoding of one runtime at one expert budget.
    public struct OffloadPoint: Codable, Sendable, Equatable {
        /// The budget, a fraction of all expert bytes.
        public var budget: Double
        /// The runtime: `lru` or `chronos`.
        public var mode: String
        /// Share of expert uses found in memory during decode.
        public var hitRate: Double
        /// Time spent waiting for experts, per decoded token.
        public var stallMsPerToken: Double
        /// Decode tokens/s.
        public var tokensPerSecond: Double

        /// A point with every field given.
        public init(budget: Double, mode: String, hitRate: Double, stallMsPerToken: Double, tokensPerSecond: Double) {
            self.budget = budget
            self.mode = mode
            self.hitRate = hitRate
            self.stallMsPerToken = stallMsPerToken
            self.tokensPerSecond = tokensPerSecond
        }
    }

    /// One of the two models compared.
    public struct Model: Codable, Sendable, Equatable {
        /// `conventional` or `chronos`.
        public var name: String
        /// How it was trained, in words.
        public var recipe: String
        /// Every parameter.
        public var parameters: Int
        /// Parameters one token uses.
        public var activeParameters: Int
        /// Routed experts per layer.
        public var experts: Int
        /// Experts per token.
        public var topK: Int
        /// Width of a routed expert.
        public var expertWidth: Int
        /// Shared experts per layer.
        public var sharedExperts: Int
        /// Width of a shared expert.
        public var sharedWidth: Int
        /// Steps the lookahead head predicts (0: none).
        public var lookahead: Int
        /// λ of each Chronos term: `balance`, `temporal`, `lookahead`, `anchor`.
        public var lambdas: [String: Double]
        /// The trained stages in order.
        public var stages: [Stage]
        /// The pretraining curve.
        public var curve: [CurvePoint]
        /// Decoding with every expert in memory.
        public var decode: Decode?
        /// Offloaded decoding by budget and runtime.
        public var offload: [OffloadPoint]

        /// A model's results with every field given.
        public init(
            name: String, recipe: String, parameters: Int, activeParameters: Int, experts: Int, topK: Int, expertWidth: Int,
            sharedExperts: Int, sharedWidth: Int, lookahead: Int, lambdas: [String: Double], stages: [Stage] = [],
            curve: [CurvePoint] = [], decode: Decode? = nil, offload: [OffloadPoint] = []
        ) {
            self.name = name
            self.recipe = recipe
            self.parameters = parameters
            self.activeParameters = activeParameters
            self.experts = experts
            self.topK = topK
            self.expertWidth = expertWidth
            self.sharedExperts = sharedExperts
            self.sharedWidth = sharedWidth
            self.lookahead = lookahead
            self.lambdas = lambdas
            self.stages = stages
            self.curve = curve
            self.decode = decode
            self.offload = offload
        }
    }

    /// When the comparison ran (ISO 8601, UTC).
    public var date: String
    /// The processor it ran on.
    public var machine: String
    /// The command line that produced the report.
    public var command: String
    /// Training data.
    public var data: String
    /// Held-out data the cross-entropy is measured on.
    public var heldOut: String
    /// Prompts of the decode and offload measurements.
    public var prompts: String
    /// Optimiser steps of each model's pretraining.
    public var steps: Int
    /// The pipeline configuration whose fine-tuning stages both models ran after pretraining, if any.
    public var alignment: String?
    /// Seed of data order and initialisation, the same for both models.
    public var seed: UInt64
    /// What was resized to match the parameter counts: `width` or `experts`.
    public var matching: String
    /// The largest relative difference of the two parameter counts allowed.
    public var parameterTolerance: Double
    /// The simulated disk of the offload measurements.
    public var disk: String
    /// The two models: the conventional one first.
    public var models: [Model]

    /// A report with every field given.
    public init(
        date: String, machine: String, command: String, data: String, heldOut: String, prompts: String, steps: Int,
        alignment: String? = nil, seed: UInt64, matching: String, parameterTolerance: Double, disk: String, models: [Model]
    ) {
        self.date = date
        self.machine = machine
        self.command = command
        self.data = data
        self.heldOut = heldOut
        self.prompts = prompts
        self.steps = steps
        self.alignment = alignment
        self.seed = seed
        self.matching = matching
        self.parameterTolerance = parameterTolerance
        self.disk = disk
        self.models = models
    }

    /// The files a report directory holds.
    public static let fileNames = ["report.md", "report.json", "loss.svg", "offload.svg"]

    /// The relative difference of the second model's parameter count from the first's.
    public var parameterDifference: Double {
        guard models.count == 2, models[0].parameters > 0 else { return 0 }
        return Double(models[0].parameters - models[1].parameters) / Double(models[1].parameters)
    }
}

/// Why a report directory was not written.
public enum ComparisonReportError: Error, CustomStringConvertible, Equatable {
    /// Something is already at the report's path.
    case exists(String)

    /// The reason, in words.
    public var description: String {
        switch self {
        case .exists(let path): "\(path) already exists: a comparison never replaces an earlier report; name a new directory"
        }
    }
}

extension ComparisonReport {
    /// The report as pretty-printed JSON with snake_case keys, sorted.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// A report read back from `json()`'s output.
    public static func decode(_ data: Data) throws -> ComparisonReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(ComparisonReport.self, from: data)
    }

    /// Throws unless nothing is at `directory` yet.
    public static func checkAbsent(_ directory: URL) throws {
        if FileManager.default.fileExists(atPath: directory.path) { throw ComparisonReportError.exists(directory.path) }
    }

    /// Writes the report's files into a new directory beside `directory` and renames it to
    /// `directory`, so a reader sees all of the report or none; refuses when something is
    /// already there.
    public func write(to directory: URL) throws {
        try Self.checkAbsent(directory)
        let parent = directory.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).\(UUID().uuidString).tmp", isDirectory: true)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false)
        do {
            let files = [
                ("report.md", Data(markdown().utf8)), ("report.json", try json()), ("loss.svg", Data(lossChart().utf8)),
                ("offload.svg", Data(offloadChart().utf8))
            ]
            for (name, data) in files { try AtomicFile.write(data, to: staging.appendingPathComponent(name)) }
            try Self.checkAbsent(directory)
            if rename(staging.path, directory.path) != 0 {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }
}

extension ComparisonReport.CurvePoint {
    /// The training curve in a run's `metrics.jsonl`: the cross-entropy (`ce`) of every step
    /// and the held-out cross-entropy (`heldout_ce`) of every evaluation, by step. Lines that
    /// are not JSON objects with a step are passed over.
    public static func read(metrics: URL) throws -> [ComparisonReport.CurvePoint] {
        var points: [Int: ComparisonReport.CurvePoint] = [:]
        for line in try String(decoding: Data(contentsOf: metrics), as: UTF8.self).split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = (object["step"] as? NSNumber)?.intValue
            else { continue }
            var point = points[step] ?? ComparisonReport.CurvePoint(step: step, trainingCrossEntropy: nil, heldOutCrossEntropy: nil)
            if let ce = (object["ce"] as? NSNumber)?.doubleValue { point.trainingCrossEntropy = ce }
            if let heldOut = (object["heldout_ce"] as? NSNumber)?.doubleValue { point.heldOutCrossEntropy = heldOut }
            points[step] = point
        }
        return points.values.sorted { $0.step < $1.step }
    }
}
