import ChronosModel
import ChronosTensor
import Foundation

/// Scores the trace-trained predictors on held-out traces, each beside the controls that
/// expose skill that is only temporal reuse or popularity: a shuffle control (the same predictions scored against another token's or
/// prompt's future), a frequency baseline (the pairs most used in the training trace), and a
/// reuse control (what was used just before: the current token's experts for the lookahead,
/// the prompt's own experts for the intent classifier).
public enum PredictorEvaluation {
    /// Lookahead scores for one future offset k.
    public struct LookaheadRow: Sendable {
        /// k.
        public var offset: Int
        /// The head's top-n per layer.
        public var head = PredictionScore()
        /// The head's predictions scored against a shuffled future.
        public var shuffled = PredictionScore()
        /// The n most used experts of each layer in the training trace.
        public var frequency = PredictionScore()
        /// The experts token t itself used.
        public var reuse = PredictionScore()

        /// Empty scores for offset `offset`.
        public init(offset: Int) {
            self.offset = offset
        }
    }

    /// Intent scores at one prompt length.
    public struct IntentRow: Sendable {
        /// Prompt tokens.
        public var promptLength: Int
        /// Pairs in every predicted set.
        public var setSize: Int
        /// The classifier's hot set.
        public var intent = PredictionScore()
        /// Its sets scored against another prompt's generation.
        public var shuffled = PredictionScore()
        /// The most used pairs of the training trace.
        public var frequency = PredictionScore()
        /// The pairs the prompt itself used most.
        public var prompt = PredictionScore()
    }

    /// How often each (layer, expert) pair is routed to in `trace`.
    public static func usage(_ trace: ActivationTrace) -> [ExpertKey: Int] {
        counts(trace.tokens, layers: trace.layers.map(\.layer))
    }

    /// The `n` most used pairs of `usage`, ties to lower layer and expert.
    static func mostUsed(_ usage: [ExpertKey: Int], limit n: Int, layer: Int? = nil) -> [ExpertKey] {
        usage.filter { layer == nil || $0.key.layer == layer }
            .sorted { a, b in a.value != b.value ? a.value > b.value : (a.key.layer, a.key.expert) < (b.key.layer, b.key.expert) }
            .prefix(n).map(\.key)
    }

    /// Scores `head` on `heldOut`, predicting `n` experts per layer and offset; `training`
    /// gives the frequency baseline.
    public static func lookahead(
        _ head: TrainedLookaheadHead, heldOut: ActivationTrace, training: ActivationTrace,
        n: Int, seed: UInt64 = 0
    ) -> [LookaheadRow] {
        let usage = usage(training)
        let layers = heldOut.layers.map(\.layer)
        let frequent = layers.map { Set(mostUsed(usage, limit: n, layer: $0)) }
        var rows = (1...head.steps).map { LookaheadRow(offset: $0) }
        var predictions: [[[Set<ExpertKey>]]] = []  // per (token, k): per layer
        var futures: [[[[Int: Int]]]] = []  // per (token, k): per layer, the experts used
        func keys(_ experts: [Int], _ slot: Int) -> [ExpertKey: Int] {
            Dictionary(experts.map { (ExpertKey(layer: layers[slot], expert: $0), 1) }, uniquingKeysWith: +)
        }
        for sequence in heldOut.sequences() {
            for t in 0..<(sequence.count - head.steps) {
                let top = head.topExperts(hidden: sequence[t].hidden, count: n)
                var predicted: [[Set<ExpertKey>]] = [], future: [[[Int: Int]]] = []
                for k in 1...head.steps {
                    let target = sequence[t + k]
                    var perLayer: [Set<ExpertKey>] = [], used: [[Int: Int]] = []
                    for slot in layers.indices {
                        let set = Set(top[k - 1][slot].map { ExpertKey(layer: layers[slot], expert: $0) })
                        perLayer.append(set)
                        let truth = keys(target.experts[slot], slot)
                        used.append(Dictionary(uniqueKeysWithValues: truth.map { ($0.key.expert, $0.value) }))
                        rows[k - 1].head.add(predicted: set, uses: truth)
                        rows[k - 1].frequency.add(predicted: frequent[slot], uses: truth)
                        rows[k - 1].reuse.add(predicted: Set(keys(sequence[t].experts[slot], slot).keys), uses: truth)
                    }
                    predicted.append(perLayer)
                    future.append(used)
                }
                predictions.append(predicted)
                futures.append(future)
            }
        }
        var random = SplitMix64(seed: seed)
        let permutation = shuffledIndices(predictions.count, &random)
        for (index, other) in permutation.enumerated() {
            for k in 0..<head.steps {
                for slot in layers.indices {
                    let used = futures[other][k][slot]
                    let truth = Dictionary(uniqueKeysWithValues: used.map { (ExpertKey(layer: layers[slot], expert: $0.key), $0.value) })
                    rows[k].shuffled.add(predicted: predictions[index][k][slot], uses: truth)
                }
            }
        }
        return rows
    }

    /// Scores `classifier` on `heldOut`: for every sequence and prompt length, the hot set of
    /// `setSize` pairs (equal expert sizes) against the pairs the next `classifier.horizon`
    /// tokens use; `training` gives the frequency baseline.
    public static func intent(
        _ classifier: IntentClassifier, heldOut: ActivationTrace, training: ActivationTrace,
        promptLengths: [Int], setSize: Int, seed: UInt64 = 0
    ) -> [IntentRow] {
        let frequent = Set(mostUsed(usage(training), limit: setSize))
        let layers = heldOut.layers.map(\.layer)
        let horizon = max(1, classifier.horizon)
        return promptLengths.map { length in
            var row = IntentRow(promptLength: length, setSize: setSize)
            var sets: [Set<ExpertKey>] = [], futures: [[ExpertKey: Int]] = []
            for sequence in heldOut.sequences() where sequence.count >= length + horizon {
                let prompt = Array(sequence[0..<length]), future = Array(sequence[length..<(length + horizon)])
                let features = IntentClassifier.features(prompt)
                let scores = classifier.scores(features: features)
                let set = Set(ExpertPredictor.hotSet(scores: scores, bytes: { _ in 1 }, budget: setSize))
                let used = counts(future, layers: layers)
                row.intent.add(predicted: set, uses: used)
                row.frequency.add(predicted: frequent, uses: used)
                row.prompt.add(predicted: Set(mostUsed(counts(prompt, layers: layers), limit: setSize)), uses: used)
                sets.append(set)
                futures.append(used)
            }
            var random = SplitMix64(seed: seed)
            for (index, other) in shuffledIndices(sets.count, &random).enumerated() {
                row.shuffled.add(predicted: sets[index], uses: futures[other])
            }
            return row
        }
    }

    /// Uses of each (layer, expert) pair by `tokens`.
    static func counts(_ tokens: [ActivationTrace.Token], layers: [Int]) -> [ExpertKey: Int] {
        var counts: [ExpertKey: Int] = [:]
        for token in tokens {
            for (slot, experts) in token.experts.enumerated() {
                for expert in experts { counts[ExpertKey(layer: layers[slot], expert: expert), default: 0] += 1 }
            }
        }
        return counts
    }

    /// A seeded permutation of 0..<count that moves every element when count > 1 (a
    /// derangement by rotation of a shuffle).
    public static func shuffledIndices(_ count: Int, _ random: inout SplitMix64) -> [Int] {
        guard count > 1 else { return Array(0..<count) }
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(random.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        var result = [Int](repeating: 0, count: count)
        for (position, element) in order.enumerated() { result[element] = order[(position + 1) % count] }
        return result
    }
}
