import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// A packed expert cache, opened and checked: the manifest, the cluster files' paths, and the
/// means to turn an expert's bytes into weights.
///
/// `open` refuses a cache that is missing, malformed, stale (the model's `config.json` or a
/// packed expert's source tensor changed since packing, by content) or truncated (a cluster
/// file's size or header disagrees with the manifest); `validate(against:)` refuses one that
/// does not fit the loaded model; each expert's bytes are checked against its hash when read
/// (`checkHash`), and `verifyFiles` hashes every file whole. In a directory whose checkpoint was
/// stripped of its experts, each refusal is a `StrippedCheckpointError`, since the cache is
/// then the experts' only copy.
public final class ExpertCache: Sendable {
    /// The model directory the cache belongs to.
    public let modelDirectory: URL
    /// `MODEL_DIR/expert_cache`.
    public let directory: URL
    /// The manifest as read.
    public let manifest: ExpertCacheManifest
    /// Every cluster file's URL, by file index.
    public let fileURLs: [URL]
    /// Whether the model's checkpoint was stripped of its routed experts, which then live only here.
    public let checkpointStripped: Bool
    private let entries: [ExpertKey: ExpertCacheManifest.Expert]

    /// Opens and checks the cache of the model directory `modelDirectory`.
    public static func open(modelDirectory: URL) throws -> ExpertCache {
        let stripped = StrippedCheckpoint.isStripped(directory: modelDirectory)
        do {
            let cache = try openChecked(modelDirectory: modelDirectory, stripped: stripped)
            try cache.checkFiles()
            return cache
        } catch let error as ExpertCacheError where stripped {
            throw error.inStrippedCheckpoint(directory: modelDirectory.path)
        }
    }

    private static func openChecked(modelDirectory: URL, stripped: Bool) throws -> ExpertCache {
        let directory = ModelDirectory(modelDirectory).expertCache
        let manifestURL = directory.appendingPathComponent(ExpertCacheManifest.fileName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw ExpertCacheError.notPacked(directory: modelDirectory.path)
        }
        let manifest: ExpertCacheManifest
        do {
            manifest = try JSONDecoder().decode(ExpertCacheManifest.self, from: Data(contentsOf: manifestURL))
        } catch {
            throw ExpertCacheError.malformedManifest(path: manifestURL.path, reason: "not a cluster manifest (\(error))")
        }
        guard manifest.format == ExpertCacheManifest.formatName, manifest.version == ExpertCacheManifest.currentVersion,
            manifest.hash == "xxh64"
        else {
            throw ExpertCacheError.malformedManifest(
                path: manifestURL.path,
                reason:
                    "format \(manifest.format) version \(manifest.version) hash \(manifest.hash); this build reads \(ExpertCacheManifest.formatName) version \(ExpertCacheManifest.currentVersion) with xxh64"
            )
        }
        if let reason = try ModelSource.staleness(of: manifest, in: modelDirectory) {
            throw ExpertCacheError.stale(path: manifestURL.path, reason: reason)
        }
        return try ExpertCache(
            modelDirectory: modelDirectory, directory: directory, manifest: manifest,
            manifestPath: manifestURL.path, stripped: stripped)
    }

