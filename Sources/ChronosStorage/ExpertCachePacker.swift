import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a model's routed experts into `MODEL_DIR/expert_cache/`: one `.ctsr` file (a valid
/// safetensors file) per cluster and `cluster_manifest.json`, with the weights in their
/// checkpoint dtype or converted to another (round-to-nearest-even for f16 and bf16, llama.cpp's
/// quantiser for a block format).
///
/// A checkpoint stripped of its experts (`--strip-experts`) is re-packed (for example with a new
/// cluster plan) from the cache itself, the cache's only copy of them.
///
/// Packing is atomic: everything is written into a fresh `expert_cache.partial-…` folder beside
/// the cache, each file synced, the manifest last, and only then is the folder renamed to
/// `expert_cache`. An interrupted pack leaves at most a partial folder, which no loader reads
/// and the next pack removes.
public enum ExpertCachePacker {
    /// Packs the experts of `model`, loaded from `directory`, by `plan` (default: one cluster
    /// per layer), stored as `dtype`, a float type or a block format (default: as the checkpoint
    /// stores them); `progress` hears
    /// one line per cluster file. Returns the manifest written.
    @discardableResult
    public static func pack(
        directory: URL, model: any LanguageModel, plan: ClusterPlan? = nil, dtype: DType? = nil,
        progress: ((String) -> Void)? = nil
    ) throws -> ExpertCacheManifest {
        try pack(directory: directory, model: model, plan: plan, dtype: dtype, progress: progress, afterFile: nil)
    }

