import ChronosFormats
import ChronosTensor
import Foundation

/// An architecture: its `config.json` (decoded by the conforming type), its `model_type`, how
/// it maps onto the shared transformer, and how its checkpoints name and lay out their tensors.
protocol TransformerArchitecture: Decodable, Sendable {
    /// The `model_type` that selects this architecture.
    static var modelType: String { get }
    /// How this family's checkpoints name their tensors.
    static var checkpointKeys: CheckpointKeys { get }
    /// `num_hidden_layers`, checked before any per-layer list is built from it.
    var hiddenLayers: Int { get }
    /// The shared transformer description; errors name the field of `file` at fault.
    func transformerConfiguration(file: String) throws -> TransformerConfiguration
    /// The checkpoint's tensors as the model reads them: the one place where a family's keys
    /// are renamed, fused or stacked expert tensors split, and tensors the model does not use
    /// dropped. `location` names the checkpoint in errors.
    static func sanitize(_ weights: [String: Tensor], configuration: TransformerConfiguration,
                         location: String) throws -> [String: Tensor]
}

extension TransformerArchitecture {
    /// The Hugging Face conventions every family here shares (see `HuggingFaceWeights`).
    static func sanitize(_ weights: [String: Tensor], configuration: TransformerConfiguration,
                         location: String) throws -> [String: Tensor] {
        try HuggingFaceWeights.sanitize(weights, configuration: configuration, keys: checkpointKeys, location: location)
    }

    /// Decodes and validates `config` (read from `file`).
    static func configuration(config: Data, file: String) throws -> TransformerConfiguration {
        let decoded = try ConfigurationFile.decode(Self.self, from: config, file: file)
        try ConfigurationLimits.check(decoded.hiddenLayers, in: ConfigurationLimits.layers, field: "num_hidden_layers", file: file)
        let configuration = try decoded.transformerConfiguration(file: file)
        try configuration.validate(file: file)
        return configuration
    }
}

/// Maps a `config.json`'s `model_type` to the architecture that loads it.
public enum ModelRegistry {
    static let architectures: [any TransformerArchitecture.Type] = [
        ChronosConfiguration.self, LlamaConfiguration.self, MixtralConfiguration.self, Qwen2MoEConfiguration.self,
        Qwen3MoEConfiguration.self, OLMoEConfiguration.self,
    ]

    /// Every `model_type` that can be loaded, sorted.
    public static var modelTypes: [String] { architectures.map { $0.modelType }.sorted() }

    /// Loads the model directory `directory`: `config.json` and the safetensors checkpoint (one
    /// file or shards). Routed experts come from `experts`; when nil, every expert is loaded
    /// from the checkpoint and stays resident, or, when the checkpoint was stripped of them,
    /// mapped from `expert_cache/`.
    public static func load(directory: URL, experts: (any ExpertProvider)? = nil) throws -> TransformerLanguageModel {
        try TransformerLanguageModel(directory: directory, experts: experts)
    }
}

extension TransformerLanguageModel {
    /// Loads the model directory `directory` (see `ModelRegistry.load`).
    public convenience init(directory: URL, experts: (any ExpertProvider)? = nil) throws {
        let configURL = ModelDirectory(directory).config
        let config = try ConfigurationFile.read(configURL)
        let header = try ConfigurationFile.decode(ConfigurationHeader.self, from: config, file: configURL.path)
        guard let architecture = ModelRegistry.architectures.first(where: { $0.modelType == header.modelType }) else {
            throw ModelError.unknownModelType(header.modelType, known: ModelRegistry.modelTypes)
        }
        let configuration = try architecture.configuration(config: config, file: configURL.path)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        var experts = experts
        if experts == nil, StrippedCheckpoint.isStripped(checkpoint) {
            let mixtures = configuration.feedForward.enumerated().compactMap { layer, block -> (layer: Int, experts: Int, width: Int)? in
                guard case let .mixture(mixture) = block else { return nil }
                return (layer, mixture.expertCount, mixture.intermediateSize)
            }
            experts = try StrippedCheckpoint.cachedExperts(directory: directory, hiddenSize: configuration.hiddenSize, mixtures: mixtures)
        }
        var tensors: [String: Tensor] = [:]
        for name in checkpoint.tensorNames { tensors[name] = try checkpoint.tensor(named: name) }
        let location = checkpoint.directory.path
        let weights = try architecture.sanitize(tensors, configuration: configuration, location: location)
        try self.init(configuration: configuration, keys: architecture.checkpointKeys, configJSON: config, weights: weights,
                      experts: experts, location: location)
    }
}