    /// Runs `body`; in a stripped directory, its cache errors become `StrippedCheckpointError`s.
    private func reportingStripped<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ExpertCacheError where checkpointStripped {
            throw error.inStrippedCheckpoint(directory: modelDirectory.path)
        }
    }

    private init(modelDirectory: URL, directory: URL, manifest: ExpertCacheManifest, manifestPath: String, stripped: Bool) throws {
        self.modelDirectory = modelDirectory
        checkpointStripped = stripped
        self.directory = directory
        self.manifest = manifest
        fileURLs = try manifest.files.map { file in
            guard !file.name.isEmpty, !file.name.contains("/"), file.name != ".", file.name != ".." else {
                throw ExpertCacheError.malformedManifest(
                    path: manifestPath, reason: "'\(file.name)' is not a file name in the cache folder")
            }
            return directory.appendingPathComponent(file.name)
        }
        var entries: [ExpertKey: ExpertCacheManifest.Expert] = [:]
        for expert in manifest.experts {
            guard expert.file >= 0, expert.file < manifest.files.count, expert.offset >= 0, expert.length > 0,
                expert.offset + expert.length <= manifest.files[expert.file].bytes, expert.tensors.count == 3
            else {
                throw ExpertCacheError.malformedManifest(path: manifestPath, reason: "the entry of \(expert.key) is inconsistent")
            }
            for tensor in expert.tensors {
                guard let dtype = DType(rawValue: tensor.dtype), dtype.isWeight else {
                    let quantized = DType.allCases.filter(\.isQuantized).map(\.rawValue).joined(separator: ", ")
                    throw ExpertCacheError.malformedManifest(
                        path: manifestPath,
                        reason:
                            "\(tensor.name) has dtype '\(tensor.dtype)'; experts must be f32, f16, bf16 or a block format (\(quantized))")
                }
                guard tensor.shape.count == 2, tensor.shape.allSatisfy({ $0 > 0 }), tensor.shape[1] % dtype.blockElements == 0 else {
                    throw ExpertCacheError.malformedManifest(
                        path: manifestPath, reason: "\(tensor.name) has shape \(tensor.shape), not a matrix of whole \(dtype) rows")
                }
            }
            guard entries.updateValue(expert, forKey: expert.key) == nil else {
                throw ExpertCacheError.malformedManifest(path: manifestPath, reason: "\(expert.key) is listed twice")
            }
        }
        self.entries = entries
    }

    /// Checks each cluster file's size and that its safetensors header places every expert where
    /// the manifest says.
    private func checkFiles() throws {
        for (index, file) in manifest.files.enumerated() {
            let url = fileURLs[index]
            let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
            guard let size = attributes?[.size] as? Int else {
                throw ExpertCacheError.sizeMismatch(file: url.path, expected: file.bytes, found: 0)
            }
            guard size == file.bytes else { throw ExpertCacheError.sizeMismatch(file: url.path, expected: file.bytes, found: size) }
            let opened: SafetensorsFile
            do {
                opened = try SafetensorsFile(url: url)
            } catch {
                throw ExpertCacheError.stale(path: url.path, reason: "not a readable safetensors file: \(error)")
            }
            for expert in manifest.experts where expert.file == index {
                for tensor in expert.tensors {
                    guard let info = try? opened.info(named: tensor.name), info.shape == tensor.shape,
                        info.dtype.rawValue == tensor.dtype, info.byteRange.lowerBound == expert.offset + tensor.offset
                    else {
                        throw ExpertCacheError.stale(path: url.path, reason: "its header disagrees with the manifest about \(tensor.name)")
                    }
                }
            }
        }
    }

    /// Checks that the cache holds exactly `model`'s experts, under the checkpoint names the
    /// model uses.
    public func validate(against model: any LanguageModel) throws {
        try reportingStripped { try checkFits(model) }
    }

    private func checkFits(_ model: any LanguageModel) throws {
        let summary = model.summary, path = directory.appendingPathComponent(ExpertCacheManifest.fileName).path
        guard summary.modelType == manifest.modelType else {
            throw ExpertCacheError.modelMismatch(
                path: path, reason: "packed from a \(manifest.modelType) model, loaded a \(summary.modelType)")
        }
        var expected = 0
        for (layer, count) in summary.expertsPerLayer.enumerated() {
            for expert in 0..<count {
                let key = ExpertKey(layer: layer, expert: expert)
                expected += 1
                guard let entry = entries[key] else {
                    throw ExpertCacheError.modelMismatch(path: path, reason: "\(key) is missing")
                }
                guard let names = model.checkpointNames(for: key),
                    entry.tensors.map(\.source) == [names.gate, names.up, names.down]
                else {
                    throw ExpertCacheError.modelMismatch(path: path, reason: "\(key) was packed from other tensors than the model names")
                }
            }
        }
        guard expected == entries.count else {
            throw ExpertCacheError.modelMismatch(path: path, reason: "the cache holds \(entries.count) experts, the model \(expected)")
        }
    }

    /// Hashes every cluster file whole and compares with the manifest.
    public func verifyFiles() throws {
        try reportingStripped { try hashFiles() }
    }

    private func hashFiles() throws {
        for (index, file) in manifest.files.enumerated() {
            let url = fileURLs[index]
            let data: Data
            do {
                data = try Data(contentsOf: url, options: .alwaysMapped)
            } catch {
                throw ExpertCacheError.sizeMismatch(file: url.path, expected: file.bytes, found: 0)
            }
            guard data.count == file.bytes else {
                throw ExpertCacheError.sizeMismatch(file: url.path, expected: file.bytes, found: data.count)
            }
            let found = ContentHash.hex(data.withUnsafeBytes { ContentHash.xxh64($0) })
            guard found == file.hash else { throw ExpertCacheError.fileHashMismatch(file: url.path, expected: file.hash, found: found) }
        }
    }

    /// Every expert in the cache, in manifest order.
    public var keys: [ExpertKey] { manifest.experts.map(\.key) }

    /// Where `key` lies, or nil when the cache lacks it.
    public func entry(for key: ExpertKey) -> ExpertCacheManifest.Expert? { entries[key] }

    /// Bytes of `key`'s three tensors (0 when the cache lacks it).
    public func byteCount(of key: ExpertKey) -> Int { entries[key]?.length ?? 0 }

    /// Bytes of every expert together.
    public var totalExpertBytes: Int { manifest.expertBytes }

    /// The path of cluster file `index`.
    public func path(ofFile index: Int) -> String { fileURLs[index].path }

    /// Throws `expertHashMismatch` unless `bytes` (the expert's whole range) hash to the manifest's value.
    public func checkHash(of key: ExpertKey, bytes: UnsafeRawBufferPointer) throws {
        guard let entry = entries[key] else { throw ExpertCacheError.unknownExpert(key) }
        let found = ContentHash.hex(ContentHash.xxh64(bytes))
        guard found == entry.hash else {
            throw ExpertCacheError.expertHashMismatch(file: path(ofFile: entry.file), expert: key, expected: entry.hash, found: found)
        }
    }

    /// What each expert's bytes must hash to, for checking experts on first use.
    public var verificationRecords: [ExpertKey: ExpertVerification.Record] {
        entries.compactMapValues { entry in
            UInt64(entry.hash, radix: 16).map { ExpertVerification.Record(file: path(ofFile: entry.file), hash: $0, length: entry.length) }
        }
    }

    /// `key`'s weights viewing the expert's range at `base` (no copy); `owner` keeps the bytes alive.
    public func weights(of key: ExpertKey, base: UnsafeRawPointer, owner: AnyObject) throws -> ExpertWeights {
        guard let entry = entries[key] else { throw ExpertCacheError.unknownExpert(key) }
        let tensors = entry.tensors.map { tensor -> Tensor in
            let dtype = DType(rawValue: tensor.dtype)!
            let count = dtype.byteCount(tensor.shape.reduce(1, *))
            let storage = TensorStorage(borrowing: base + tensor.offset, byteCount: count, owner: owner)
            return Tensor(dtype: dtype, shape: tensor.shape, storage: storage)
        }
        return ExpertWeights(gate: tensors[0], up: tensors[1], down: tensors[2])
    }
}

