import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Loads model directories whatever holds their routed experts: the checkpoint, or, when
/// `chronos pack --strip-experts` removed them from it (`StrippedCheckpoint`), the expert cache.
///
/// `ModelRegistry.load` refuses a stripped checkpoint without an expert provider
/// (`ModelError.expertsInCache`); this is the loader that supplies one.
public enum ModelLoader {
    /// The model in `directory`. Routed experts come from `experts`; when nil, from the
    /// checkpoint, or, when it was stripped of them, mapped from the expert cache
    /// (`ExpertCache.mappedExperts`), every one resident.
    public static func load(directory: URL, experts: (any ExpertProvider)? = nil) throws -> TransformerLanguageModel {
        guard experts == nil, StrippedCheckpoint.isStripped(directory: directory) else {
            return try ModelRegistry.load(directory: directory, experts: experts)
        }
        let shapes = try ModelRegistry.routedExpertShapes(directory: directory)
        return try ModelRegistry.load(
            directory: directory,
            experts: ExpertCache.mappedExperts(modelDirectory: directory, shapes: shapes))
    }
}

extension ExpertCache {
    /// Every routed expert of `shapes` (gate, up and down shapes by expert, as
    /// `ModelRegistry.routedExpertShapes` gives them), mapped from the cluster files of the
    /// model directory `modelDirectory`'s expert cache without copying: the experts of a stripped
    /// checkpoint.
    ///
    /// Checks what can be checked without reading every byte: the manifest is there and
    /// readable, each cluster file has the size it records, and every expert of `shapes` is
    /// present with those shapes. Each expert's content hash is checked on its first use
    /// (`ExpertVerification`). Every failure is a `StrippedCheckpointError`.
    public static func mappedExperts(modelDirectory directory: URL, shapes: [ExpertKey: [[Int]]]) throws -> ResidentExperts {
        let cache = ModelDirectory(directory).expertCache
        let manifestURL = cache.appendingPathComponent(ExpertCacheManifest.fileName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw StrippedCheckpointError.cacheMissing(directory: directory.path)
        }
        func invalid(_ reason: String) -> StrippedCheckpointError { .cacheInvalid(directory: directory.path, reason: reason) }
        let manifest: ExpertCacheManifest
        do {
            manifest = try JSONDecoder().decode(ExpertCacheManifest.self, from: Data(contentsOf: manifestURL))
        } catch {
            throw invalid("\(manifestURL.path) is not a cluster manifest")
        }
        guard manifest.format == ExpertCacheManifest.formatName else { throw invalid("\(manifestURL.path) has format \(manifest.format)") }
        let files = try manifest.files.map { file -> SafetensorsFile in
            guard !file.name.isEmpty, !file.name.contains("/"), file.name != ".", file.name != ".." else {
                throw invalid("'\(file.name)' is not a file name in the cache folder")
            }
            let url = cache.appendingPathComponent(file.name)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int
            guard let size else { throw invalid("\(url.path) is missing") }
            guard size == file.bytes else { throw invalid("\(url.path) has \(size) bytes, the manifest records \(file.bytes)") }
            do {
                return try SafetensorsFile(url: url)
            } catch {
                throw invalid("\(error)")
            }
        }
        let config = ModelDirectory.Name.config
        var experts: [ExpertKey: ExpertWeights] = [:], records: [ExpertKey: ExpertVerification.Record] = [:]
        for entry in manifest.experts {
            guard let expected = shapes[entry.key] else { continue }
            guard entry.file >= 0, entry.file < files.count, entry.tensors.map(\.projection) == ["gate", "up", "down"] else {
                throw invalid("the manifest's entry of \(entry.key) is inconsistent")
            }
            let tensors = try entry.tensors.map { tensor in
                do {
                    return try files[entry.file].tensor(named: tensor.name)
                } catch {
                    throw invalid("\(error)")
                }
            }
            for (tensor, shape) in zip(tensors, expected) where tensor.shape != shape {
                throw StrippedCheckpointError.cacheStale(
                    directory: directory.path, reason: "expert \(entry.key) has shape \(tensor.shape), \(config) implies \(shape)")
            }
            guard tensors.allSatisfy({ $0.dtype.isWeight }) else { throw invalid("expert \(entry.key) is not of a float or block dtype") }
            let weights = ExpertWeights(gate: tensors[0], up: tensors[1], down: tensors[2])
            guard let hash = UInt64(entry.hash, radix: 16), entry.length == weights.byteCount else {
                throw invalid("the manifest's entry of \(entry.key) has no valid hash or length")
            }
            experts[entry.key] = weights
            records[entry.key] = ExpertVerification.Record(file: files[entry.file].url.path, hash: hash, length: entry.length)
        }
        if let absent = shapes.keys.first(where: { experts[$0] == nil }) {
            throw StrippedCheckpointError.cacheStale(
                directory: directory.path, reason: "it has no expert \(absent), which \(config) implies")
        }
        return ResidentExperts(experts, verification: ExpertVerification(records: records))
    }
}
