import ChronosModel
import ChronosRouting
import ChronosTensor

/// Scores the predictors of one generation against the experts each token actually used.
///
/// The routing observer reports every token's (layer, expert) pairs; predictions are recorded
/// when made and scored once the generation ends, when every future is known. Only tokens the
/// generation computed are scored (the last generated token is never run, so predictions for it
/// are not scored).
public final class PredictionScorer {
    /// The pairs each position used.
    public private(set) var used: [Int: Set<ExpertKey>] = [:]
    private var counts: [ExpertKey: Int] = [:]
    private var lookahead: [(from: Int, predictions: [[ExpertKey]], frequency: [[ExpertKey]])] = []
    private var nextLayer: [(position: Int, layer: Int, keys: [ExpertKey])] = []
    private var repetition: [(position: Int, keys: [ExpertKey])] = []
    private var promptSet: [ExpertKey]?
    private var promptLength = 0
    private let totalPairs: Int
    private let seed: UInt64

    /// A scorer for a model with `totalPairs` routed (layer, expert) pairs; `seed` fixes the shuffle.
    public init(totalPairs: Int, seed: UInt64 = 0x5EED) {
        self.totalPairs = totalPairs
        self.seed = seed
    }

    /// Records one routing decision (call from the cache's routing observer).
    public func observe(_ decision: RoutingDecision) {
        for expert in decision.experts {
            let key = ExpertKey(layer: decision.layer, expert: expert)
            if used[decision.position, default: []].insert(key).inserted { counts[key, default: 0] += 1 }
        }
    }

    /// Records the lookahead predictions made after the token at `position` (`[k − 1]` for
    /// position + k), with a frequency baseline of the same sizes taken from the counts so far.
    public func recordLookahead(after position: Int, _ predictions: [[ExpertKey]]) {
        guard !predictions.isEmpty else { return }
        let ranked = counts.sorted {
            $0.value != $1.value ? $0.value > $1.value : ($0.key.layer, $0.key.expert) < ($1.key.layer, $1.key.expert)
        }
        .map(\.key)
        lookahead.append((position, predictions, predictions.map { Array(ranked.prefix(Set($0).count)) }))
    }

    /// Records the experts previewed for MoE layer `layer` of the token at `position`.
    public func recordNextLayer(position: Int, layer: Int, _ keys: [ExpertKey]) {
        nextLayer.append((position, layer, keys))
    }

    /// Records what the repetition of earlier text predicted for the decode step at `position`
    /// (empty when nothing matched), before that step ran.
    public func recordRepetition(at position: Int, _ keys: [ExpertKey]) {
        repetition.append((position, keys))
    }

    /// Records the prompt-level set predicted for a prompt of `promptLength` tokens.
    public func recordPromptSet(_ keys: [ExpertKey], promptLength: Int) {
        promptSet = keys
        self.promptLength = promptLength
    }

    /// Scores every recorded prediction against the futures now known.
    public func report() -> PredictionReport {
        var report = PredictionReport()
        let horizon = lookahead.map(\.predictions.count).max() ?? 0
        report.lookahead = Array(repeating: PredictionScore(), count: horizon)
        report.lookaheadShuffled = report.lookahead
        report.lookaheadFrequency = report.lookahead
        report.lookaheadPrevious = report.lookahead
        let decodePositions = used.keys.filter { $0 >= promptLength }.sorted()
        var generator = SplitMix64(seed: seed)
        for record in lookahead {
            for (index, predicted) in record.predictions.enumerated() {
                guard let actual = used[record.from + index + 1] else { continue }
                let predictedSet = Set(predicted)
                report.lookahead[index].add(predicted: predictedSet, actual: actual)
                let frequency = Set(record.frequency[index])
                report.lookaheadFrequency[index].add(predicted: frequency, actual: actual)
                if let previous = used[record.from] {
                    report.lookaheadPrevious[index].add(predicted: previous, actual: actual)
                }
                if !decodePositions.isEmpty {
                    let other = decodePositions[Int(generator.next() % UInt64(decodePositions.count))]
                    report.lookaheadShuffled[index].add(predicted: predictedSet, actual: used[other]!)
                }
            }
        }
        for record in nextLayer {
            guard let used = used[record.position] else { continue }
            let actual = used.filter { $0.layer == record.layer }, predicted = Set(record.keys)
            report.nextLayer.add(predicted: predicted, actual: actual)
        }
        for record in repetition {
            guard let actual = used[record.position] else { continue }
            let predicted = Set(record.keys)
            report.repetition.add(predicted: predicted, actual: actual)
        }
        if let promptSet {
            let decodeUsed = decodePositions.reduce(into: Set<ExpertKey>()) { $0.formUnion(used[$1]!) }
            if !decodeUsed.isEmpty {
                let set = Set(promptSet)
                report.prompt.add(predicted: set, actual: decodeUsed)
                let expected = totalPairs > 0 ? Int((Double(set.count) * Double(decodeUsed.count) / Double(totalPairs)).rounded()) : 0
                report.promptChance.add(hits: expected, predicted: set.count, actual: decodeUsed.count)
            }
        }
        return report
    }
}
