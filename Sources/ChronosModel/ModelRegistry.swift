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
    static func sanitize(
        _ weights: [String: Tensor], configuration: TransformerConfiguration,
        location: String
    ) throws -> [String: Tensor]
}

extension TransformerArchitecture {
    /// The Hugging Face conventions every family here shares (see `HuggingFaceWeights`).
    static func sanitize(
        _ weights: [String: Tensor], configuration: TransformerConfiguration,
        location: String
    ) throws -> [String: Tensor] {
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
        Qwen3MoEConfiguration.self, OLMoEConfiguration.self, DeepSeekV2.self, DeepSeekV3.self,
        GptOssConfiguration.self, Glm4MoEConfiguration.self
    ]

    /// Every `model_type` that can be loaded, sorted.
    public static var modelTypes: [String] { architectures.map { $0.modelType }.sorted() }

    /// Loads the model directory `directory`: `config.json` and the safetensors checkpoint (one
    /// file or shards), or, when `directory` is a `.gguf` file, that file (`GGUFCheckpoint`).
    /// Routed experts come from `experts`; when nil, every expert is loaded from the checkpoint
    /// and stays resident. A checkpoint stripped of its experts needs a provider
    /// (`ChronosStorage.ModelLoader` supplies the expert cache); without one it is refused with
    /// `ModelError.expertsInCache`.
    public static func load(directory: URL, experts: (any ExpertProvider)? = nil) throws -> TransformerLanguageModel {
        GGUFFile.isGGUF(directory)
            ? try TransformerLanguageModel(gguf: directory, experts: experts)
            : try TransformerLanguageModel(directory: directory, experts: experts)
    }

    /// The `model_type` of `directory`'s `config.json`, whether or not it can be loaded.
    public static func modelType(directory: URL) throws -> String {
        let configURL = ModelDirectory(directory).config
        return try ConfigurationFile.decode(ConfigurationHeader.self, from: ConfigurationFile.read(configURL), file: configURL.path)
            .modelType
    }

    /// Writes `model.safetensors` of random weights for the model `directory`'s `config.json`
    /// describes, whatever its architecture, one tensor at a time as `dtype`, the same for the
    /// same `seed`: projections N(0, 0.02²) (N(0, 0.02²/2L) into the residual stream), routers
    /// with that deviation times `routerScale` (large: routing as decisive as a trained model's),
    /// norms 1, biases 0. A model of a real shape, for benchmarks.
    public static func writeRandomWeights(
        directory: URL, dtype: DType, seed: UInt64, routerScale: Float = 1, progress: ((_ written: Int, _ total: Int) -> Void)? = nil
    ) throws {
        let (_, architecture, configuration) = try configuration(directory: directory)
        let layout = configuration.parameterLayout(keys: architecture.checkpointKeys)
        var generator = SplitMix64(seed: seed)
        let entries = layout.map { SafetensorsWriter.Entry(name: $0.name, dtype: dtype, shape: $0.shape) }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: ModelDirectory(directory).checkpoint) { index in
            defer { progress?(index + 1, entries.count) }
            let spec = layout[index]
            return Tensor(
                shape: spec.shape, values: spec.randomValues(&generator, scale: spec.role == .router ? routerScale : 1), dtype: dtype)
        }
    }

    /// The routed experts `directory`'s `config.json` implies, each with the shapes of its gate,
    /// up and down projections (`[width, hidden]`, `[width, hidden]`, `[hidden, width]`), in that order.
    public static func routedExpertShapes(directory: URL) throws -> [ExpertKey: [[Int]]] {
        let configuration = try configuration(directory: directory).configuration
        var shapes: [ExpertKey: [[Int]]] = [:]
        for (layer, block) in configuration.feedForward.enumerated() {
            guard case .mixture(let mixture) = block else { continue }
            let hidden = configuration.hiddenSize, width = mixture.intermediateSize
            for expert in 0..<mixture.expertCount {
                shapes[ExpertKey(layer: layer, expert: expert)] = [[width, hidden], [width, hidden], [hidden, width]]
            }
        }
        return shapes
    }

    /// `directory`'s `config.json` as read, the architecture it names, and its validated configuration.
    static func configuration(directory: URL) throws
        -> (json: Data, architecture: any TransformerArchitecture.Type, configuration: TransformerConfiguration)
    {
        let configURL = ModelDirectory(directory).config
        let config = try ConfigurationFile.read(configURL)
        let header = try ConfigurationFile.decode(ConfigurationHeader.self, from: config, file: configURL.path)
        guard let architecture = architectures.first(where: { $0.modelType == header.modelType }) else {
            throw ModelError.unknownModelType(header.modelType, known: modelTypes)
        }
        return (config, architecture, try architecture.configuration(config: config, file: configURL.path))
    }
}

extension TransformerLanguageModel {
    /// Loads the model directory `directory` (see `ModelRegistry.load`).
    public convenience init(directory: URL, experts: (any ExpertProvider)? = nil) throws {
        let (config, architecture, configuration) = try ModelRegistry.configuration(directory: directory)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        if experts == nil, StrippedCheckpoint.isStripped(checkpoint) {
            throw ModelError.expertsInCache(directory: directory.path)
        }
        var tensors: [String: Tensor] = [:]
        for name in checkpoint.tensorNames { tensors[name] = try checkpoint.tensor(named: name) }
        let location = checkpoint.directory.path
        let weights = try architecture.sanitize(tensors, configuration: configuration, location: location)
        try self.init(
            configuration: configuration, keys: architecture.checkpointKeys, configJSON: config, weights: weights,
            experts: experts, location: location)
    }
}

/// A checkpoint written without its routed experts (`chronos pack --strip-experts`), which then
/// live only in the model directory's expert cache (`expert_cache/`, written and read by
/// `ChronosStorage`; `ExpertCacheManifest` documents its layout). Such a directory loads through
/// `ChronosStorage.ModelLoader`, which supplies the experts from the cache.
///
/// The checkpoint says so in its `__metadata__`: `chronos_routed_experts` set to the name of the
/// expert cache's folder.
public enum StrippedCheckpoint {
    /// The `__metadata__` key that says where the routed experts are.
    public static let metadataKey = "chronos_routed_experts"
    /// Its value in a stripped checkpoint: the experts are in the expert cache only.
    public static let inExpertCache = ModelDirectory.Name.expertCache

    /// Whether `checkpoint` was stripped of its routed experts.
    public static func isStripped(_ checkpoint: SafetensorsCheckpoint) -> Bool {
        checkpoint.shards.contains { $0.metadata[metadataKey] == inExpertCache }
    }

    /// Whether the checkpoint of the model directory `directory` was stripped of its routed
    /// experts (false when it has no readable checkpoint).
    public static func isStripped(directory: URL) -> Bool {
        (try? SafetensorsCheckpoint(directory: directory)).map(isStripped) ?? false
    }
}
