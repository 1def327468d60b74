import ChronosModel
import ChronosRouting
import ChronosTensor

/// Predicts the experts of the next tokens from what the forward pass of token t computed, so
/// the prefetcher can load them while later tokens are computed.
///
/// The Chronos-native lookahead head is one implementation; a head trained from a trace for any
/// model (`TrainedLookaheadHead`) plugs in the same way, reading `ForwardObservation.blockZeroHidden`.
public protocol LookaheadPredictor: AnyObject {
    /// K: the furthest future token predicted.
    var horizon: Int { get }

    /// After the pass that ended at token t: `[k − 1]` holds the (layer, expert) pairs predicted
    /// for token t + k, k = 1…K, most urgent first. Empty when nothing can be predicted.
    func predict(after observation: ForwardObservation) -> [[ExpertKey]]
}

/// The Chronos-native lookahead router: its distribution over expert ids for token t + k (the
/// mean over layers of the routers it was trained against) names the same ids in every MoE
/// layer; the `expertsPerOffset` most probable are predicted, layer 0 first.
public final class ChronosLookaheadPredictor: LookaheadPredictor {
    /// K.
    public let horizon: Int
    /// Expert ids predicted per future token (in each MoE layer).
    public let expertsPerOffset: Int
    private let moeLayers: [Int]

    /// A predictor for a model of `summary` whose head predicts `horizon` tokens ahead.
    public init(summary: ModelSummary, horizon: Int, expertsPerOffset: Int) {
        self.horizon = horizon
        self.expertsPerOffset = max(1, expertsPerOffset)
        moeLayers = summary.expertsPerLayer.indices.filter { summary.expertsPerLayer[$0] > 0 }
    }

    /// A predictor for `model`'s head, predicting `expertsPerOffset` (default: top-k) ids.
    public convenience init(model: ChronosLanguageModel, expertsPerOffset: Int? = nil) {
        self.init(summary: model.summary, horizon: model.configuration.lookaheadSteps,
                  expertsPerOffset: expertsPerOffset ?? model.configuration.expertsPerToken)
    }

    /// The top ids of the head's row k, in every MoE layer, for k = 1…K.
    public func predict(after observation: ForwardObservation) -> [[ExpertKey]] {
        guard horizon > 0, let probabilities = observation.lookaheadProbabilities, probabilities.shape[0] > horizon else {
            return []
        }
        let experts = probabilities.shape[1], values = probabilities.floats
        return (1...horizon).map { k in
            let best = values.withUnsafeBufferPointer { p in
                Selection.topK(p.baseAddress! + k * experts, count: experts, k: expertsPerOffset).map(\.index)
            }
            return moeLayers.flatMap { layer in best.map { ExpertKey(layer: layer, expert: $0) } }
        }
    }
}

/// A lookahead head trained from an activation trace (`chronos train lookahead`): for each
/// future token, the `expertsPerOffset` most probable experts of every MoE layer, each layer
/// predicted on its own.
public final class TrainedLookaheadPredictor: LookaheadPredictor {
    /// The head.
    public let head: TrainedLookaheadHead
    /// Experts predicted per future token and MoE layer.
    public let expertsPerOffset: Int

    /// A predictor over `head`, predicting `expertsPerOffset` experts per layer and token.
    public init(head: TrainedLookaheadHead, expertsPerOffset: Int) {
        self.head = head
        self.expertsPerOffset = max(1, expertsPerOffset)
    }

    /// K.
    public var horizon: Int { head.steps }

    /// The top experts of every MoE layer for k = 1…K, layer order within each offset.
    public func predict(after observation: ForwardObservation) -> [[ExpertKey]] {
        guard let hidden = observation.blockZeroHidden else { return [] }
        return head.topExperts(hidden: hidden.floats, count: expertsPerOffset).map { layers in
            layers.enumerated().flatMap { slot, experts in experts.map { ExpertKey(layer: head.layers[slot], expert: $0) } }
        }
    }
}
