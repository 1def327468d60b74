import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Rewrites a packed model directory's checkpoint for shipping: without the routed experts,
/// which then live only in `expert_cache/` (`chronos pack --strip-experts`), and/or with the
/// other float tensors in another dtype (`--dense-dtype`).
///
/// The result is one `model.safetensors`, written atomically (a crash leaves the old checkpoint
/// or the complete new one); a sharded checkpoint's index and shards are removed after it. A
/// stripped checkpoint says so in its `__metadata__` (`StrippedCheckpoint`), so `ModelLoader` takes the
/// experts from the cache. Routed experts that stay in the checkpoint are copied unchanged, so
/// the cache, whose staleness is judged by their bytes, stays valid.
public enum CheckpointRewriter {
    /// What a rewrite did.
    public struct Outcome: Sendable, Equatable {
        /// Bytes of the checkpoint files before (all shards and the index).
        public var bytesBefore: Int
        /// Bytes of `model.safetensors` after.
        public var bytesAfter: Int
        /// Routed-expert tensors left out.
        public var strippedTensors: Int
        /// Tensors converted to the dense dtype.
        public var convertedTensors: Int
    }

    /// Rewrites the checkpoint of `directory`, from which `model` was loaded: without its routed
    /// experts when `stripExperts`, its other float tensors converted to `denseDType` when given
    /// (round-to-nearest-even for f16 and bf16).
    ///
    /// Stripping makes the cache the experts' only copy, so it first opens the cache (fresh by
    /// content), checks that it holds exactly `model`'s experts, and hashes every cluster file.
    @discardableResult
    public static func rewrite(
        directory: URL, model: any LanguageModel, stripExperts: Bool,
        denseDType: DType?
    ) throws -> Outcome {
        if let denseDType, !denseDType.isFloatingPoint { throw ExpertCacheError.unsupportedDType(denseDType.rawValue) }
        ExpertCachePacker.removeLeftovers(in: directory)
        if stripExperts {
            let cache = try ExpertCache.open(modelDirectory: directory)
            try cache.validate(against: model)
            try cache.verifyFiles()
        }
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        var expertNames = Set<String>()
        for (layer, count) in model.summary.expertsPerLayer.enumerated() {
            for expert in 0..<count {
                guard let names = model.checkpointNames(for: ExpertKey(layer: layer, expert: expert)) else { continue }
                expertNames.formUnion([names.gate, names.up, names.down])
            }
        }

        var tensors: [(name: String, tensor: Tensor)] = []
        var outcome = Outcome(bytesBefore: 0, bytesAfter: 0, strippedTensors: 0, convertedTensors: 0)
        for name in checkpoint.tensorNames {
            if expertNames.contains(name) {
                if stripExperts {
                    outcome.strippedTensors += 1
                } else {
                    tensors.append((name, try checkpoint.tensor(named: name)))
                }
                continue
            }
            let tensor = try checkpoint.tensor(named: name)
            if let denseDType, tensor.dtype.isFloatingPoint, tensor.dtype != denseDType {
                tensors.append((name, tensor.converted(to: denseDType)))
                outcome.convertedTensors += 1
            } else {
                tensors.append((name, tensor))
            }
        }

        var metadata = checkpoint.shards.first?.metadata ?? [:]
        metadata["format"] = metadata["format"] ?? "pt"
        if stripExperts || StrippedCheckpoint.isStripped(checkpoint) {
            metadata[StrippedCheckpoint.metadataKey] = StrippedCheckpoint.inExpertCache
        }
        let manager = FileManager.default
        func size(_ url: URL) -> Int { (try? manager.attributesOfItem(atPath: url.path))?[.size] as? Int ?? 0 }
        let single = ModelDirectory(directory).checkpoint
        let sharded = checkpoint.shards.first?.url.lastPathComponent != ModelDirectory.Name.checkpoint
        // The index goes before its shards, so no moment leaves an index naming missing shards.
        let replaced = sharded ? [ModelDirectory(directory).checkpointIndex] + checkpoint.shards.map(\.url) : []
        outcome.bytesBefore = sharded ? replaced.reduce(0) { $0 + size($1) } : size(single)

        try SafetensorsWriter.write(tensors, metadata: metadata, to: single)
        // model.safetensors now takes precedence over any index.
        for url in replaced { try manager.removeItem(at: url) }
        ExpertCachePacker.syncDirectory(directory)
        outcome.bytesAfter = size(single)
        return outcome
    }
}
