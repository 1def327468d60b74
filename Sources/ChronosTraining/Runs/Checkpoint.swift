import ChronosFormats
import ChronosTensor
import Foundation

/// Everything besides the weights that a resumed run needs to continue exactly where it
/// stopped: the step, the data cursor, the random state and the settings.
public struct TrainingState: Codable, Sendable, Equatable {
    /// Optimiser steps completed.
    public var step: Int
    /// Batches of the data stream consumed so far (the data cursor).
    public var batchesSeen: Int
    /// State of the trainer's random generator (fallback masking, sampling).
    public var randomState: UInt64
    /// Training tokens processed so far.
    public var tokensSeen: Int
    /// Free-form settings of the run, compared on resume so a changed command line is noticed.
    public var settings: [String: String]

    /// A state with the given values.
    public init(step: Int, batchesSeen: Int, randomState: UInt64, tokensSeen: Int, settings: [String: String]) {
        self.step = step
        self.batchesSeen = batchesSeen
        self.randomState = randomState
        self.tokensSeen = tokensSeen
        self.settings = settings
    }
}

/// Errors from reading a checkpoint or starting a run.
public enum CheckpointError: Error, CustomStringConvertible {
    /// The checkpoint directory lacks a file it must have.
    case missingFile(URL)
    /// A file exists but does not hold what a checkpoint must.
    case malformed(URL, reason: String)
    /// A new run was asked for in a directory that holds an earlier one.
    case earlierRun(URL)
    /// A resume was asked for, but the directory has no snapshot that can be read.
    case noSnapshot(URL, reason: String)
    /// The run directory cannot be made (a file in the way, no permission, a read-only place).
    case cannotCreate(URL, reason: String)

    /// A message naming the file and what to do.
    public var description: String {
        switch self {
        case .missingFile(let url): "checkpoint file \(url.path) is missing"
        case .malformed(let url, let reason): "checkpoint file \(url.path) is malformed: \(reason)"
        case .earlierRun(let url):
            "\(url.path) holds an earlier run; continue it with --resume, or replace it with --overwrite (its snapshots are deleted)"
        case .noSnapshot(let url, let reason):
            "\(url.path) has no snapshot to resume from (\(reason)); start the run without --resume"
        case .cannotCreate(let url, let reason):
            "cannot make the run directory \(url.path): \(reason); choose another --out"
        }
    }
}

/// How a run treats what its directory already holds.
public enum RunStart: Sendable, Equatable {
    /// A new run; a directory holding an earlier run is refused, so nothing is lost by mistake.
    case new
    /// A new run that first deletes the earlier run in its directory (snapshots, model, logs).
    case overwrite
    /// Continue from the newest valid snapshot; a directory without one is an error.
    case resume
    /// Continue from the newest valid snapshot when there is one, else start anew (the
    /// pipeline's stages, which a rerun continues).
    case resumeIfAny
}

/// Saving and restoring training runs so that a crash mid-save loses nothing.
///
/// A run directory holds the latest model in the Hugging Face layout (`config.json`,
/// `model.safetensors`, tokenizer files), ready for `chronos generate`, and a `checkpoints/`
/// folder of complete snapshots `step-NNNNNNN/` (model files plus `training_state.safetensors`
/// holding the optimiser moments and, in its metadata, the `TrainingState`). A snapshot is
/// written into a temporary folder and renamed into place only when complete; `latest` (a file
/// replaced atomically) names the newest. The two most recent snapshots are kept.
public enum Checkpoint {
    /// Name of the optimiser-state file inside a snapshot.
    public static let stateFileName = "training_state.safetensors"
    /// Snapshots kept in `checkpoints/`.
    public static let retained = 2

