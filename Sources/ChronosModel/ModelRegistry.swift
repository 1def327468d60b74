import ChronosFormats
import Foundation

/// A Hugging Face architecture: its `config.json` (decoded by the conforming type), its
/// `model_type`, and how it maps onto the shared transformer.
protocol TransformerArchitecture: Decodable, Sendable {
    /// The `model_type` that selects this architecture.
    static var modelType: String { get }
    /// How this family's checkpoints name their tensors.
    static var checkpointKeys: CheckpointKeys { get }
    /// The shared transformer description; errors name the field of `file` at fault.
    func transformerConfiguration(file: String) throws -> TransformerConfiguration
}

extension TransformerArchitecture {
    /// Decodes `config` and loads the model from `checkpoint`.
    static func load(config: Data, file: String, checkpoint: SafetensorsCheckpoint,
                     experts: (any ExpertProvider)?) throws -> any LanguageModel {
        let decoded = try ConfigurationFile.decode(Self.self, from: config, file: file)
        let configuration = try decoded.transformerConfiguration(file: file)
        try configuration.validate(file: file)
        return try TransformerLanguageModel(configuration: configuration, keys: checkpointKeys, checkpoint: checkpoint,
                                            experts: experts)
    }
}

/// Maps a `config.json`'s `model_type` to the architecture that loads it.
public enum ModelRegistry {
    private static let architectures: [any TransformerArchitecture.Type] = [
        LlamaConfiguration.self, MixtralConfiguration.self, Qwen2MoEConfiguration.self, Qwen3MoEConfiguration.self,
        OLMoEConfiguration.self,
    ]

    /// Every `model_type` that can be loaded, sorted.
    public static var modelTypes: [String] { (architectures.map { $0.modelType } + [ChronosConfiguration.modelType]).sorted() }

    /// Loads the model directory `directory` (a Hugging Face architecture, or a Chronos-native
    /// model): `config.json` and the safetensors checkpoint (one file or shards). Routed experts come from `experts`; when nil, every
    /// expert is loaded from the checkpoint and stays resident.
    public static func load(directory: URL, experts: (any ExpertProvider)? = nil) throws -> any LanguageModel {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try ConfigurationFile.read(configURL)
        let header = try ConfigurationFile.decode(ConfigurationHeader.self, from: config, file: configURL.path)
        if header.modelType == ChronosConfiguration.modelType {
            return try ChronosLanguageModel(config: config, file: configURL.path, directory: directory, experts: experts)
        }
        guard let architecture = architectures.first(where: { $0.modelType == header.modelType }) else {
            throw ModelError.unknownModelType(header.modelType, known: modelTypes)
        }
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        return try architecture.load(config: config, file: configURL.path, checkpoint: checkpoint, experts: experts)
    }
}
