import ChronosBench
import ChronosEngine
import ChronosModel
import ChronosStorage
import XCTest

/// Belady's MIN replayed on the resident run's routing, and the bound max(compute, missed bytes
/// / bandwidth), on routings and counters small enough to work out by hand.
final class OracleReplayTests: XCTestCase {
    /// Experts A, B, C of one byte each; the resident run's steps are A B (prefill, not counted),
    /// then C A, B A, C (decode): requests A B | C A | B A | C, next uses A→3 B→4 C→6 A→5 B→∞ A→∞ C→∞.
    ///
    /// Two bytes: A, B load (uncounted). C misses, evicts B (next use 4, farther than A's 3).
    /// A hits. B misses, evicts C (6 > 5). A hits. C misses. 2 hits of 5 counted needs = 0.4
    /// (LRU would get 1 of 5: C evicts A, A evicts B, B evicts C, A hits, C misses).
    /// Three bytes: only C's first need misses: 4 of 5 = 0.8.
    private func handWorkedRuns() -> [OffloadBench.Run] {
        var resident = OffloadBench.Run(metrics: metrics(.resident, budgetBytes: 3))
        resident.routing = [[expertA, expertB], [expertC, expertA], [expertB, expertA], [expertC]]
        resident.decodeSteps = [false, true, true, true]
        return [
            resident,
            OffloadBench.Run(metrics: metrics(.lru, policy: .wait, budgetBytes: 2)),
            OffloadBench.Run(metrics: metrics(.chronos, policy: .wait, budgetBytes: 3)),
            OffloadBench.Run(metrics: metrics(.mmap, budgetBytes: 2)),
            OffloadBench.Run(metrics: metrics(.lru, policy: .sync, budgetBytes: 0), note: "budget below one expert")
        ]
    }

    func testOracleHitRateIsBeladysMinOnTheResidentRouting() {
        var runs = handWorkedRuns()
        OffloadBench.scoreOracle(&runs) { _ in 1 }
        XCTAssertNil(runs[0].oracleHitRate, "resident keeps every expert: it has no budget to replay")
        XCTAssertEqual(runs[1].oracleHitRate!, 0.4, accuracy: 1e-12)
        XCTAssertEqual(runs[2].oracleHitRate!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(runs[3].oracleHitRate!, 0.4, accuracy: 1e-12, "the same budget gives the same replay")
        XCTAssertNil(runs[4].oracleHitRate, "a run that could not run is not scored")
    }

    func testOracleReplayWeighsExpertSizes() {
        // C takes two bytes, so under three bytes C and A together fill memory: A B load; C
        // misses and evicts B (next use 4 > A's 3), A hits, B misses and evicts C (6 > 5), A hits,
        // C misses: 2 of 5 = 0.4, where one-byte experts gave 0.8.
        var runs = handWorkedRuns()
        OffloadBench.scoreOracle(&runs) { $0 == expertC ? 2 : 1 }
        XCTAssertEqual(runs[2].oracleHitRate!, 0.4, accuracy: 1e-12)
    }

    func testBoundIsTheSlowerOfComputeAndMissedBytesOverBandwidth() {
        // 4 decode steps missed 4 MB: 1 MB per token.
        var missing = metrics(.lru, policy: .wait, steps: 4, seconds: 1)
        missing.decode.missedBytes = 4_000_000
        // Compute 0.02 s/token (50 tokens/s); 1 MB at 100 MB/s is 0.01 s: compute bounds it.
        XCTAssertEqual(OffloadBench.bound(missing, compute: 0.02, disk: DiskModel(latency: 0, bandwidth: 1e8))!, 50, accuracy: 1e-9)
        // At 25 MB/s the disk takes 0.04 s per token: 25 tokens/s.
        XCTAssertEqual(OffloadBench.bound(missing, compute: 0.02, disk: DiskModel(latency: 0, bandwidth: 2.5e7))!, 25, accuracy: 1e-9)
        // No simulated disk: the run's own reads, 2 MB in 10 ms = 200 MB/s, give 0.005 s: compute bounds it.
        missing.decode.bytesRead = 2_000_000
        missing.decode.readNanoseconds = 10_000_000
        XCTAssertEqual(OffloadBench.bound(missing, compute: 0.02, disk: nil)!, 50, accuracy: 1e-9)
        // No disk and no reads: the bandwidth is unknown.
        missing.decode.bytesRead = 0
        XCTAssertNil(OffloadBench.bound(missing, compute: 0.02, disk: nil))
        // Nothing missed: compute alone.
        XCTAssertEqual(OffloadBench.bound(metrics(.lru, steps: 4, seconds: 1), compute: 0.1, disk: nil)!, 10, accuracy: 1e-9)
    }

    func testBoundsTakeComputeFromTheResidentRun() {
        // resident decoded 10 tokens in 0.2 s: 0.02 s per token; lru missed 1 MB per token at 25 MB/s.
        var lru = metrics(.lru, policy: .wait, steps: 2, seconds: 1)
        lru.decode.missedBytes = 2_000_000
        var runs = [
            OffloadBench.Run(metrics: metrics(.resident, steps: 10, seconds: 0.2)), OffloadBench.Run(metrics: lru),
            OffloadBench.Run(metrics: metrics(.chronos), note: "budget below one expert")
        ]
        OffloadBench.scoreBounds(&runs, disk: DiskModel(latency: 0, bandwidth: 2.5e7))
        XCTAssertEqual(runs[0].boundTokensPerSecond!, 50, accuracy: 1e-9)
        XCTAssertEqual(runs[1].boundTokensPerSecond!, 25, accuracy: 1e-9)
        XCTAssertNil(runs[2].boundTokensPerSecond)
    }
}
