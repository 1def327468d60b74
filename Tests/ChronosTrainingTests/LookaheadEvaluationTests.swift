import ChronosModel
import ChronosTensor
import ChronosTraining
import XCTest

final class LookaheadEvaluationTests: XCTestCase {
    /// Every layer chooses k experts per token, so the summed score's recall is the mean over
    /// (position, MoE layer) of |predicted ∩ chosen| / k, computed here from one forward pass.
    func testHeadRecallIsTheMeanOverlapWithTheExpertsChosenAtTPlusK() throws {
        let configuration = ChronosConfiguration(
            vocabSize: 40, hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1,
            headDim: 8, kvLatentDim: 8, ropeDim: 4, slidingWindow: 8, experts: 4,
            expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 16,
            sharedExpertIntermediateSize: 16, lookaheadSteps: 2)
        let model = try TransformerLanguageModel(
            configuration: configuration,
            weights: try TransformerLanguageModel.initialize(configuration: configuration, seed: 5))
        let sequences = (0..<3).map { s in (0..<9).map { (s * 11 + $0 * 3 + $0 * $0) % 40 } }
        let reference = [(0..<12).map { ($0 * 7) % 40 }]
        for offset in 1...2 {
            let row = try LookaheadEvaluation.evaluate(model, sequences: sequences, reference: reference, offset: offset)
            var overlap = 0.0, scored = 0
            for ids in sequences {
                let output = try model.forward(ids, cache: model.makeCache(), options: .recordingAll)
                let predictions = try XCTUnwrap(output.lookahead).predictedExperts(offset: offset, count: 2)
                for t in 0..<(ids.count - offset) {
                    for routing in output.layers {
                        let chosen = routing.selectedExperts[t + offset]
                        overlap += Double(Set(predictions[t]).intersection(chosen).count) / Double(chosen.count)
                        scored += 1
                    }
                }
            }
            XCTAssertEqual(row.offset, offset)
            XCTAssertEqual(row.head.samples, scored, "one prediction per position and MoE layer")
            XCTAssertEqual(try XCTUnwrap(row.head.recall), overlap / Double(scored), accuracy: 1e-12)
            for control in [row.shuffled, row.frequency, row.reuse] {
                XCTAssertEqual(control.samples, scored)
                XCTAssertEqual(control.actual, 2 * scored)
            }
        }
    }
}
