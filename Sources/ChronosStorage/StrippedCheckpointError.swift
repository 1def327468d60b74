import ChronosFormats

/// A model directory whose checkpoint was stripped of its routed experts, and whose expert
/// cache, the only copy of them, cannot supply them.
public enum StrippedCheckpointError: Error, CustomStringConvertible, Equatable {
    /// `expert_cache/cluster_manifest.json` does not exist.
    case cacheMissing(directory: String)
    /// The cache no longer fits the directory (`config.json` changed since packing).
    case cacheStale(directory: String, reason: String)
    /// The cache is malformed, truncated or corrupted.
    case cacheInvalid(directory: String, reason: String)

    /// A one-line explanation that names the directory and what to do.
    public var description: String {
        let (directory, state, reason): (String, String, String?) =
            switch self {
            case .cacheMissing(let directory): (directory, "missing", nil)
            case .cacheStale(let directory, let reason): (directory, "stale", reason)
            case .cacheInvalid(let directory, let reason): (directory, "invalid", reason)
            }
        let cache = ModelDirectory.Name.expertCache + "/"
        let remedy =
            switch self {
            case .cacheStale: "restore the \(ModelDirectory.Name.config) the model was packed with, or re-pack from the full checkpoint"
            default: "restore \(cache) from the model's source, or re-pack from the full checkpoint"
            }
        return "\(directory): the routed experts were stripped from the checkpoint and live in \(cache), which is \(state)"
            + (reason.map { " (\($0))" } ?? "") + ": " + remedy
    }
}
