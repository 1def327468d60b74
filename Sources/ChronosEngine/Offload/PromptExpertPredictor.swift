import ChronosModel

/// Predicts, once the prompt has been read, the (layer, expert) pairs the whole generation will
/// use, so they can be loaded before decoding needs them. A learned intent classifier will sit
/// behind the same interface.
public protocol PromptExpertPredictor: AnyObject {
    /// At most `limit` pairs, most likely first, for a prompt whose prefill made `routing`.
    func predict(promptIds: [Int], routing: [RoutingDecision], limit: Int) -> [ExpertKey]
}

/// The first prompt-level predictor: the experts the prompt itself used, most often routed to
/// first (ties: larger total router probability, then lower layer and index), on the view that
/// a generation keeps to its prompt's topic.
public final class ObservedRoutingPredictor: PromptExpertPredictor {
    /// A predictor with no state.
    public init() {}

    /// The prompt's most used (layer, expert) pairs, at most `limit`.
    public func predict(promptIds: [Int], routing: [RoutingDecision], limit: Int) -> [ExpertKey] {
        var counts: [ExpertKey: (uses: Int, mass: Float)] = [:]
        for decision in routing {
            for expert in decision.experts {
                let key = ExpertKey(layer: decision.layer, expert: expert)
                let probability = expert < decision.probabilities.count ? decision.probabilities[expert] : 0
                let old = counts[key] ?? (0, 0)
                counts[key] = (old.uses + 1, old.mass + probability)
            }
        }
        let ranked = counts.sorted { a, b in
            if a.value.uses != b.value.uses { return a.value.uses > b.value.uses }
            if a.value.mass != b.value.mass { return a.value.mass > b.value.mass }
            return (a.key.layer, a.key.expert) < (b.key.layer, b.key.expert)
        }
        return ranked.prefix(max(0, limit)).map(\.key)
    }
}
