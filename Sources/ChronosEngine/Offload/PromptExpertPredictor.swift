import ChronosModel
import ChronosRouting
import ChronosTensor

/// Predicts, from the prompt, the (layer, expert) pairs the whole generation will use, so they
/// can be loaded before decoding needs them. It is asked during the prefill, as soon as decoder
/// layer 0 has run over the prompt, so the loads overlap the rest of the prefill.
public protocol PromptExpertPredictor: AnyObject {
    /// The pairs to load, most likely first, whose bytes fit in `budget`, for a prompt whose
    /// block-0 hidden states are `blockZeroHidden` (`[tokens, hidden]`).
    func predict(blockZeroHidden: Tensor, budget: Int) -> [ExpertKey]
}

/// The intent classifier behind the prompt-level interface: its scores, turned into a hot set
/// under the byte budget by `ExpertPredictor`.
public final class IntentExpertPredictor: PromptExpertPredictor {
    /// The classifier.
    public let classifier: IntentClassifier
    private let bytes: [ExpertKey: Int]

    /// A predictor over `classifier`, with each pair's size in bytes from `bytes`.
    public init(classifier: IntentClassifier, bytes: [ExpertKey: Int]) {
        self.classifier = classifier
        self.bytes = bytes
    }

    /// The classifier's hot set for the prompt.
    public func predict(blockZeroHidden: Tensor, budget: Int) -> [ExpertKey] {
        let scores = classifier.scores(blockZeroHidden: blockZeroHidden).filter { bytes[$0.key] != nil }
        return ExpertPredictor.hotSet(scores: scores, bytes: { self.bytes[$0]! }, budget: budget)
    }
}
