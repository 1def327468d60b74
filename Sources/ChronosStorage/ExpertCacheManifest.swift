import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// `expert_cache/cluster_manifest.json`: where every (layer, expert) of a model lies in the
/// cluster files, and what the cache was packed from, so that a stale, truncated or corrupted
/// cache is refused instead of used.
///
///     {
///       "format": "chronos-expert-cache", "version": 2, "hash": "xxh64",
///       "model_type": "mixtral", "dtype": "bf16", "expert_bytes": 1048576,
///       "source": {"config_hash": "…"},
///       "files": [{"name": "cluster_000.ctsr", "bytes": …, "hash": "…"}, …],
///       "experts": [{"layer": 0, "expert": 0, "file": 0, "offset": 128, "length": 98304, "hash": "…",
///                    "tensors": [{"projection": "gate", "name": "layers.0.experts.0.gate_proj",
///                                 "source": "model.layers.0.block_sparse_moe.experts.0.w1.weight",
///                                 "source_hash": "…", "dtype": "bf16", "shape": [128, 64], "offset": 0}, …]}, …]
///     }
///
/// Offsets are bytes from the start of the cluster file (`offset`, `length`: the expert's three
/// tensors, contiguous) and from the start of the expert's range (each tensor's `offset`).
/// Hashes are XXH64 (`ContentHash`) as 16 hex digits: one over each whole file, one over each
/// expert's range, and, for staleness, one over `config.json` and one over each source tensor's
/// bytes as the checkpoint stores them (before any dtype conversion). Staleness is decided by
/// content alone, so a copy or a fresh clone of the directory (new modification times) keeps
/// its cache. Once the checkpoint is stripped of its experts (`StrippedCheckpoint`), the cache
/// is their only copy and the source hashes are no longer checked.
public struct ExpertCacheManifest: Codable, Sendable, Equatable {
    /// The `format` every manifest carries.
    public static let formatName = "chronos-expert-cache"
    /// The manifest version this code writes and reads.
    public static let currentVersion = 2
    /// The manifest's file name inside the cache folder.
    public static let fileName = "cluster_manifest.json"

    /// The file name of cluster `index` inside the cache folder (`cluster_NNN.ctsr`).
    public static func clusterFileName(_ index: Int) -> String { String(format: "cluster_%03d.ctsr", index) }

    /// What the cache was packed from besides the experts' own tensors (whose hashes are on
    /// each `Tensor`): the hash of `config.json`.
    public struct Source: Codable, Sendable, Equatable {
        /// XXH64 of `config.json` in canonical form (keys sorted, no whitespace); caches packed
        /// by earlier builds recorded the hash of its bytes, which is accepted too.
        public var configHash: String

        enum CodingKeys: String, CodingKey { case configHash = "config_hash" }
    }

    /// One cluster file.
    public struct File: Codable, Sendable, Equatable {
        /// File name inside the cache folder (`cluster_NNN.ctsr`).
        public var name: String
        /// Size in bytes.
        public var bytes: Int
        /// XXH64 of the whole file.
        public var hash: String
    }

    /// One projection of an expert inside its range.
    public struct Tensor: Codable, Sendable, Equatable {
        /// `gate`, `up` or `down`.
        public var projection: String
        /// The tensor's key in the cluster file.
        public var name: String
        /// The tensor's name in the model's checkpoint.
        public var source: String
        /// XXH64 of the source tensor's bytes in the checkpoint, in its stored dtype.
        public var sourceHash: String
        /// safetensors dtype name in lowercase (`f32`, `bf16`, `f16`).
        public var dtype: String
        /// Extent of each dimension.
        public var shape: [Int]
        /// Bytes from the start of the expert's range.
        public var offset: Int

        enum CodingKeys: String, CodingKey {
            case projection, name, source
            case sourceHash = "source_hash"
            case dtype, shape, offset
        }
    }

    /// Where one (layer, expert) lies.
    public struct Expert: Codable, Sendable, Equatable {
        /// Decoder layer.
        public var layer: Int
        /// Expert index within the layer.
        public var expert: Int
        /// Index into `files`.
        public var file: Int
        /// First byte of the expert's three tensors in the file.
        public var offset: Int
        /// Bytes of the three tensors together.
        public var length: Int
        /// XXH64 of those bytes.
        public var hash: String
        /// The gate, up and down projections, in that order.
        public var tensors: [Tensor]

        /// The (layer, expert) this entry describes.
        public var key: ExpertKey { ExpertKey(layer: layer, expert: expert) }
    }

    /// Always `chronos-expert-cache`.
    public var format: String
    /// Manifest version (2).
    public var version: Int
    /// The content hash used (`xxh64`).
    public var hash: String
    /// `model_type` of the packed model.
    public var modelType: String
    /// dtype of the expert weights (`mixed` when they differ).
    public var dtype: String
    /// Bytes of all experts together.
    public var expertBytes: Int
    /// What the cache was packed from.
    public var source: Source
    /// The cluster files, in index order.
    public var files: [File]
    /// Every expert, cluster by cluster, in file order.
    public var experts: [Expert]

    enum CodingKeys: String, CodingKey {
        case format, version, hash
        case modelType = "model_type"
        case dtype
        case expertBytes = "expert_bytes"
        case source, files, experts
    }

    /// The entry of every expert by key.
    public func expertsByKey() -> [ExpertKey: Expert] {
        Dictionary(experts.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Bytes of the largest single expert.
    public var largestExpertBytes: Int { experts.map(\.length).max() ?? 0 }
}
