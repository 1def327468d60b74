import ChronosModel
import ChronosRouting
import XCTest

final class PredictionScoreTests: XCTestCase {
    let a = ExpertKey(layer: 0, expert: 1), b = ExpertKey(layer: 0, expert: 2)
    let c = ExpertKey(layer: 1, expert: 0), d = ExpertKey(layer: 1, expert: 3)

    func testAnEmptyScoreHasNoRatios() {
        let empty = PredictionScore()
        XCTAssertEqual(empty.samples, 0)
        XCTAssertNil(empty.recall)
        XCTAssertNil(empty.precision)
        XCTAssertNil(empty.coverage)
    }

    func testSetsAgainstSetsCountHitsOverPredictionsAndOverActuals() {
        var score = PredictionScore()
        // {a, b, c} against {a, d}: 1 hit of 3 predicted, of 2 used.
        score.add(predicted: [a, b, c], actual: [a, d])
        // {d} against {c, d}: 1 hit of 1 predicted, of 2 used.
        score.add(predicted: [d], actual: [c, d])
        XCTAssertEqual(score.samples, 2)
        XCTAssertEqual(score.hits, 2)
        XCTAssertEqual(score.predicted, 4)
        XCTAssertEqual(score.actual, 4)
        XCTAssertEqual(score.recall, 0.5)
        XCTAssertEqual(score.precision, 0.5)
        XCTAssertEqual(score.coverage, 0.5, "each pair used once: coverage is recall")
    }

    func testUsesWithMultiplicityGiveTheCoverage() {
        var score = PredictionScore()
        // {a, c} against a used 3 times, b once, c twice: hits a and c (2 of 3 pairs), covering 5 of 6 uses.
        score.add(predicted: [a, c], uses: [a: 3, b: 1, c: 2])
        XCTAssertEqual(score.hits, 2)
        XCTAssertEqual(score.actual, 3)
        XCTAssertEqual(score.uses, 6)
        XCTAssertEqual(score.coveredUses, 5)
        XCTAssertEqual(try XCTUnwrap(score.recall), 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(score.precision, 1)
        XCTAssertEqual(try XCTUnwrap(score.coverage), 5.0 / 6, accuracy: 1e-12)
    }

    func testCountsAndSumsAgree() {
        var counted = PredictionScore(), sets = PredictionScore()
        counted.add(hits: 1, predicted: 3, actual: 2)
        sets.add(predicted: [a, b, c], actual: [a, d])
        XCTAssertEqual(counted, sets)
        var other = PredictionScore()
        other.add(predicted: [b], uses: [b: 4, d: 1])
        let sum = sets.adding(other)
        XCTAssertEqual(sum.samples, 2)
        XCTAssertEqual(sum.hits, 2)
        XCTAssertEqual(sum.predicted, 4)
        XCTAssertEqual(sum.actual, 4)
        XCTAssertEqual(sum.uses, 7)
        XCTAssertEqual(sum.coveredUses, 5)
        XCTAssertEqual(sum.recall, 0.5)
        XCTAssertEqual(try XCTUnwrap(sum.coverage), 5.0 / 7, accuracy: 1e-12)
    }
}
