import ChronosModel
import ChronosTensor

/// Runs a model over token sequences and records its routing as an `ActivationTrace`.
///
/// Routing comes from the cache's `routingObserver` and the hidden state from its
/// `hiddenObserver`, so every architecture is traced the same way.
public enum ActivationTracer {
    /// Traces `sequences`, each run from an empty cache in one forward pass, recording the
    /// hidden state after decoder layer `hiddenLayer`.
    public static func trace(_ model: any LanguageModel, sequences: [[Int]], hiddenLayer: Int,
                             progress: ((Int) -> Void)? = nil) throws -> ActivationTrace {
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
            let cache = model.makeCache()
            cache.routingObserver = { decision in
                guard let layer = slot[decision.layer], decision.position >= 0, decision.position < ids.count else { return }
                experts[decision.position][layer] = decision.experts
                probabilities[decision.position][layer] = decision.experts.map { decision.probabilities[$0] }
            }
            var hidden: [Float] = []
            cache.hiddenObserver = { layer, state in if layer == hiddenLayer { hidden = state.contiguous().floats } }
            _ = try model.forward(ids, cache: cache)
            cache.routingObserver = nil
            cache.hiddenObserver = nil
            for position in 0..<ids.count {
                guard experts[position].allSatisfy({ $0.count == k }) else {
                    throw ActivationTracerError.missingRouting(sequence: index, position: position)
                }
                let state = Array(hidden[(position * hiddenSize)..<((position + 1) * hiddenSize)])
                tokens.append(ActivationTrace.Token(sequence: index, position: position, id: ids[position],
                                                    experts: experts[position], probabilities: probabilities[position], hidden: state))
            }
            progress?(index + 1)
        }
        return ActivationTrace(layers: layers, expertsPerToken: k, hiddenSize: hiddenSize, hiddenLayer: hiddenLayer,
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
        case let .noSuchLayer(layer, layers):
            "the model has decoder layers 0…\(layers - 1); there is no layer \(layer) to take the hidden state after"
        case let .missingRouting(sequence, position):
            "the model reported no routing for every MoE layer at sequence \(sequence), position \(position)"
        }
    }
}
