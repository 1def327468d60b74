import ChronosFormats
import ChronosTensor

/// Tensors taken from a checkpoint by name, each checked against the shape the configuration
/// implies, with a running count of what was taken.
final class CheckpointWeights {
    let checkpoint: SafetensorsCheckpoint
    /// Elements of every tensor loaded so far.
    private(set) var parameterCount = 0
    /// Bytes of every tensor loaded so far.
    private(set) var byteCount = 0

    init(_ checkpoint: SafetensorsCheckpoint) {
        self.checkpoint = checkpoint
    }

    /// The tensor `name`, which must exist with `shape` and a float dtype.
    func load(_ name: String, shape: [Int]) throws -> Tensor {
        guard checkpoint.contains(name) else {
            throw ModelError.missingTensor(name: name, directory: checkpoint.directory.path)
        }
        let tensor = try checkpoint.tensor(named: name)
        guard tensor.dtype.isFloatingPoint else {
            throw ModelError.unsupportedDType(tensor: name, dtype: tensor.dtype.rawValue)
        }
        guard tensor.shape == shape else {
            throw ModelError.shapeMismatch(tensor: name, expected: shape, found: tensor.shape)
        }
        parameterCount += tensor.count
        byteCount += tensor.byteCount
        return tensor
    }

    /// A linear layer's weight `[outFeatures, inFeatures]` and, when `bias`, its bias `[outFeatures]`.
    func linear(_ prefix: String, out: Int, in inFeatures: Int, bias: Bool = false) throws -> Linear {
        Linear(weight: try load("\(prefix).weight", shape: [out, inFeatures]),
               bias: bias ? try load("\(prefix).bias", shape: [out]) : nil)
    }

    /// Every routed expert of the MoE layers, checked against `hidden` and each layer's width.
    func experts(_ configuration: TransformerConfiguration, keys: CheckpointKeys) throws -> ResidentExperts {
        var experts: [ExpertKey: ExpertWeights] = [:]
        let hidden = configuration.hiddenSize
        for (layer, block) in configuration.feedForward.enumerated() {
            guard case let .mixture(mixture) = block else { continue }
            let width = mixture.intermediateSize
            for expert in 0..<mixture.expertCount {
                let key = ExpertKey(layer: layer, expert: expert)
                let names = keys.expert(key)
                experts[key] = ExpertWeights(gate: try load(names.gate, shape: [width, hidden]),
                                             up: try load(names.up, shape: [width, hidden]),
                                             down: try load(names.down, shape: [hidden, width]))
            }
        }
        return ResidentExperts(experts)
    }
}
