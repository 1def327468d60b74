/// How well predicted sets of experts matched the experts actually used, summed over the
/// predictions scored so that the scores of several tokens, sequences or runs add up: the
/// runtime's predictors, the trained predictors' held-out evaluation and the lookahead head's
/// evaluation all count with it.
///
/// For one prediction P against the set U of pairs used, with n(u) the uses of u ∈ U:
/// hits = |P ∩ U|, predicted = |P|, actual = |U|, uses = Σ_u n(u) and
/// coveredUses = Σ_{u ∈ P ∩ U} n(u); each field is the sum over the predictions scored.
public struct PredictionScore: Sendable, Equatable, Codable {
    /// Predictions scored.
    public var samples = 0
    /// Predicted pairs that were used, summed.
    public var hits = 0
    /// Pairs predicted, summed.
    public var predicted = 0
    /// Pairs used, summed.
    public var actual = 0
    /// Uses (with multiplicity) of the used pairs that were predicted, summed.
    public var coveredUses = 0
    /// Uses with multiplicity, summed.
    public var uses = 0

    /// A score of nothing yet.
    public init() {}

    /// hits / actual: the share of the pairs used that were predicted (nil before any pair was used).
    public var recall: Double? { actual > 0 ? Double(hits) / Double(actual) : nil }
    /// hits / predicted: the share of the predictions that were used (nil before any pair was predicted).
    public var precision: Double? { predicted > 0 ? Double(hits) / Double(predicted) : nil }
    /// coveredUses / uses: the hit rate the predicted sets alone would give (nil before any use).
    public var coverage: Double? { uses > 0 ? Double(coveredUses) / Double(uses) : nil }

    /// Adds one prediction scored by its counts, each pair used counted as one use.
    public mutating func add(hits: Int, predicted: Int, actual: Int) {
        add(hits: hits, predicted: predicted, actual: actual, coveredUses: hits, uses: actual)
    }

    /// Adds the prediction `predicted` against the pairs `actual` used, each once.
    public mutating func add<Key: Hashable>(predicted: Set<Key>, actual: Set<Key>) {
        add(hits: predicted.intersection(actual).count, predicted: predicted.count, actual: actual.count)
    }

    /// Adds the prediction `predicted` against the pairs used, each with its number of uses.
    public mutating func add<Key: Hashable>(predicted: Set<Key>, uses counts: [Key: Int]) {
        var hits = 0, coveredUses = 0, uses = 0
        for (key, count) in counts {
            uses += count
            if predicted.contains(key) {
                hits += 1
                coveredUses += count
            }
        }
        add(hits: hits, predicted: predicted.count, actual: counts.count, coveredUses: coveredUses, uses: uses)
    }

    /// The two scores summed.
    public func adding(_ other: PredictionScore) -> PredictionScore {
        var sum = self
        sum.samples += other.samples
        sum.hits += other.hits
        sum.predicted += other.predicted
        sum.actual += other.actual
        sum.coveredUses += other.coveredUses
        sum.uses += other.uses
        return sum
    }

    private mutating func add(hits: Int, predicted: Int, actual: Int, coveredUses: Int, uses: Int) {
        samples += 1
        self.hits += hits
        self.predicted += predicted
        self.actual += actual
        self.coveredUses += coveredUses
        self.uses += uses
    }
}
