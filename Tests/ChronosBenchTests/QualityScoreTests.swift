import ChronosBench
import Foundation
import XCTest

/// Teacher-forced cross-entropy and greedy agreement, on logits and ids small enough to check by hand.
final class QualityScoreTests: XCTestCase {
    /// log softmax(logits)[target], the log-probability a teacher-forced step gives its target.
    private func logProbability(_ target: Int, logits: [Double]) -> Float {
        Float(logits[target] - Foundation.log(logits.reduce(0) { $0 + Foundation.exp($1) }))
    }

    func testCrossEntropyIsTheMeanNegativeLogLikelihoodPerToken() {
        // Two tokens; every step's logits are (ln 3, 0), so softmax = (3/4, 1/4). The
        // continuations [0, 1], [] and [1] score −ln(3/4), −ln(1/4) and −ln(1/4):
        // (0.287682 + 1.386294 + 1.386294) / 3 = 1.020090 nats per token. The empty
        // continuation is skipped, and each token weighs alike (not each prompt).
        let logits = [Foundation.log(3.0), 0]
        var asked: [[[Int]]] = []
        let crossEntropy = OffloadBench.crossEntropy(prompts: [[7, 8], [9], [10]], continuations: [[0, 1], [], [1]]) {
            prompt, continuation in
            asked.append([prompt, continuation])
            return continuation.map { logProbability($0, logits: logits) }
        }
        XCTAssertEqual(crossEntropy, (-Foundation.log(0.75) - 2 * Foundation.log(0.25)) / 3, accuracy: 1e-6)
        XCTAssertEqual(crossEntropy, 1.020090, accuracy: 1e-6)
        XCTAssertEqual(asked, [[[7, 8], [0, 1]], [[10], [1]]], "each prompt is paired with its own continuation")
    }

    func testCrossEntropyOfUniformLogitsIsLogVocabulary() {
        // Equal logits over four tokens: every target has probability 1/4, ln 4 = 1.386294.
        let crossEntropy = OffloadBench.crossEntropy(prompts: [[1]], continuations: [[0, 3, 2]]) { _, continuation in
            continuation.map { logProbability($0, logits: [0.5, 0.5, 0.5, 0.5]) }
        }
        XCTAssertEqual(crossEntropy, Foundation.log(4), accuracy: 1e-6)
        XCTAssertEqual(OffloadBench.crossEntropy(prompts: [[1]], continuations: [[]]) { _, _ in [] }, 0, "nothing to score")
    }

    func testGreedyAgreementCountsMatchingPositionsOfTheReference() {
        // Greedy ids are the argmax of each step's logits: the reference's steps (9, 1), (1, 9),
        // (5, 2) pick 0, 1, 0 for the first prompt. Ours agree at 2 of its 3 positions and at
        // both of the second prompt's; a generation that stopped early disagrees where it has
        // no token: 2 + 2 of 3 + 3 = 2/3.
        let stepLogits: [[Double]] = [[9, 1], [1, 9], [5, 2]]
        let greedy = stepLogits.map { row in row.indices.max { row[$0] < row[$1] }! }
        XCTAssertEqual(greedy, [0, 1, 0])
        let agreement = OffloadBench.greedyAgreement([[0, 0, 0], [4, 5]], reference: [greedy, [4, 5, 6]])
        XCTAssertEqual(agreement!, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(OffloadBench.greedyAgreement([[1, 2]], reference: [[1, 2]]), 1)
        XCTAssertNil(OffloadBench.greedyAgreement([[1]], reference: [[]]), "no reference tokens: nothing to agree with")
    }
}
