import ChronosEngine
import ChronosModel
import ChronosStorage
import XCTest

final class ExpertBudgetTests: XCTestCase {
    func testParsesFractionsPercentagesAndByteCounts() {
        XCTAssertEqual(ExpertBudget(parsing: "0.3"), .fraction(0.3))
        XCTAssertEqual(ExpertBudget(parsing: "30%"), .fraction(0.3))
        XCTAssertEqual(ExpertBudget(parsing: "1"), .fraction(1))
        XCTAssertEqual(ExpertBudget(parsing: "300MB"), .bytes(300_000_000))
        XCTAssertEqual(ExpertBudget(parsing: "1.5GiB"), .bytes(1_610_612_736))
        XCTAssertEqual(ExpertBudget(parsing: "4096"), .bytes(4096))
        XCTAssertEqual(ExpertBudget(parsing: "64 KiB"), .bytes(65536))
        XCTAssertNil(ExpertBudget(parsing: "-1"))
        for text in ["inf", "1e19", "nan", "infMB", "1e300 GiB", "0.5B", "-inf"] {
            XCTAssertNil(ExpertBudget(parsing: text), text)
        }
        XCTAssertNil(ExpertBudget(parsing: "lots"))
        XCTAssertNil(ExpertBudget(parsing: "150%"))
        XCTAssertEqual(ExpertBudget.fraction(0.25).bytes(ofTotal: 1000), 250)
        XCTAssertEqual(ExpertBudget.bytes(5000).bytes(ofTotal: 1000), 1000)
    }

    func testStagingShareSplitsTheBudget() {
        let budget = ResidencyBudget(total: 1000, stagingFraction: 0.25)
        XCTAssertEqual(budget.hot, 750)
        XCTAssertEqual(budget.staging, 250)
        XCTAssertEqual(budget.total, 1000)
    }

    func testTheHotSetAlwaysHoldsTheLargestExpert() {
        let settings = OffloadSettings(mode: .chronos, stagingFraction: 0.6)
        func tiers(_ total: Int) -> ResidencyBudget {
            OffloadedModel.tiers(total: total, expertBytes: 10_000, settings: settings, largestExpert: 100)
        }
        XCTAssertEqual(tiers(1000), ResidencyBudget(hot: 400, staging: 600), "the staging share when both tiers hold an expert")
        XCTAssertEqual(tiers(200), ResidencyBudget(hot: 100, staging: 100), "the hot set keeps room for the largest expert")
        XCTAssertEqual(tiers(150), ResidencyBudget(hot: 150, staging: 0), "staging could not hold an expert")
        XCTAssertEqual(tiers(10_000), ResidencyBudget(hot: 10_000, staging: 0), "everything fits in the hot set")
    }

    func testFaultSpecificationsParse() {
        XCTAssertEqual(InjectedFault(parsing: "io-error:3"), InjectedFault(.ioError, on: .read(3)))
        XCTAssertEqual(
            InjectedFault(parsing: "corrupt:L1/E4x3"), InjectedFault(.corruption, on: .expert(.init(layer: 1, expert: 4)), count: 3))
        XCTAssertEqual(InjectedFault(parsing: "short-read:7x2")?.description, "short-read:7x2")
        XCTAssertNil(InjectedFault(parsing: "melt:3"))
        XCTAssertNil(InjectedFault(parsing: "corrupt:L1"))
    }
}

final class BeladyOracleTests: XCTestCase {
    func testTheOracleEvictsWhatIsNeededLast() {
        let a = ExpertKey(layer: 0, expert: 0), b = ExpertKey(layer: 0, expert: 1), c = ExpertKey(layer: 0, expert: 2)
        // Room for two: C must evict B (needed after A), so A hits; LRU would evict A and hit nothing.
        let result = BeladyOracle.simulate(steps: [[a, b], [c], [a], [b]], capacity: 2, bytes: { _ in 1 })
        XCTAssertEqual(result.hits, 1)
        XCTAssertEqual(result.needed, 5)
        // A cycle over three experts through room for two: MIN keeps one of them each time (LRU: no hit).
        let cycle = Array(repeating: [[a], [b], [c]], count: 4).flatMap { $0 }
        XCTAssertEqual(BeladyOracle.simulate(steps: cycle, capacity: 2, bytes: { _ in 1 }).hits, 5)
        XCTAssertEqual(BeladyOracle.simulate(steps: cycle, capacity: 3, bytes: { _ in 1 }).hits, 9)
        XCTAssertEqual(BeladyOracle.simulate(steps: cycle, capacity: 0, bytes: { _ in 1 }).hits, 0)
    }
}

extension BeladyOracleTests {
    func testOnlyTheMarkedStepsAreCounted() {
        let a = ExpertKey(layer: 0, expert: 0), b = ExpertKey(layer: 0, expert: 1)
        // The first step (a prefill) loads both; the decode steps then hit every time.
        let result = BeladyOracle.simulate(steps: [[a, b], [a], [b]], counted: [false, true, true], capacity: 2, bytes: { _ in 1 })
        XCTAssertEqual(result.hits, 2)
        XCTAssertEqual(result.needed, 2)
    }
}