    /// `pack` with a hook called after each cluster file is written (to interrupt it in tests).
    static func pack(
        directory: URL, model: any LanguageModel, plan: ClusterPlan?, dtype: DType? = nil,
        progress: ((String) -> Void)?, afterFile: ((Int) throws -> Void)?
    ) throws -> ExpertCacheManifest {
        let summary = model.summary
        guard summary.isMixtureOfExperts else { throw ExpertCacheError.noExperts(directory: directory.path) }
        if let dtype, !dtype.isWeight { throw ExpertCacheError.unsupportedDType(dtype.rawValue) }
        let plan = plan ?? .perLayer(summary)
        try plan.validate(summary)
        let source = try ModelSource.current(directory)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        // A checkpoint stripped of its experts is re-packed from the cache it points to, read
        // into memory and checked against its hashes first; the source names and hashes carry over.
        var previous: (cache: ExpertCache, experts: ResidentExperts)?
        if StrippedCheckpoint.isStripped(checkpoint) {
            guard let cache = try? ExpertCache.open(modelDirectory: directory) else {
                throw ExpertCacheError.checkpointStripped(directory: directory.path)
            }
            previous = (cache, try cache.readAllExperts())
        }
        /// The tensor packed as `projection` of `key`, its checkpoint name and source hash.
        func sourceTensor(_ key: ExpertKey, projection index: Int, name: String) throws -> (tensor: Tensor, source: String, hash: String) {
            guard let previous else {
                let tensor = try checkpoint.tensor(named: name)
                return (tensor, name, ModelSource.hash(of: tensor))
            }
            guard let entry = previous.cache.entry(for: key), let weights = previous.experts.weights(for: key) else {
                throw ExpertCacheError.modelMismatch(path: directory.path, reason: "the expert cache has no \(key) to re-pack")
            }
            return ([weights.gate, weights.up, weights.down][index], entry.tensors[index].source, entry.tensors[index].sourceHash)
        }

        removeLeftovers(in: directory)
        let final = ModelDirectory(directory).expertCache
        let partial = directory.appendingPathComponent("\(ModelDirectory.Name.expertCache).partial-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: false)
        do {
            var files: [ExpertCacheManifest.File] = [], experts: [ExpertCacheManifest.Expert] = []
            var dtypes = Set<String>()
            for (index, cluster) in plan.clusters.enumerated() {
                let name = ExpertCacheManifest.clusterFileName(index)
                let url = partial.appendingPathComponent(name)
                var tensors: [(name: String, tensor: Tensor)] = []
                var sources: [String: (projection: String, source: String, hash: String)] = [:]
                for key in cluster {
                    guard let names = model.checkpointNames(for: key) else {
                        throw ExpertCacheError.modelMismatch(path: directory.path, reason: "the model names no tensors for \(key)")
                    }
                    for (index, (projection, sourceName)) in [("gate", names.gate), ("up", names.up), ("down", names.down)].enumerated() {
                        let tensorName = "layers.\(key.layer).experts.\(key.expert).\(projection)_proj"
                        let original = try sourceTensor(key, projection: index, name: sourceName)
                        if let dtype, dtype.isQuantized, original.tensor.shape.last.map({ $0 % dtype.blockElements != 0 }) ?? true {
                            throw ExpertCacheError.unsupportedShape(tensor: sourceName, shape: original.tensor.shape, dtype: dtype.rawValue)
                        }
                        let stored =
                            dtype.map { original.tensor.dtype == $0 ? original.tensor : original.tensor.converted(to: $0) }
                            ?? original.tensor
                        tensors.append((tensorName, stored))
                        sources[tensorName] = (projection, original.source, original.hash)
                    }
                }
                try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "chronos": "expert-cluster"], to: url)
                let written = try SafetensorsFile(url: url)
                let bytes = try Data(contentsOf: url, options: .alwaysMapped)
                try bytes.withUnsafeBytes { raw in
                    for (position, key) in cluster.enumerated() {
                        let infos = try (0..<3).map { try written.info(named: tensors[position * 3 + $0].name) }
                        let start = infos[0].byteRange.lowerBound, end = infos[2].byteRange.upperBound
                        precondition(
                            infos[1].byteRange.lowerBound == infos[0].byteRange.upperBound
                                && infos[2].byteRange.lowerBound == infos[1].byteRange.upperBound,
                            "an expert's tensors are written back to back")
                        let hash = ContentHash.xxh64(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                        let entries = infos.map { info -> ExpertCacheManifest.Tensor in
                            let origin = sources[info.name]!
                            dtypes.insert(info.dtype.rawValue)
                            return .init(
                                projection: origin.projection, name: info.name, source: origin.source,
                                sourceHash: origin.hash, dtype: info.dtype.rawValue, shape: info.shape,
                                offset: info.byteRange.lowerBound - start)
                        }
                        experts.append(
                            .init(
                                layer: key.layer, expert: key.expert, file: index, offset: start, length: end - start,
                                hash: ContentHash.hex(hash), tensors: entries))
                    }
                    files.append(.init(name: name, bytes: raw.count, hash: ContentHash.hex(ContentHash.xxh64(raw))))
                }
                progress?("\(name): \(cluster.count) experts, \(bytes.count) bytes")
                try afterFile?(index)
            }
            let manifest = ExpertCacheManifest(
                format: ExpertCacheManifest.formatName, version: ExpertCacheManifest.currentVersion, hash: "xxh64",
                modelType: summary.modelType, dtype: dtypes.count == 1 ? dtypes.first! : "mixed",
                expertBytes: experts.reduce(0) { $0 + $1.length }, source: source, files: files, experts: experts)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(manifest), to: partial.appendingPathComponent(ExpertCacheManifest.fileName))
            syncDirectory(partial)
            try install(partial, at: final)
            syncDirectory(directory)
            return manifest
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
    }

    /// Replaces `final` with `partial`: the old cache is renamed aside first, so at no moment
    /// does `final` name a half-written folder.
    private static func install(_ partial: URL, at final: URL) throws {
        let manager = FileManager.default
        var retired: URL?
        if manager.fileExists(atPath: final.path) {
            let aside = final.deletingLastPathComponent()
                .appendingPathComponent("\(ModelDirectory.Name.expertCache).old-\(UUID().uuidString)")
            guard rename(final.path, aside.path) == 0 else { throw ExpertCacheError.io(path: final.path, call: "rename", errno: errno) }
            retired = aside
        }
        guard rename(partial.path, final.path) == 0 else { throw ExpertCacheError.io(path: partial.path, call: "rename", errno: errno) }
        if let retired { try? manager.removeItem(at: retired) }
    }

    /// Removes partial and retired cache folders, and temporary files of checkpoint rewrites,
    /// that an earlier, interrupted pack left.
    static func removeLeftovers(in directory: URL) {
        AtomicFile.removeTemporaries(in: directory)
        let prefixes = ["\(ModelDirectory.Name.expertCache).partial-", "\(ModelDirectory.Name.expertCache).old-"]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where prefixes.contains(where: name.hasPrefix) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// `fsync` of a directory, so the renames in it survive a crash (best effort).
    static func syncDirectory(_ url: URL) {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}
