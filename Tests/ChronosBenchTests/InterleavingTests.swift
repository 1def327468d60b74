import ChronosBench
import ChronosEngine
import ChronosStorage
import XCTest

/// Baselines and candidates are measured round by round, each round visiting every one in order.
final class InterleavingTests: XCTestCase {
    func testScheduleVisitsEveryCandidateInOrderEachRound() {
        let slots = Array(InterleavedSchedule(rounds: 2, candidates: 3)).map { [$0.round, $0.candidate] }
        XCTAssertEqual(slots, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
        XCTAssertTrue(Array(InterleavedSchedule(rounds: 3, candidates: 0)).isEmpty)
        XCTAssertTrue(Array(InterleavedSchedule(rounds: 0, candidates: 3)).isEmpty)
    }

    func testBestKeepsEachCandidatesBestRoundAndMeasuresInScheduleOrder() {
        // Rows are rounds, columns candidates (a bound, then two kernels).
        let values: [[Double]] = [[10, 3, 7], [12, 5, 6], [11, 4, 8]]
        var order: [[Int]] = []
        let best = InterleavedSchedule(rounds: 3, candidates: 3).best { slot in
            order.append([slot.round, slot.candidate])
            return values[slot.round][slot.candidate]
        }
        XCTAssertEqual(best, [12, 5, 8])
        XCTAssertEqual(order, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]])
    }

    func testOffloadBaselinesRunResidentFirstThenMmapThenEachPolicy() {
        let budget = ExpertBudget.fraction(0.3)
        let all = OffloadBench.configurations(budget: budget, policies: [.wait, .fallback], measuringResident: true)
        XCTAssertEqual(
            all,
            [
                OffloadBench.Configuration(.resident, .fraction(1)), OffloadBench.Configuration(.mmap, budget),
                OffloadBench.Configuration(.lru, budget, .wait), OffloadBench.Configuration(.lru, budget, .fallback),
                OffloadBench.Configuration(.chronos, budget, .wait), OffloadBench.Configuration(.chronos, budget, .fallback)
            ])
        let measured = OffloadBench.configurations(budget: budget, policies: [.sync], measuringResident: false)
        XCTAssertEqual(measured.map(\.mode), [.mmap, .lru, .chronos], "a resident run already measured is not repeated")
        XCTAssertEqual(measured.map(\.policy), [nil, .sync, .sync])
    }

    func testHeldOutSplitCutsLongPromptsIntoPromptAndReference() {
        let prompts = [Array(1...10), [1, 2], Array(11...16)]
        let split = OffloadBench.heldOutSplit(prompts, promptTokens: 2, tokens: 3)
        XCTAssertEqual(split?.prompts, [[1, 2], [11, 12]], "the two-token line cannot hold 2 + 3 tokens")
        XCTAssertEqual(split?.references, [[3, 4, 5], [13, 14, 15]])
        XCTAssertNil(OffloadBench.heldOutSplit(prompts, promptTokens: 8, tokens: 3))
    }
}
