import ChronosEngine
import ChronosModel
import ChronosRouting
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

final class LookaheadForecastTests: XCTestCase {
    /// A head over MoE layers 0 and 2 (4 experts, top-2 routing), K = 2, whose distributions are
    /// fixed by its output bias: `distributions[k − 1][m]`.
    func head(_ distributions: [[[Float]]]) -> TrainedLookaheadHead {
        var head = TrainedLookaheadHead(hiddenSize: 4, inputLayer: 0, layers: [0, 2], experts: 4, steps: 2, width: 3, seed: 1)
        let logits = distributions.flatMap { $0.flatMap { $0.map { Foundation.log($0) } } }
        head.network.parameters[2].tensor = Tensor(zeros: [logits.count, 3])
        head.network.parameters[3].tensor = Tensor(shape: [logits.count], values: logits)
        return head
    }

    func key(_ layer: Int, _ expert: Int) -> ExpertKey { ExpertKey(layer: layer, expert: expert) }

    func testTheForecastNamesOnlyLikelyExpertsAndGivesEveryExpertItsChanceOfUse() throws {
        let uniform: [Float] = [0.25, 0.25, 0.25, 0.25]
        let head = head([[[0.5, 0.35, 0.1, 0.05], [0.4, 0.2, 0.2, 0.2]], [uniform, uniform]])
        let predictor = TrainedLookaheadPredictor(head: head, topK: 2, expertsPerOffset: 2, minimumChance: 0.6)
        let forecast = try XCTUnwrap(predictor.predict(hidden: Tensor(shape: [1, 4], values: [1, 2, 3, 4])))
        // Chance at an offset = top-k × probability: 1, 0.7, 0.2, 0.1 in layer 0 and 0.8, 0.4, … in layer 2 at t+1; 0.5 everywhere at t+2.
        XCTAssertEqual(forecast.steps, [[key(0, 0), key(0, 1), key(2, 0)], []])
        XCTAssertEqual(forecast.chanceOfUse.count, 8, "every expert of every MoE layer")
        XCTAssertEqual(forecast.chanceOfUse[key(0, 0)]!, 1, accuracy: 1e-5)
        XCTAssertEqual(forecast.chanceOfUse[key(0, 1)]!, 1 - 0.3 * 0.5, accuracy: 1e-5)
        XCTAssertEqual(forecast.chanceOfUse[key(2, 3)]!, 1 - 0.6 * 0.5, accuracy: 1e-5)

        let everything = TrainedLookaheadPredictor(head: head, topK: 2, expertsPerOffset: 2)
        XCTAssertEqual(
            everything.predict(hidden: Tensor(shape: [1, 4], values: [1, 2, 3, 4]))?.steps.map(\.count), [4, 4],
            "without a minimum chance the top 2 of each layer are named")
    }

    func testAPassHandsOverEveryLayersHiddenStateAndKeepsTheLastTokensOfTheLayersAskedFor() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral"))
        let ids = [5, 17, 42, 99]
        let cache = model.makeCache(), log = ForwardLog()
        cache.observer = log
        let output = try model.forward(ids, cache: cache, options: ForwardOptions(hiddenLayers: [1]))
        let observation = ForwardObservation(output: output, ids: ids)
        XCTAssertEqual(log.finished, [0, 1], "once per decoder layer, in order")
        XCTAssertEqual(Array(observation.hidden.keys), [1])
        XCTAssertNil(observation.lookaheadProbabilities, "a Mixtral has no lookahead head")
        let all = try XCTUnwrap(log.hidden[1])
        XCTAssertEqual(observation.hidden[1]?.floats, Array(all.floats[(3 * 64)..<(4 * 64)]), "the last token's row")
    }
}
