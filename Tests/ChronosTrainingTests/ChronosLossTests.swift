import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class ChronosLossTests: XCTestCase {
    let p = Tensor(shape: [3, 2], values: [0.7, 0.3, 0.6, 0.4, 0.1, 0.9])
    let selected = [[[0], [0], [1]]]
    var logQ: Tensor {
        // [T=3, K+1=2, E=2]; offset 1 of tokens 0 and 1 predicts (0.5, 0.5) and (0.25, 0.75).
        Tensor(shape: [3, 2, 2], values: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.5, 0.5].map { Foundation.log($0) })
    }
    let uniform = Tensor(shape: [3, 2], values: [Float](repeating: 0.5, count: 6))

    func testEachTermEqualsTheHandComputedValue() {
        let s = RoutingSignals(probabilities: [p], selected: selected, lookaheadLogProbabilities: logQ, referenceProbabilities: [uniform])
        let terms = ChronosLoss.terms(s)
        // load (2/3, 1/3), mean probability (1.4/3, 1.6/3): 2·(2/3·1.4/3 + 1/3·1.6/3) = 8.8/9.
        XCTAssertEqual(terms.balance.floats[0], 8.8 / 9, accuracy: 1e-6)
        // ‖(−0.1, 0.1)‖² = 0.02 and ‖(−0.5, 0.5)‖² = 0.5, mean 0.26.
        XCTAssertEqual(terms.temporal.floats[0], 0.26, accuracy: 1e-6)
        // −(0.6 ln .5 + 0.4 ln .5) and −(0.1 ln .25 + 0.9 ln .75), mean.
        let first: Double = -(0.6 * log(0.5) + 0.4 * log(0.5))
        let second: Double = -(0.1 * log(0.25) + 0.9 * log(0.75))
        let lookahead = (first + second) / 2
        XCTAssertEqual(Double(terms.lookahead.floats[0]), lookahead, accuracy: 1e-6)
        let rows: [(Double, Double)] = [(0.7, 0.3), (0.6, 0.4), (0.1, 0.9)]
        let kl = rows.map { (a: Double, b: Double) -> Double in a * log(a / 0.5) + b * log(b / 0.5) }.reduce(0, +) / 3
        XCTAssertEqual(Double(terms.routerKL.floats[0]), kl, accuracy: 1e-6)
        let weighted = terms.weighted(ChronosLossWeights(balance: 1, temporal: 2, lookahead: 3, routerKL: 4)).floats[0]
        XCTAssertEqual(Double(weighted), 8.8 / 9 + 0.52 + 3 * lookahead + 4 * kl, accuracy: 1e-5)
    }

    func testPaddingIsMasked() {
        let s = RoutingSignals(
            probabilities: [p], selected: selected, lookaheadLogProbabilities: logQ,
            referenceProbabilities: [uniform], valid: [true, true, false])
        XCTAssertEqual(ChronosLoss.temporal(s).floats[0], 0.02, accuracy: 1e-6, "only the pair (0, 1) counts")
        XCTAssertEqual(Double(ChronosLoss.lookahead(s).floats[0]), -log(0.5), accuracy: 1e-6, "only (0 → 1) counts")
        // Balance over the two valid tokens: load (1, 0), mean probability (0.65, 0.35) → 2·0.65.
        XCTAssertEqual(ChronosLoss.balance(s).floats[0], 1.3, accuracy: 1e-6)
    }

    func testTheRouterAnchorIsZeroAgainstItself() {
        let s = RoutingSignals(probabilities: [p], selected: selected, lookaheadLogProbabilities: nil, referenceProbabilities: [p])
        XCTAssertEqual(ChronosLoss.routerKL(s).floats[0], 0, accuracy: 1e-7)
        XCTAssertEqual(ChronosLoss.lookahead(s).floats[0], 0, "no head, no term")
    }

    func testGradientsMatchFiniteDifferences() {
        let reference = Tensor(shape: [3, 2], values: [0.4, 0.6, 0.5, 0.5, 0.3, 0.7])
        GradientCheck.check("balance", inputs: [p], step: 1e-3) {
            ChronosLoss.balance(RoutingSignals(probabilities: [$0[0]], selected: self.selected, lookaheadLogProbabilities: nil))
        }
        GradientCheck.check("temporal", inputs: [p], step: 1e-3) {
            ChronosLoss.temporal(RoutingSignals(probabilities: [$0[0]], selected: self.selected, lookaheadLogProbabilities: nil))
        }
        GradientCheck.check("lookahead", inputs: [logQ], step: 1e-3) {
            ChronosLoss.lookahead(RoutingSignals(probabilities: [self.p], selected: self.selected, lookaheadLogProbabilities: $0[0]))
        }
        GradientCheck.check("router KL", inputs: [p], step: 1e-3) {
            ChronosLoss.routerKL(
                RoutingSignals(
                    probabilities: [$0[0]], selected: self.selected, lookaheadLogProbabilities: nil,
                    referenceProbabilities: [reference]))
        }
    }
}
