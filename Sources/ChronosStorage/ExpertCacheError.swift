import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why an expert cache could not be packed, opened or read; each case names the file and,
/// where one is involved, the expert.
public enum ExpertCacheError: Error, CustomStringConvertible, Equatable {
    /// The model directory has no `expert_cache/cluster_manifest.json`.
    case notPacked(directory: String)
    /// The manifest is not JSON of the expected form.
    case malformedManifest(path: String, reason: String)
    /// The cache was packed from another configuration or checkpoint than the directory holds now.
    case stale(path: String, reason: String)
    /// The cache does not fit the loaded model (an expert missing, a shape or name differs).
    case modelMismatch(path: String, reason: String)
    /// A cluster file is shorter or longer than the manifest records.
    case sizeMismatch(file: String, expected: Int, found: Int)
    /// The bytes of a whole cluster file do not hash to the manifest's value.
    case fileHashMismatch(file: String, expected: String, found: String)
    /// The bytes of one expert do not hash to the manifest's value (corruption).
    case expertHashMismatch(file: String, expert: ExpertKey, expected: String, found: String)
    /// A read returned fewer bytes than the expert occupies.
    case shortRead(file: String, expert: ExpertKey, expected: Int, read: Int)
    /// A system call failed with `errno`.
    case io(path: String, call: String, errno: Int32)
    /// The cluster plan (`--clusters`) is not a valid partition of the model's experts.
    case invalidClusterPlan(path: String, reason: String)
    /// The model has no routed experts to pack.
    case noExperts(directory: String)
    /// The expert byte budget cannot hold the largest single expert.
    case budgetTooSmall(budget: Int, needed: Int)
    /// No expert of that key is in the cache.
    case unknownExpert(ExpertKey)
    /// Every try to load an expert that a run waits for failed (the faults, one line each).
    case loadFailed(expert: ExpertKey, faults: [String])

    /// The pack asked for expert weights in a dtype other than f32, f16 or bf16.
    case unsupportedDType(String)
    /// An expert's rows are not whole blocks of the block format it was to be packed in.
    case unsupportedShape(tensor: String, shape: [Int], dtype: String)
    /// The checkpoint was stripped of its routed experts and its cache, their only copy, cannot
    /// be opened, so there is nothing to pack them from.
    case checkpointStripped(directory: String)
    /// A pack would write a new directory where something already is.
    case outputExists(path: String)

    /// A one-line explanation naming the file and, where relevant, the expert, with what to do.
    public var description: String {
        switch self {
        case .notPacked(let directory) where GGUFFile.isGGUF(URL(fileURLWithPath: directory)):
            "\(problem); run `chronos pack \(directory) --out DIR` and run the model directory DIR it writes"
        case .notPacked(let directory):
            "\(problem); run `chronos pack \(directory)` first"
        case .outputExists:
            "\(problem); choose a new path, or remove it first"
        case .malformedManifest, .stale, .modelMismatch, .sizeMismatch, .fileHashMismatch:
            "\(problem); re-pack with `chronos pack`"
        case .checkpointStripped:
            "\(problem); re-pack from the full checkpoint"
        case .loadFailed:
            "\(problem); check the disk, re-pack the model if its cache is damaged, or run with --policy fallback to go on without the expert"
        default:
            problem
        }
    }

    /// What is wrong, naming the file and, where relevant, the expert (without the remedy).
    public var problem: String {
        switch self {
        case .notPacked(let directory):
            "\(directory): no expert cache"
        case .malformedManifest(let path, let reason):
            "\(path): malformed manifest: \(reason)"
        case .stale(let path, let reason):
            "\(path): the expert cache is stale (\(reason))"
        case .modelMismatch(let path, let reason):
            "\(path): the expert cache does not fit the model (\(reason))"
        case .sizeMismatch(let file, let expected, let found):
            "\(file): \(found) bytes, but the manifest records \(expected) (truncated or replaced)"
        case .fileHashMismatch(let file, let expected, let found):
            "\(file): content hash \(found) differs from the manifest's \(expected) (corrupted)"
        case .expertHashMismatch(let file, let expert, let expected, let found):
            "\(file): expert \(expert) hashes to \(found), the manifest records \(expected) (corrupted bytes)"
        case .shortRead(let file, let expert, let expected, let read):
            "\(file): short read of expert \(expert): \(read) of \(expected) bytes"
        case .io(let path, let call, let errno):
            "\(path): \(call) failed: \(String(cString: strerror(errno)))"
        case .invalidClusterPlan(let path, let reason):
            "\(path): invalid cluster plan: \(reason)"
        case .noExperts(let directory):
            "\(directory): the model has no routed experts to pack"
        case .budgetTooSmall(let budget, let needed):
            "an expert budget of \(budget) bytes for compute cannot hold one expert of \(needed) bytes"
        case .unknownExpert(let key):
            "expert \(key) is not in the expert cache"
        case .unsupportedDType(let dtype):
            "expert weights can be packed as f32, f16, bf16 or a block format (\(DType.allCases.filter(\.isQuantized).map(\.rawValue).joined(separator: ", "))), not \(dtype)"
        case .unsupportedShape(let tensor, let shape, let dtype):
            "\(tensor) has shape \(shape): its rows of \(shape.last ?? 0) values are not whole \(dtype) blocks of \(DType(rawValue: dtype)?.blockElements ?? 0); pick a format whose block divides them"
        case .outputExists(let path):
            "\(path) already exists"
        case .checkpointStripped(let directory):
            "\(directory): the checkpoint was stripped of its routed experts, and expert_cache/, their only copy, cannot be opened"
        case .loadFailed(let expert, let faults):
            "expert \(expert) could not be loaded: " + (faults.last ?? "every read failed")
        }
    }

    /// The same failure in a model directory whose checkpoint was stripped of its experts, where
    /// the cache is their only copy and a broken cache needs the full checkpoint to re-pack.
    func inStrippedCheckpoint(directory: String) -> StrippedCheckpointError {
        switch self {
        case .notPacked: .cacheMissing(directory: directory)
        case .stale, .modelMismatch: .cacheStale(directory: directory, reason: problem)
        default: .cacheInvalid(directory: directory, reason: problem)
        }
    }
}
