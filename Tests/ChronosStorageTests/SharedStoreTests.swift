import ChronosEngine
import ChronosModel
import ChronosStorage
import ChronosTestSupport
import Foundation
import XCTest

/// Several generations on one expert store: each through a session of its own.
final class SharedStoreTests: XCTestCase {
    private func key(_ layer: Int, _ expert: Int) -> ExpertKey { ExpertKey(layer: layer, expert: expert) }

    func testAnotherSessionsStepNeitherUnpinsNorEvictsWhatASessionIsAboutToUse() throws {
        // Room for three experts. Session A needs E0 then E1 and is computing with E0; session B
        // uses E2 in a step of its own; then the store's own session needs E3, which must evict.
        let fixture = try SteppedStore { cache in
            ExpertStoreSettings(
                budget: ResidencyBudget(hot: 3 * cache.byteCount(of: ExpertKey(layer: 0, expert: 0)), staging: 0),
                eviction: .lru, ioThreads: 1)
        }
        let store = fixture.store
        defer { store.close() }
        let a = store.makeSession(), b = store.makeSession()
        a.beginStep()
        a.willNeed([key(0, 0), key(0, 1)])
        fixture.io.runUntilIdle()
        XCTAssertNotNil(a.weights(for: key(0, 0)))

        b.beginStep()
        b.willNeed([key(0, 2)])
        XCTAssertNotNil(b.weights(for: key(0, 2)))
        b.endStep()

        store.beginStep()
        store.willNeed([key(0, 3)])
        XCTAssertNotNil(store.weights(for: key(0, 3)))
        store.endStep()
        XCTAssertFalse(store.isResident(key(0, 2)), "the only expert no session holds is the one evicted")
        XCTAssertTrue(store.isResident(key(0, 1)), "A's pinned need survives B's step and the eviction")

        XCTAssertNotNil(a.weights(for: key(0, 1)))
        a.endStep()
        XCTAssertEqual(fixture.disk.reads, [0, 1, 2, 3].map { key(0, $0) }, "E1 was served from memory")
        XCTAssertEqual(store.metrics().stallNanoseconds, 0)
    }

    func testTwoGenerationsAtOnceOnOneStoreEachGiveTheirResidentTokens() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let prompts = [StorageFixtures.prompt(10, vocab: 32), StorageFixtures.prompt(7, vocab: 32, salt: 3)]
        let expected = try prompts.map { try StorageFixtures.residentIds(directory, prompt: $0, tokens: 12) }
        XCTAssertNotEqual(expected[0], expected[1], "the two generations must differ to tell them apart")
        let expert = 3 * 12 * 16 * 4
        for (mode, policy, budget) in [
            (ExpertResidencyMode.chronos, MissPolicy.wait, ExpertBudget.bytes(3 * expert)),
            (.lru, .wait, .fraction(0.3)), (.lru, .sync, .bytes(3 * expert))
        ] {
            let offloaded = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: mode, budget: budget, policy: policy))
            defer { offloaded.close() }
            for round in 0..<3 {
                let outcomes = Outcomes()
                DispatchQueue.concurrentPerform(iterations: 2) { index in
                    outcomes.record(
                        index,
                        Result {
                            try OffloadedGenerator(offloaded: offloaded, tokenizer: nil).generate(
                                GenerationRequest(promptIds: prompts[index], maxTokens: 12, sampling: .greedy, ignoreEOS: true)
                            ).generation.ids
                        })
                }
                let label = "\(mode) \(policy) \(budget) round \(round)"
                XCTAssertEqual(try outcomes.ids(), expected, label)
            }
            XCTAssertEqual(offloaded.storageMetrics()?.fallbacks, 0)
            XCTAssertGreaterThan(offloaded.storageMetrics()?.bytesRead ?? 0, 0, "the budget made the store read")
        }
    }
}

/// The ids each concurrent generation produced, or its error.
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<[Int], any Error>] = [:]

    func record(_ index: Int, _ result: Result<[Int], any Error>) {
        lock.withLock { results[index] = result }
    }

    /// Every generation's ids in order; throws the first error.
    func ids() throws -> [[Int]] {
        try lock.withLock { try results.keys.sorted().map { try results[$0]!.get() } }
    }
}
