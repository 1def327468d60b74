import ChronosModel
import ChronosRouting
import ChronosTensor

/// What a lookahead predictor says after token t: the experts to load for the next tokens, and
/// for eviction, the chance that each expert is used by any of them.
public struct LookaheadForecast: Sendable, Equatable {
    /// `[k − 1]`: the (layer, expert) pairs predicted for token t + k, k = 1…K, most urgent first.
    public var steps: [[ExpertKey]]
    /// The chance that each (layer, expert) pair is used in tokens t + 1…t + K.
    public var chanceOfUse: [ExpertKey: Double]

    /// A forecast with every field given.
    public init(steps: [[ExpertKey]], chanceOfUse: [ExpertKey: Double]) {
        self.steps = steps
        self.chanceOfUse = chanceOfUse
    }

    /// Nothing predicted.
    public static let none = LookaheadForecast(steps: [], chanceOfUse: [:])

    /// The chance that an expert whose router picks `topK` of a layer's experts is used in at
    /// least one of the tokens whose routing distributions give it `probabilities`: each token's
    /// chance taken as `topK` times its probability (at most 1), the tokens as independent.
    static func chance(topK: Int, probabilities: [Float]) -> Double {
        1 - probabilities.reduce(1.0) { $0 * (1 - min(1, Double(topK) * Double($1))) }
    }
}

/// Predicts the experts of the next tokens from what the forward pass of token t computed, so
/// the prefetcher can load them while later tokens are computed, and the eviction can keep the
/// experts they will use.
///
/// The Chronos-native lookahead head is one implementation; a head trained from a trace for any
/// model (`TrainedLookaheadHead`) plugs in the same way, reading `ForwardObservation.hidden`.
public protocol LookaheadPredictor: AnyObject {
    /// K: the furthest future token predicted.
    var horizon: Int { get }

    /// The decoder layer after which the predictor reads token t's hidden state, so it can
    /// predict while the rest of the pass runs; nil for a predictor that needs the whole pass.
    var inputLayer: Int? { get }

    /// The forecast after the pass that ended at token t; `.none` when nothing can be predicted.
    func predict(after observation: ForwardObservation) -> LookaheadForecast

    /// The same forecast from token t's hidden state `[1, hidden]` after `inputLayer` alone,
    /// while the rest of its pass runs; nil for a predictor that needs the whole pass.
    func predict(hidden: Tensor) -> LookaheadForecast?
}

/// The Chronos-native lookahead router: its distribution over expert ids for token t + k (the
/// mean over layers of the routers it was trained against) names the same ids in every MoE
/// layer; the `expertsPerOffset` most probable are predicted, layer 0 first.
public final class ChronosLookaheadPredictor: LookaheadPredictor {
    /// K.
    public let horizon: Int
    /// Expert ids predicted per future token (in each MoE layer).
    public let expertsPerOffset: Int
    /// The least chance of use (top-k × probability) of an id it names.
    public let minimumChance: Double
    private let moeLayers: [Int]
    private let topK: Int

    /// A predictor for a model of `summary` whose head predicts `horizon` tokens ahead, naming
    /// up to `expertsPerOffset` ids per token, those of at least `minimumChance`.
    public init(summary: ModelSummary, horizon: Int, expertsPerOffset: Int, minimumChance: Double = 0) {
        self.horizon = horizon
        self.expertsPerOffset = max(1, expertsPerOffset)
        self.minimumChance = minimumChance
        topK = summary.expertsPerToken
        moeLayers = summary.expertsPerLayer.indices.filter { summary.expertsPerLayer[$0] > 0 }
    }

    /// The top ids of the head's row k that reach `minimumChance`, in every MoE layer, for
    /// k = 1…K; an id's chance of use from rows 1…K, the same in every MoE layer.
    public func predict(after observation: ForwardObservation) -> LookaheadForecast {
        guard horizon > 0, let probabilities = observation.lookaheadProbabilities, probabilities.shape[0] > horizon else {
            return .none
        }
        let experts = probabilities.shape[1], values = probabilities.floats
        let steps = (1...horizon).map { k in
            let best = values.withUnsafeBufferPointer { p in
                Selection.topK(p.baseAddress! + k * experts, count: experts, k: expertsPerOffset)
                    .filter { Double(topK) * Double($0.value) >= minimumChance }.map(\.index)
            }
            return moeLayers.flatMap { layer in best.map { ExpertKey(layer: layer, expert: $0) } }
        }
        var chance: [ExpertKey: Double] = [:]
        for expert in 0..<experts {
            let c = LookaheadForecast.chance(topK: topK, probabilities: (1...horizon).map { values[$0 * experts + expert] })
            for layer in moeLayers { chance[ExpertKey(layer: layer, expert: expert)] = c }
        }
        return LookaheadForecast(steps: steps, chanceOfUse: chance)
    }

    /// Nil: the native head is computed after the last decoder layer.
    public var inputLayer: Int? { nil }

    /// Nil: the native head is computed after the last decoder layer.
    public func predict(hidden: Tensor) -> LookaheadForecast? { nil }
}

/// A lookahead head trained from an activation trace (`chronos train lookahead`): for each
/// future token, the `expertsPerOffset` most probable experts of every MoE layer, each layer
/// predicted on its own.
public final class TrainedLookaheadPredictor: LookaheadPredictor {
    /// The head.
    public let head: TrainedLookaheadHead
    /// Experts predicted per future token and MoE layer.
    public let expertsPerOffset: Int
    /// The least chance of use (top-k × probability) of an expert it names.
    public let minimumChance: Double
    private let topK: Int

    /// A predictor over `head` for a model routing each token to `topK` experts per layer,
    /// naming up to `expertsPerOffset` experts per layer and token, those of at least
    /// `minimumChance`.
    public init(head: TrainedLookaheadHead, topK: Int, expertsPerOffset: Int, minimumChance: Double = 0) {
        self.head = head
        self.topK = topK
        self.expertsPerOffset = max(1, expertsPerOffset)
        self.minimumChance = minimumChance
    }

    /// K.
    public var horizon: Int { head.steps }

    /// The head's input layer.
    public var inputLayer: Int? { head.inputLayer }

    /// The top experts of every MoE layer for k = 1…K that reach `minimumChance`, layer order
    /// within each offset; every expert's chance of use from its layer's distributions at k = 1…K.
    public func predict(after observation: ForwardObservation) -> LookaheadForecast {
        observation.hidden[head.inputLayer].flatMap { predict(hidden: $0) } ?? .none
    }

    /// The forecast from token t's hidden state after the head's input layer, all it reads.
    public func predict(hidden: Tensor) -> LookaheadForecast? {
        let distributions = head.probabilities(hidden: hidden.floats)
        let steps = distributions.map { layers in
            layers.enumerated().flatMap { slot, distribution in
                distribution.withUnsafeBufferPointer { p in
                    Selection.topK(p.baseAddress!, count: distribution.count, k: min(expertsPerOffset, distribution.count))
                }.filter { Double(topK) * Double($0.value) >= minimumChance }.map { ExpertKey(layer: head.layers[slot], expert: $0.index) }
            }
        }
        var chance: [ExpertKey: Double] = [:]
        for (slot, layer) in head.layers.enumerated() {
            for expert in distributions[0][slot].indices {
                chance[ExpertKey(layer: layer, expert: expert)] =
                    LookaheadForecast.chance(topK: topK, probabilities: distributions.map { $0[slot][expert] })
            }
        }
        return LookaheadForecast(steps: steps, chanceOfUse: chance)
    }
}
