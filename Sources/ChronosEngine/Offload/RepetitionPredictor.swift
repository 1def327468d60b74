import ChronosModel

/// Predicts the routing of the coming tokens when the text repeats itself: text that reads as
/// it did before is routed as it was before.
///
/// It keeps the generation's tokens (prompt included) and the (layer, expert) pairs each
/// position was routed to. Before a decode step runs token x, it looks for the earlier position
/// of x whose preceding tokens match the current ones longest; when at least `minimumMatch`
/// tokens match (x included), the pairs of that position and of the ones after it predict this
/// step and the next (`[0]` for this step, `[k]` for k steps later), as far as the history
/// goes and at most `horizon` steps. Loops in generated text, quotations of the prompt and
/// recurring phrases all match; new text predicts nothing. The expert store scores the
/// predictions of each match length on their own record, so short matches are loaded only if
/// they prove as reliable as long ones.
public final class RepetitionPredictor {
    /// What the history predicts for the last recorded token's step and the ones after it.
    public struct Prediction: Equatable {
        /// `[k]`: the pairs predicted k steps after the current one.
        public var steps: [[ExpertKey]]
        /// Tokens that matched, at most `longMatch`: longer matches predict better, and each
        /// length is scored on its own record.
        public var matched: Int
    }

    /// Matches of this many tokens or more are scored together.
    public static let longMatch = 6

    /// Tokens that must match (the current one included) before the history is trusted.
    public let minimumMatch: Int
    /// Steps predicted at most (this one included).
    public let horizon: Int
    private var tokens: [Int] = []
    private var routing: [[ExpertKey]] = []
    private var positions: [Int: [Int]] = [:]
    /// Earlier positions of the token examined, most recent first: enough for any phrase that
    /// recurs, bounded for long contexts.
    private static let candidates = 256

    /// A predictor trusting matches of `minimumMatch` tokens, predicting `horizon` steps.
    public init(minimumMatch: Int = 3, horizon: Int = 8) {
        self.minimumMatch = max(1, minimumMatch)
        self.horizon = max(1, horizon)
    }

    /// Records the tokens of a forward pass starting at `position`.
    public func append(_ ids: [Int], at position: Int) {
        for (index, id) in ids.enumerated() {
            let at = position + index
            while tokens.count <= at {
                tokens.append(-1)
                routing.append([])
            }
            tokens[at] = id
            positions[id, default: []].append(at)
        }
    }

    /// Records a routing decision of a recorded position.
    public func observe(_ decision: RoutingDecision) {
        guard decision.position < routing.count else { return }
        for expert in decision.experts {
            let key = ExpertKey(layer: decision.layer, expert: expert)
            if !routing[decision.position].contains(key) { routing[decision.position].append(key) }
        }
    }

    /// The pairs predicted for the last recorded token's step and the ones after it; nil when no
    /// earlier text matches `minimumMatch` tokens.
    public func predict() -> Prediction? {
        let last = tokens.count - 1
        guard last > 0, let earlier = positions[tokens[last]] else { return nil }
        var best = -1, bestLength = 0
        for j in earlier.reversed().prefix(Self.candidates + 1) where j < last {
            var length = 0
            while length <= j, tokens[j - length] == tokens[last - length] { length += 1 }
            if length > bestLength { (best, bestLength) = (j, length) }
        }
        guard bestLength >= minimumMatch else { return nil }
        return Prediction(
            steps: (0..<min(horizon, last - best)).map { routing[best + $0] },
            matched: min(bestLength, Self.longMatch))
    }
}
