import ChronosModel
import ChronosRouting
import ChronosTensor

/// Scores the lookahead head of a Chronos model on held-out text.
public enum LookaheadEvaluation {
    /// The head's top-k (k = experts per token) predictions for t + `offset` against the
    /// experts each MoE layer actually chose there, on `sequences`, one prediction per position
    /// and MoE layer, beside the controls that expose skill that is only temporal reuse or
    /// popularity: the same predictions against a random other position's experts
    /// (shuffled future), each layer's most frequent experts on the `reference` sequences, and
    /// token t's own experts (reuse).
    public static func evaluate(
        _ model: any LanguageModel, sequences: [[Int]], reference: [[Int]], offset: Int = 1,
        seed: UInt64 = 7
    ) throws -> PredictorEvaluation.LookaheadRow {
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
        var random = SplitMix64(seed: seed)
        let shuffled = actual.indices.shuffled(using: &random)
        var row = PredictorEvaluation.LookaheadRow(offset: offset)
        for i in predicted.indices {
            for (l, layer) in layers.enumerated() {
                let truth = Set(actual[i][l])
                row.head.add(predicted: Set(predicted[i]), actual: truth)
                row.shuffled.add(predicted: Set(predicted[i]), actual: Set(actual[shuffled[i]][l]))
                row.frequency.add(predicted: Set(frequent[layer] ?? []), actual: truth)
                row.reuse.add(predicted: Set(current[i][l]), actual: truth)
            }
        }
        return row
    }
}
