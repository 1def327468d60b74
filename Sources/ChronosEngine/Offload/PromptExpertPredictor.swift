import ChronosModel
import ChronosRouting
import ChronosTensor

/// Predicts, from the prompt, the (layer, expert) pairs the whole generation will use, so they
/// can be loaded before decoding needs them. It is asked during the prefill, as soon as decoder
/// layer `inputLayer` has run over the prompt, so the loads overlap the rest of the prefill.
public protocol PromptExpertPredictor: AnyObject {
    /// The decoder layer after which it reads the prompt's hidden states.
    var inputLayer: Int { get }

    /// The pairs to load, most likely first, whose bytes fit in `budget`, for a prompt whose
    /// hidden states after `inputLayer` are `hidden` (`[tokens, hidden]`).
    func predict(hidden: Tensor, budget: Int) -> [ExpertKey]
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

    /// The classifier's input layer.
    public var inputLayer: Int { classifier.inputLayer }

    /// The classifier's hot set for the prompt.
    public func predict(hidden: Tensor, budget: Int) -> [ExpertKey] {
        let scores = classifier.scores(hidden: hidden).filter { bytes[$0.key] != nil }
        return ExpertPredictor.hotSet(scores: scores, bytes: { self.bytes[$0]! }, budget: budget)
    }
}