/// A checkpoint written without its routed experts (`chronos pack --strip-experts`), which then
/// live only in the model directory's expert cache (`expert_cache/`, written by
/// `ChronosStorage.ExpertCachePacker`; `ExpertCacheManifest` documents its layout).
///
/// The checkpoint says so in its `__metadata__`: `"chronos_routed_experts": "expert_cache"`.
/// Loading such a directory without an expert provider maps every expert from the cluster files,
/// after checking what can be checked here: the manifest is there and readable, each cluster
/// file has the size it records, and every expert the configuration implies is present with the
/// implied shapes. The content hashes are checked where the cache is opened for offloading
/// (`ChronosStorage.ExpertCache`).
public enum StrippedCheckpoint {
    /// The `__metadata__` key that says where the routed experts are.
    public static let metadataKey = "chronos_routed_experts"
    /// Its value in a stripped checkpoint: the experts are in `expert_cache/` only.
    public static let inExpertCache = ModelDirectory.Name.expertCache
    /// The cache's manifest, as `ExpertCacheManifest` names it.
    private static let manifestName = "cluster_manifest.json"

    /// Whether `checkpoint` was stripped of its routed experts.
    public static func isStripped(_ checkpoint: SafetensorsCheckpoint) -> Bool {
        checkpoint.shards.contains { $0.metadata[metadataKey] == inExpertCache }
    }

    /// Whether the checkpoint of the model directory `directory` was stripped of its routed
    /// experts (false when it has no readable checkpoint).
    public static func isStripped(directory: URL) -> Bool {
        (try? SafetensorsCheckpoint(directory: directory)).map(isStripped) ?? false
    }

    /// The part of `cluster_manifest.json` needed to find every expert's tensors.
    private struct Manifest: Decodable {
        struct File: Decodable {
            let name: String
            let bytes: Int
        }
        struct Tensor: Decodable {
            let projection: String
            let name: String
        }
        struct Expert: Decodable {
            let layer: Int
            let expert: Int
            let file: Int
            let length: Int
            let hash: String
            let tensors: [Tensor]
        }
        let format: String
        let files: [File]
        let experts: [Expert]
    }

    /// Every routed expert of `mixtures` (per MoE layer: its index, expert count and expert width;
    /// gate and up `[width, hiddenSize]`, down `[hiddenSize, width]`), mapped from the cluster
    /// files of `directory`'s expert cache.
    static func cachedExperts(directory: URL, hiddenSize hidden: Int, mixtures: [(layer: Int, experts: Int, width: Int)]) throws -> ResidentExperts {
        var shapes: [ExpertKey: [[Int]]] = [:]
        for mixture in mixtures {
            for expert in 0..<mixture.experts {
                let width = mixture.width
                shapes[ExpertKey(layer: mixture.layer, expert: expert)] = [[width, hidden], [width, hidden], [hidden, width]]
            }
        }
        let cache = ModelDirectory(directory).expertCache
        let manifestURL = cache.appendingPathComponent(manifestName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw StrippedCheckpointError.cacheMissing(directory: directory.path)
        }
        func invalid(_ reason: String) -> StrippedCheckpointError { .cacheInvalid(directory: directory.path, reason: reason) }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: manifestURL))
        } catch {
            throw invalid("\(manifestURL.path) is not a cluster manifest")
        }
        guard manifest.format == "chronos-expert-cache" else { throw invalid("\(manifestURL.path) has format \(manifest.format)") }
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
        var experts: [ExpertKey: ExpertWeights] = [:], records: [ExpertKey: ExpertVerification.Record] = [:]
        for entry in manifest.experts {
            let key = ExpertKey(layer: entry.layer, expert: entry.expert)
            guard let expected = shapes[key] else { continue }
            guard entry.file >= 0, entry.file < files.count, entry.tensors.map(\.projection) == ["gate", "up", "down"] else {
                throw invalid("the manifest's entry of \(key) is inconsistent")
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
                    directory: directory.path, reason: "expert \(key) has shape \(tensor.shape), config.json implies \(shape)")
            }
            guard tensors.allSatisfy({ $0.dtype.isFloatingPoint }) else { throw invalid("expert \(key) is not of a float dtype") }
            let weights = ExpertWeights(gate: tensors[0], up: tensors[1], down: tensors[2])
            guard let hash = UInt64(entry.hash, radix: 16), entry.length == weights.byteCount else {
                throw invalid("the manifest's entry of \(key) has no valid hash or length")
            }
            experts[key] = weights
            records[key] = ExpertVerification.Record(file: files[entry.file].url.path, hash: hash, length: entry.length)
        }
        if let absent = shapes.keys.first(where: { experts[$0] == nil }) {
            throw StrippedCheckpointError.cacheStale(directory: directory.path, reason: "it has no expert \(absent), which config.json implies")
        }
        return ResidentExperts(experts, verification: ExpertVerification(records: records))
    }
}

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
        let (directory, state, reason): (String, String, String?) = switch self {
        case let .cacheMissing(directory): (directory, "missing", nil)
        case let .cacheStale(directory, reason): (directory, "stale", reason)
        case let .cacheInvalid(directory, reason): (directory, "invalid", reason)
        }
        let remedy = switch self {
        case .cacheStale: "restore the config.json the model was packed with, or re-pack from the full checkpoint"
        default: "restore expert_cache/ from the model's source, or re-pack from the full checkpoint"
        }
        return "\(directory): the routed experts were stripped from the checkpoint and live in expert_cache/, which is \(state)"
            + (reason.map { " (\($0))" } ?? "") + ": " + remedy
    }
}
