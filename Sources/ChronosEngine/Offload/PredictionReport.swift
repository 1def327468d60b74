import ChronosRouting

/// Prediction quality of one run or of several, each predictor beside its controls: the same
/// predictions scored against a shuffled future (what temporal reuse alone earns), a frequency
/// baseline (the most used experts so far, as many as predicted) and, for the lookahead, the
/// previous token's experts.
public struct PredictionReport: Sendable, Equatable, Codable {
    /// Lookahead predictions for token t + k against token t + k's experts, by k − 1.
    public var lookahead: [PredictionScore] = []
    /// The same predictions against the experts of a random other decode token.
    public var lookaheadShuffled: [PredictionScore] = []
    /// The most used experts so far (as many as predicted) against token t + k's experts.
    public var lookaheadFrequency: [PredictionScore] = []
    /// Token t's experts against token t + k's experts.
    public var lookaheadPrevious: [PredictionScore] = []
    /// Each layer's preview of the next MoE layer's experts against that layer's experts.
    public var nextLayer = PredictionScore()
    /// The repetition of earlier text's prediction for each decode step against its experts,
    /// over every decode step (one with no match predicts nothing): its recall is the share of
    /// the decode's experts the repetition named in time.
    public var repetition = PredictionScore()
    /// The prompt-level set against every expert the decode used.
    public var prompt = PredictionScore()
    /// What a random set of the same size would score (expected hits = |S|·|U| / all pairs).
    public var promptChance = PredictionScore()

    /// An empty report.
    public init() {}

    /// The two reports summed offset by offset.
    public func adding(_ other: PredictionReport) -> PredictionReport {
        func sum(_ a: [PredictionScore], _ b: [PredictionScore]) -> [PredictionScore] {
            (0..<max(a.count, b.count)).map { i in (i < a.count ? a[i] : PredictionScore()).adding(i < b.count ? b[i] : PredictionScore()) }
        }
        var r = PredictionReport()
        r.lookahead = sum(lookahead, other.lookahead)
        r.lookaheadShuffled = sum(lookaheadShuffled, other.lookaheadShuffled)
        r.lookaheadFrequency = sum(lookaheadFrequency, other.lookaheadFrequency)
        r.lookaheadPrevious = sum(lookaheadPrevious, other.lookaheadPrevious)
        r.nextLayer = nextLayer.adding(other.nextLayer)
        r.repetition = repetition.adding(other.repetition)
        r.prompt = prompt.adding(other.prompt)
        r.promptChance = promptChance.adding(other.promptChance)
        return r
    }
}
