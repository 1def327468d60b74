import ChronosModel
import ChronosTensor

/// Runs a model over token sequences and records its routing as an `ActivationTrace`.
///
/// Routing and the hidden state come from the forward pass's output, so every architecture is
/// traced the same way.
public enum ActivationTracer {
    /// Traces `sequences`, each run from an empty cache in one forward pass, recording the
    /// hidden state after decoder layer `hiddenLayer`.
    public static func trace(
        _ model: any LanguageModel, sequences: [[Int]], hiddenLayer: Int,
        progress: ((Int) -> Void)? = nil
    ) throws -> ActivationTrace {
        let summary = model.summary
        guard summary.expertsPerLayer.indices.contains(hiddenLayer) else {
            throw ActivationTracerError.noSuchLayer(hiddenLayer, layers: summary.expertsPerLayer.count)
        }
        let moeLayers = summary.expertsPerLayer.enumerated().filter { $0.element > 0 }.map(\.offset)
        let totalExperts = summary.expertsPerLayer.reduce(0, +)
        let expertBytes = totalExperts > 0 ? model.parameterCounts.expertBytes / totalExperts : 0
        let layers = moeLayers.map { ActivationTrace.Layer(layer: $0, experts: summary.expertsPerLayer[$0], expertBytes: expertBytes) }
        let slot = Dictionary(uniqueKeysWithValues: moeLayers.enumerated().map { ($0.element, $0.offset) })
        let hiddenSize = summary.hiddenSize
        let k = summary.expertsPerToken

        var tokens: [ActivationTrace.Token] = []
        for (index, ids) in sequences.enumerated() where !ids.isEmpty {
            var experts = [[[Int]]](repeating: [[Int]](repeating: [], count: moeLayers.count), count: ids.count)
            var probabilities = [[[Float]]](repeating: [[Float]](repeating: [], count: moeLayers.count), count: ids.count)
            let output = try model.forward(
                ids, cache: model.makeCache(),
                options: ForwardOptions(recordsRouting: true, hiddenLayers: [hiddenLayer]))
            for routing in output.layers {
                guard let layer = slot[routing.layer] else { continue }
                let distribution = routing.routerProbabilities.floats, width = routing.routerProbabilities.shape[1]
                for (position, chosen) in routing.selectedExperts.enumerated() where position < ids.count {
                    experts[position][layer] = chosen
                    probabilities[position][layer] = chosen.map { distribution[position * width + $0] }
                }
            }
            let hidden = output.hidden[hiddenLayer]?.contiguous().floats ?? []
            for position in 0..<ids.count {
                guard experts[position].allSatisfy({ $0.count == k }) else {
                    throw ActivationTracerError.missingRouting(sequence: index, position: position)
                }
                let state = Array(hidden[(position * hiddenSize)..<((position + 1) * hiddenSize)])
                tokens.append(
                    ActivationTrace.Token(
                        sequence: index, position: position, id: ids[position],
                        experts: experts[position], probabilities: probabilities[position], hidden: state))
            }
            progress?(index + 1)
        }
        return ActivationTrace(
            layers: layers, expertsPerToken: k, hiddenSize: hiddenSize, hiddenLayer: hiddenLayer,
            sequenceCount: sequences.count, tokens: tokens)
    }
}

/// Why a model could not be traced.
public enum ActivationTracerError: Error, Equatable, CustomStringConvertible {
    /// A forward pass reported no routing decision for some MoE layer of a token.
    case missingRouting(sequence: Int, position: Int)
    /// The hidden state was asked for after a decoder layer the model does not have.
    case noSuchLayer(Int, layers: Int)

    public var description: String {
        switch self {
        case .noSuchLayer(let layer, let layers):
            "the model has decoder layers 0…\(layers - 1); there is no layer \(layer) to take the hidden state after"
        case .missingRouting(let sequence, let position):
            "the model reported no routing for every MoE layer at sequence \(sequence), position \(position)"
        }
    }
}
