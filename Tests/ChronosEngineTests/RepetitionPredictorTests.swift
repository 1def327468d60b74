import ChronosEngine
import ChronosModel
import XCTest

final class RepetitionPredictorTests: XCTestCase {
    /// Records `tokens` from position 0, position p routed to expert p of layer 0 and expert
    /// 100 + p of layer 1.
    func history(_ tokens: [Int], minimumMatch: Int = 5, horizon: Int = 8) -> RepetitionPredictor {
        let predictor = RepetitionPredictor(minimumMatch: minimumMatch, horizon: horizon)
        predictor.append(tokens, at: 0)
        for position in tokens.indices {
            for layer in 0..<2 {
                predictor.observe(
                    RoutingDecision(
                        layer: layer, position: position, experts: [layer * 100 + position],
                        weights: [1], probabilities: []))
            }
        }
        return predictor
    }

    func routing(_ position: Int) -> [ExpertKey] {
        [ExpertKey(layer: 0, expert: position), ExpertKey(layer: 1, expert: 100 + position)]
    }

    func testRepeatedTextPredictsTheRoutingThatFollowedItBefore() {
        // Position 11 ends "1 2 3 4 5", as position 4 did, and as position 9 did only in "4 5".
        let predictor = history([1, 2, 3, 4, 5, 9, 7, 8, 4, 5, 8, 1, 2, 3, 4, 5])
        XCTAssertEqual(
            predictor.predict()?.steps, [4, 5, 6, 7, 8, 9, 10, 11].map(routing),
            "the step about to run as position 4 ran, then the positions after it")
    }

    func testPredictionsStopAtTheHorizonAndAtTheCurrentToken() {
        let tokens = [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5]
        XCTAssertEqual(history(tokens, horizon: 3).predict()?.steps, [4, 5, 6].map(routing))
        XCTAssertEqual(
            history(tokens, horizon: 20).predict()?.steps, [4, 5, 6, 7, 8, 9].map(routing),
            "nothing is predicted beyond what the history holds")
    }

    func testShortMatchesPredictNothing() {
        XCTAssertNil(history([1, 2, 3, 4, 5, 6, 9, 2, 3, 4, 5]).predict(), "four tokens match, five are needed")
        XCTAssertEqual(history([1, 2, 3, 4, 5, 6, 9, 2, 3, 4, 5], minimumMatch: 4).predict()?.steps.first, routing(4))
        XCTAssertNil(history([1, 2, 3]).predict(), "a token never seen before")
    }

    func testTheLongestMatchWinsOverTheMostRecent() {
        // "3 4 5" recurs at position 8 (matching 3 tokens) and at position 4 (matching 5).
        let predictor = history([1, 2, 3, 4, 5, 6, 0, 3, 4, 5, 7, 1, 2, 3, 4, 5], minimumMatch: 3)
        XCTAssertEqual(predictor.predict()?.steps.first, routing(4))
        XCTAssertEqual(predictor.predict()?.matched, 5)
    }
}
