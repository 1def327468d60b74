import ChronosFormats

/// Why a model could not be loaded or run; each case names the file, field or tensor at fault.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// `config.json` names a `model_type` that no architecture here implements.
    case unknownModelType(String, known: [String])
    /// The checkpoint in `directory` has no tensor called `name`.
    case missingTensor(name: String, directory: String)
    /// The checkpoint in `directory` has a tensor `name` that the configuration does not use
    /// (its weights would be silently ignored).
    case unusedTensor(name: String, directory: String)
    /// A checkpoint tensor has a shape other than the configuration implies.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A checkpoint tensor is not of a floating-point dtype the layers compute with.
    case unsupportedDType(tensor: String, dtype: String)
    /// `file` is missing, is not JSON, or has a missing or invalid `field`.
    case malformedConfig(file: String, field: String, reason: String)
    /// `file` asks for a feature (a RoPE scaling, an activation, …) that is not implemented.
    case unsupportedConfig(file: String, field: String, value: String)
    /// A token id outside `0..<vocabSize`.
    case tokenOutOfRange(id: Int, vocabSize: Int)
    /// A cache made for a model with another number of layers.
    case cacheMismatch(expectedLayers: Int, foundLayers: Int)
    /// Lookahead predictions were asked of a model without a lookahead head.
    case noLookaheadHead(modelType: String)
    /// The checkpoint in `directory` was stripped of its routed experts, which live only in its
    /// expert cache, and no expert provider was given.
    case expertsInCache(directory: String)
    /// One pass was given the same cache for two sequences.
    case sharedCache
    /// A router gave probabilities that are not finite: the weights or the input hold NaN or infinity.
    case nonFiniteRouting(layer: Int)

    /// A one-line explanation naming what is wrong and where.
    public var description: String {
        switch self {
        case .unknownModelType(let type, let known):
            "unknown model_type '\(type)'; known model types: \(known.joined(separator: ", "))"
        case .missingTensor(let name, let directory):
            "\(directory): the checkpoint has no tensor named '\(name)'"
        case .unusedTensor(let name, let directory):
            "\(directory): the checkpoint has a tensor '\(name)' that config.json does not use; config.json does not match the checkpoint"
        case .shapeMismatch(let tensor, let expected, let found):
            "tensor '\(tensor)' has shape \(found) but the configuration implies \(expected)"
        case .unsupportedDType(let tensor, let dtype):
            "tensor '\(tensor)' has dtype \(dtype); model weights must be f32, f16 or bf16"
        case .malformedConfig(let file, let field, let reason):
            field.isEmpty ? "\(file): \(reason)" : "\(file): field '\(field)': \(reason)"
        case .unsupportedConfig(let file, let field, let value):
            "\(file): field '\(field)' = \(value) is not supported"
        case .tokenOutOfRange(let id, let vocabSize):
            "token id \(id) is outside the vocabulary of \(vocabSize)"
        case .cacheMismatch(let expectedLayers, let foundLayers):
            "the cache holds \(foundLayers) layers but the model has \(expectedLayers); make it with the model's makeCache()"
        case .noLookaheadHead(let modelType):
            "a '\(modelType)' model has no lookahead head to predict with"
        case .nonFiniteRouting(let layer):
            "the router of layer \(layer) gave probabilities that are not finite numbers: the weights or the input hold NaN or infinity"
        case .sharedCache:
            "a forward pass was given one cache for two sequences; every sequence needs its own (makeCache())"
        case .expertsInCache(let directory):
            "\(directory): the checkpoint's routed experts live in \(ModelDirectory.Name.expertCache)/; load it through ChronosStorage (ModelLoader.load), which reads them from there, or pass an expert provider"
        }
    }
}