    /// Writes a snapshot of step `state.step` into `runDirectory`: `writeModel` fills a
    /// directory with the model files; the optimiser moments and `state` go beside them.
    /// `frozen` holds tensors that must survive a resume unchanged (the stage-start router
    /// copy of the anchor term).
    public static func save(
        runDirectory: URL, state: TrainingState, optimizer: AdamW, frozen: [String: Tensor] = [:],
        writeModel: (URL) throws -> Void
    ) throws {
        let checkpoints = runDirectory.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
        let name = String(format: "step-%07d", state.step)
        let temporary = checkpoints.appendingPathComponent(".\(name).\(UUID().uuidString).tmp")
        do {
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
            try writeModel(temporary)
            try writeState(state, optimizer: optimizer, frozen: frozen, to: temporary.appendingPathComponent(stateFileName))
            let final = checkpoints.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
            try FileManager.default.moveItem(at: temporary, to: final)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        try AtomicFile.write(Data(name.utf8), to: checkpoints.appendingPathComponent("latest"))
        try publish(checkpoints.appendingPathComponent(name), in: runDirectory)
        try prune(checkpoints)
    }

    /// Copies the model files of `snapshot` (all but the optimiser state) to the top of
    /// `runDirectory`, each replaced atomically. A save killed during the copy leaves a mix of
    /// two steps there, so a resume publishes its snapshot again before training on.
    static func publish(_ snapshot: URL, in runDirectory: URL) throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: snapshot.path) where file != stateFileName {
            try AtomicFile.write(Data(contentsOf: snapshot.appendingPathComponent(file)), to: runDirectory.appendingPathComponent(file))
        }
    }

    /// The newest snapshot of `runDirectory` that can be read, or nil when it has none: the one
    /// `latest` names, else — when `latest` is missing, names something other than a snapshot
    /// of this run, or names one that is damaged — the newest other valid one. Only real
    /// directories inside `checkpoints/` count, never links out of it.
    public static func latest(in runDirectory: URL) throws -> URL? {
        let checkpoints = runDirectory.appendingPathComponent("checkpoints")
        var names = snapshotNames(in: checkpoints).sorted(by: >)
        if let named = pointedName(in: checkpoints), let index = names.firstIndex(of: named) {
            names.insert(names.remove(at: index), at: 0)
        }
        return names.lazy.map { checkpoints.appendingPathComponent($0) }.first(where: isValid)
    }

    /// Checks that `runDirectory` may start as `start` asks without losing work, and returns the
    /// snapshot to continue from (nil: start at step 0), its model published again at the top of
    /// the run. Removes the temporary files of writes that a killed run left behind and, for
    /// `.overwrite`, the earlier run.
    public static func prepare(runDirectory: URL, start: RunStart) throws -> URL? {
        let checkpoints = runDirectory.appendingPathComponent("checkpoints")
        do {
            try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.cannotCreate(runDirectory, reason: FileSystemError.reason(error))
        }
        AtomicFile.removeTemporaries(in: runDirectory)
        AtomicFile.removeTemporaries(in: checkpoints)
        switch start {
        case .new:
            if holdsRun(runDirectory) { throw CheckpointError.earlierRun(runDirectory) }
            return nil
        case .overwrite:
            for name in [
                "checkpoints", ModelDirectory.Name.config, ModelDirectory.Name.checkpoint, "metrics.jsonl", LossCurve.fileName,
                StageResult.fileName
            ] {
                let url = runDirectory.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            }
            return nil
        case .resume, .resumeIfAny:
            if let snapshot = try latest(in: runDirectory) {
                try publish(snapshot, in: runDirectory)
                return snapshot
            }
            let found = snapshotNames(in: checkpoints)
            if start == .resumeIfAny, found.isEmpty { return nil }
            throw CheckpointError.noSnapshot(
                runDirectory,
                reason: found.isEmpty
                    ? "checkpoints/ holds none" : "none of \(found.sorted().joined(separator: ", ")) can be read")
        }
    }

    /// Whether `runDirectory` holds an earlier run: snapshots, a model or a metrics log.
    static func holdsRun(_ runDirectory: URL) -> Bool {
        !snapshotNames(in: runDirectory.appendingPathComponent("checkpoints")).isEmpty
            || [ModelDirectory.Name.config, "metrics.jsonl"].contains {
                FileManager.default.fileExists(atPath: runDirectory.appendingPathComponent($0).path)
            }
    }

    /// Names of the snapshot folders in `checkpoints` (`step-` and seven digits).
    private static func snapshotNames(in checkpoints: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).filter(isSnapshotName)
    }

    private static func isSnapshotName(_ name: String) -> Bool {
        name.count == 12 && name.hasPrefix("step-") && name.dropFirst(5).allSatisfy(\.isASCII) && name.dropFirst(5).allSatisfy(\.isNumber)
    }

    /// The snapshot name in `checkpoints/latest` when that is a regular file holding one.
    private static func pointedName(in checkpoints: URL) -> String? {
        let pointer = checkpoints.appendingPathComponent("latest")
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: pointer.path),
            attributes[.type] as? FileAttributeType == .typeRegular,
            let data = try? Data(contentsOf: pointer), data.count < 64
        else { return nil }
        let name = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return isSnapshotName(name) ? name : nil
    }

    /// Whether `snapshot` is a real directory whose model and training state open.
    private static func isValid(_ snapshot: URL) -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: snapshot.path),
            attributes[.type] as? FileAttributeType == .typeDirectory,
            let state = try? SafetensorsFile(url: snapshot.appendingPathComponent(stateFileName)),
            state.metadata["training_state"] != nil,
            (try? SafetensorsCheckpoint(directory: snapshot)) != nil
        else { return false }
        return true
    }

    /// Reads the training state and optimiser moments of a snapshot into `optimizer`; returns
    /// the state and the frozen tensors saved with it.
    public static func restore(snapshot: URL, into optimizer: AdamW) throws -> (state: TrainingState, frozen: [String: Tensor]) {
        let url = snapshot.appendingPathComponent(stateFileName)
        guard FileManager.default.fileExists(atPath: url.path) else { throw CheckpointError.missingFile(url) }
        let file = try SafetensorsFile(url: url)
        guard let json = file.metadata["training_state"], let data = json.data(using: .utf8) else {
            throw CheckpointError.malformed(url, reason: "no training_state in the metadata")
        }
        let state: TrainingState
        do { state = try JSONDecoder().decode(TrainingState.self, from: data) } catch {
            throw CheckpointError.malformed(url, reason: "training_state is not valid: \(error)")
        }
        guard let stepText = file.metadata["optimizer_step"], let step = Int(stepText) else {
            throw CheckpointError.malformed(url, reason: "no optimizer_step in the metadata")
        }
        var moments: [String: (m: Tensor, v: Tensor)] = [:]
        var frozen: [String: Tensor] = [:]
        for name in file.tensorNames where name.hasPrefix("frozen.") {
            let tensor = try file.tensor(named: name)
            guard tensor.dtype.isFloatingPoint else {
                throw CheckpointError.malformed(url, reason: "\(name) is \(tensor.dtype), not f32, f16 or bf16")
            }
            frozen[String(name.dropFirst(7))] = tensor.copy()
        }
        // Each pair of moments updates the model tensor of its name element by element, so it
        // must be f32 and of that tensor's shape.
        let model = try SafetensorsCheckpoint(directory: snapshot)
        for name in file.tensorNames where name.hasPrefix("m.") {
            let parameter = String(name.dropFirst(2))
            guard file.contains("v." + parameter) else { throw CheckpointError.malformed(url, reason: "no second moment for \(parameter)") }
            guard model.contains(parameter) else {
                throw CheckpointError.malformed(url, reason: "moments for \(parameter), which the model does not have")
            }
            let shape = try model.tensor(named: parameter).shape
            let m = try file.tensor(named: name), v = try file.tensor(named: "v." + parameter)
            for moment in [m, v] where moment.dtype != .f32 || moment.shape != shape {
                throw CheckpointError.malformed(
                    url, reason: "the moments of \(parameter) must be f32 of shape \(shape), not \(moment.dtype) of \(moment.shape)")
            }
            // Copies: the optimiser updates moments in place, and the mapping is read-only.
            moments[parameter] = (m.copy(), v.copy())
        }
        optimizer.restore(step: step, moments: moments)
        return (state, frozen)
    }

    private static func writeState(_ state: TrainingState, optimizer: AdamW, frozen: [String: Tensor], to url: URL) throws {
        var tensors: [(name: String, tensor: Tensor)] = frozen.keys.sorted().map { ("frozen." + $0, frozen[$0]!) }
        for name in optimizer.moments.keys.sorted() {
            let moment = optimizer.moments[name]!
            tensors.append(("m." + name, moment.m))
            tensors.append(("v." + name, moment.v))
        }
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        try SafetensorsWriter.write(tensors, metadata: ["training_state": json, "optimizer_step": String(optimizer.step)], to: url)
    }

    private static func prune(_ checkpoints: URL) throws {
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: checkpoints.path)
            .filter { $0.hasPrefix("step-") }.sorted()
        for old in snapshots.dropLast(retained) {
            try FileManager.default.removeItem(at: checkpoints.appendingPathComponent(old))
        }
    }
}
