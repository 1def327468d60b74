import ChronosFormats
import Foundation

/// An objective of a study: what is measured and which way is better.
public struct StudyObjective: Sendable, Equatable {
    /// The measurement's name.
    public var name: String
    /// Which way is better.
    public var direction: ObjectiveDirection

    /// Objective `name`, better in `direction`.
    public init(name: String, direction: ObjectiveDirection) {
        self.name = name
        self.direction = direction
    }
}

/// What makes two runs the same study: the space, the objectives, the sampler's mode and the
/// settings every trial shares.
public struct StudyHeader: Sendable, Equatable {
    /// The parameters searched.
    public var space: SearchSpace
    /// The objectives, in the order trial values list them.
    public var objectives: [StudyObjective]
    /// Whether the sampler models the parameters independently or jointly.
    public var sampler: TPESampler.Mode
    /// Settings every trial shares (the training budget, the data), as text.
    public var settings: [String: String]

    /// A header for a study of `space` on `objectives` drawn by a `sampler`-mode TPE under `settings`.
    public init(space: SearchSpace, objectives: [StudyObjective], sampler: TPESampler.Mode, settings: [String: String]) {
        self.space = space
        self.objectives = objectives
        self.sampler = sampler
        self.settings = settings
    }

    var jsonObject: [String: Any] {
        [
            "search_space": space.jsonObject, "settings": settings, "sampler": sampler.rawValue,
            "objectives": objectives.map { ["name": $0.name, "direction": $0.direction.rawValue] }
        ]
    }
}

/// A study log that cannot be used.
public struct StudyLogError: Error, CustomStringConvertible, Equatable {
    /// The log file.
    public var file: String
    /// What is wrong.
    public var reason: String

    /// One line naming the file and the problem.
    public var description: String { "\(file): \(reason)" }
}

/// A study's trials, one JSON object per line after a header line, appended as trials finish.
///
/// Each append is one write of a whole line followed by `fsync`; a line cut short by a kill is
/// not a trial and is cut off when the log is opened again, so a resumed study repeats only
/// the trial that was running.
public final class StudyLog {
    /// The log file.
    public let url: URL
    /// The header the log was opened with.
    public let header: StudyHeader
    /// The finished trials, in the order they finished.
    public private(set) var trials: [TrialRecord] = []

    /// The name of the log inside a study directory.
    public static let fileName = "trials.jsonl"

    /// Opens the log in `directory`, creating it with `header`, or reading its trials when its
    /// header is the same; a log of another study is refused. A header without a sampler mode,
    /// written before there was a choice, is an independent study's.
    public init(directory: URL, header: StudyHeader) throws {
        url = directory.appendingPathComponent(Self.fileName)
        self.header = header
        let headerLine = try JSONSerialization.data(withJSONObject: header.jsonObject, options: [.sortedKeys])
        guard FileManager.default.fileExists(atPath: url.path) else {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try AtomicFile.write(headerLine + Data("\n".utf8), to: url)
            return
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw StudyLogError(file: url.path, reason: "cannot read: \(FileSystemError.reason(error))")
        }
        // A last line without its newline is a write that a kill cut short.
        let complete = data.lastIndex(of: UInt8(ascii: "\n")).map { data[...$0] } ?? Data()
        let lines = complete.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        guard let first = lines.first, let savedHeader = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any] else {
            throw StudyLogError(file: url.path, reason: "line 1 is not a study header")
        }
        var saved = savedHeader
        saved["sampler"] = saved["sampler"] ?? TPESampler.Mode.independent.rawValue
        let expected = header.jsonObject
        func canonical(_ value: Any?) -> Data? {
            value.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed]) }
        }
        for key in ["search_space", "objectives", "sampler", "settings"] where canonical(saved[key]) != canonical(expected[key]) {
            throw StudyLogError(
                file: url.path,
                reason:
                    "this log belongs to a study with other \(key.replacingOccurrences(of: "_", with: " ")); use another study directory")
        }
        for (index, line) in lines.enumerated().dropFirst() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let trial = Self.trial(object)
            else {
                throw StudyLogError(file: url.path, reason: "line \(index + 1) is not a trial record")
            }
            trials.append(trial)
        }
        if complete.count < data.count {
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try handle.truncate(atOffset: UInt64(complete.count))
            try handle.synchronize()
        }
    }

    /// Appends `trial` as one line and flushes it to disk.
    public func append(_ trial: TrialRecord) throws {
        let line = try JSONSerialization.data(withJSONObject: Self.object(trial), options: [.sortedKeys]) + Data("\n".utf8)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
        try handle.synchronize()
        trials.append(trial)
    }

    static func object(_ trial: TrialRecord) -> [String: Any] {
        [
            "number": trial.number, "state": trial.state.rawValue, "values": trial.values,
            "parameters": trial.parameters.mapValues(\.jsonValue),
            "intermediate": Dictionary(uniqueKeysWithValues: trial.intermediate.map { (String($0.key), $0.value) })
        ]
    }

    static func trial(_ object: [String: Any]) -> TrialRecord? {
        guard let number = object["number"] as? Int, let state = (object["state"] as? String).flatMap(TrialState.init(rawValue:)),
            let values = (object["values"] as? [NSNumber])?.map(\.exactDouble), let parameters = object["parameters"] as? [String: Any],
            let intermediate = (object["intermediate"] as? [String: NSNumber])?.mapValues(\.exactDouble)
        else { return nil }
        var decoded: [String: ParameterValue] = [:]
        for (name, value) in parameters {
            guard let value = ParameterValue(json: value) else { return nil }
            decoded[name] = value
        }
        var steps: [Int: Double] = [:]
        for (step, value) in intermediate {
            guard let step = Int(step) else { return nil }
            steps[step] = value
        }
        return TrialRecord(number: number, parameters: decoded, state: state, values: values, intermediate: steps)
    }
}