extension ExpertCache {
    /// Every expert read from `disk` (default: the cluster files themselves) into memory, each
    /// checked against its hash: the experts of a fully resident model whose checkpoint was
    /// stripped of them.
    public func readAllExperts(from disk: (any ExpertDisk)? = nil) throws -> ResidentExperts {
        try reportingStripped {
            let disk = try disk ?? FileExpertDisk(cache: self)
            // Buffers are never returned to an idle list: each lives as long as its expert.
            let pool = ExpertBufferPool(maximumIdleBytes: 0)
            var experts: [ExpertKey: ExpertWeights] = [:]
            for entry in manifest.experts {
                let buffer = pool.acquire(capacity: entry.length)
                let request = DiskRead(
                    file: entry.file, path: path(ofFile: entry.file), offset: entry.offset,
                    length: entry.length, expert: entry.key)
                let read = try disk.read(request, into: buffer.base)
                guard read == entry.length else {
                    throw ExpertCacheError.shortRead(file: request.path, expert: entry.key, expected: entry.length, read: read)
                }
                try checkHash(of: entry.key, bytes: UnsafeRawBufferPointer(start: buffer.base, count: entry.length))
                experts[entry.key] = try weights(of: entry.key, base: buffer.base, owner: buffer)
            }
            return ResidentExperts(experts)
        }
    }
}
