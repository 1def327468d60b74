import ChronosModel
import ChronosTensor

/// How well a predictor of future experts does, beside the controls that expose skill that
/// is only temporal reuse or popularity (DESIGN §4).
public struct PredictionQuality: Codable, Sendable, Equatable {
    /// Mean over (position, MoE layer) of |predicted ∩ actual| / |actual| for token t + offset.
    public var recall: Double
    /// The same predictions scored against the experts of a random other position (shuffled future).
    public var shuffledRecall: Double
    /// Recall of always predicting each layer's most frequent experts (frequencies from other text).
    public var frequencyRecall: Double
    /// Recall of predicting that token t + offset uses token t's experts (temporal reuse).
    public var reuseRecall: Double
    /// Positions scored.
    public var positions: Int
}

/// Scores the lookahead head of a Chronos model on held-out text.
public enum LookaheadEvaluation {
    /// Recall@k (k = experts per token) of the head's offset-`offset` predictions against the
    /// experts each MoE layer actually chose at t + offset, on `sequences`; the frequency
    /// baseline counts expert use on `reference` sequences.
    public static func evaluate(_ model: any LanguageModel, sequences: [[Int]], reference: [[Int]], offset: Int = 1,
                                seed: UInt64 = 7) throws -> PredictionQuality {
        let k = model.summary.expertsPerToken, experts = model.summary.expertsPerLayer.max() ?? 0
        // Most frequent experts per layer on the reference text.
        var counts: [Int: [Int]] = [:]
        for ids in reference {
            let output = try model.forward(ids, cache: model.makeCache(), options: ForwardOptions(recordsRouting: true))
            for routing in output.layers {
                for chosen in routing.selectedExperts {
                    for e in chosen { counts[routing.layer, default: [Int](repeating: 0, count: experts)][e] += 1 }
                }
            }
        }
        let frequent = counts.mapValues { c in Array(c.indices.sorted { c[$0] > c[$1] || (c[$0] == c[$1] && $0 < $1) }.prefix(k)) }

        var predicted: [[Int]] = [], actual: [[[Int]]] = [], current: [[[Int]]] = [], layers: [Int] = []
        for ids in sequences {
            let output = try model.forward(ids, cache: model.makeCache(), options: .recordingAll)
            guard let lookahead = output.lookahead else { throw ModelError.noLookaheadHead(modelType: model.summary.modelType) }
            layers = output.layers.map(\.layer)
            let predictions = lookahead.predictedExperts(offset: offset, count: k)
            for t in 0..<max(ids.count - offset, 0) {
                predicted.append(predictions[t])
                actual.append(output.layers.map { $0.selectedExperts[t + offset] })
                current.append(output.layers.map { $0.selectedExperts[t] })
            }
        }
        func overlap(_ p: [Int], _ a: [Int]) -> Double { Double(Set(p).intersection(a).count) / Double(max(a.count, 1)) }
        var random = SplitMix64(seed: seed)
        let shuffled = actual.indices.shuffled(using: &random)
        var recall = 0.0, shuffledRecall = 0.0, frequencyRecall = 0.0, reuseRecall = 0.0, scored = 0
        for i in predicted.indices {
            for (l, layer) in layers.enumerated() {
                recall += overlap(predicted[i], actual[i][l])
                shuffledRecall += overlap(predicted[i], actual[shuffled[i]][l])
                frequencyRecall += overlap(frequent[layer] ?? [], actual[i][l])
                reuseRecall += overlap(current[i][l], actual[i][l])
                scored += 1
            }
        }
        let n = Double(max(scored, 1))
        return PredictionQuality(recall: recall / n, shuffledRecall: shuffledRecall / n, frequencyRecall: frequencyRecall / n,
                                 reuseRecall: reuseRecall / n, positions: predicted.count)
    }
}
