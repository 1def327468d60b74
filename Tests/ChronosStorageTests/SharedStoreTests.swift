import ChronosEngine
import ChronosModel
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosStorage

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

    func testANeedThatOtherSessionsPinsLeaveNoRoomForEvictsThemInsteadOfWaitingForever() throws {
        // Room for two experts. In one batched pass on one thread, A announces E0 and E1 and
        // computes with E0; then B's turn needs E2: the hot set holds only what A pins or last
        // used, no load is in flight, and A's next turn comes after B's on the same thread.
        let fixture = try SteppedStore { cache in
            ExpertStoreSettings(
                budget: ResidencyBudget(hot: 2 * cache.byteCount(of: ExpertKey(layer: 0, expert: 0)), staging: 0),
                eviction: .lru, ioThreads: 1)
        }
        let store = fixture.store
        defer { store.close() }
        let a = store.makeSession(), b = store.makeSession()
        a.beginStep()
        b.beginStep()
        a.willNeed([key(0, 0), key(0, 1)])
        fixture.io.runUntilIdle()
        XCTAssertNotNil(a.weights(for: key(0, 0)))
        b.willNeed([key(0, 2)])
        fixture.io.runUntilIdle()
        XCTAssertNotNil(b.weights(for: key(0, 2)), "B's need got room from A's holds")
        XCTAssertTrue(store.isResident(key(0, 2)))
        XCTAssertNotNil(a.weights(for: key(0, 1)), "A's later need is read again if it was evicted")
        a.endStep()
        b.endStep()
    }

    func testACancelledGenerationDropsTheLoadsQueuedForItUnlessAnotherIsUnderWay() throws {
        let fixture = try SteppedStore { cache in
            ExpertStoreSettings(
                budget: ResidencyBudget(hot: 4 * cache.byteCount(of: ExpertKey(layer: 0, expert: 0)), staging: 0),
                eviction: .lru, ioThreads: 1)
        }
        let store = fixture.store
        defer { store.close() }
        do {
            let a = store.makeSession(), b = store.makeSession()
            a.beginStep()
            a.willNeed([key(0, 0), key(0, 1)])
            a.endStep()
            a.cancelQueuedLoads()
            fixture.io.runUntilIdle()
            XCTAssertEqual(fixture.disk.reads, [key(0, 0), key(0, 1)], "B is under way: what is queued may be its")
            XCTAssertEqual(store.metrics().cancelledPrefetches, 0)
            withExtendedLifetime(b) {}
        }
        let c = store.makeSession()
        c.beginStep()
        c.willNeed([key(0, 2), key(0, 3)])
        c.endStep()
        c.cancelQueuedLoads()
        fixture.io.runUntilIdle()
        XCTAssertEqual(fixture.disk.reads, [key(0, 0), key(0, 1)], "C was alone: its queued loads never start")
        XCTAssertEqual(store.metrics().cancelledPrefetches, 2)
    }

    func testTwoGenerationsAtOnceOnOneStoreEachGiveTheirResidentTokens() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let prompts = [StorageFixtures.prompt(10, vocab: 32), StorageFixtures.prompt(7, vocab: 32, salt: 3)]
        let lengths = [12, 6]
        let expected = try prompts.indices.map { try StorageFixtures.residentIds(directory, prompt: prompts[$0], tokens: lengths[$0]) }
        XCTAssertNotEqual(expected[0], expected[1], "the two generations must differ to tell them apart")
        let expert = 3 * 12 * 16 * 4
        // What each generation's needs are when it runs alone: the same tokens route the same.
        let alone = try prompts.indices.map { index in
            try StorageFixtures.generate(
                directory, OffloadSettings(mode: .lru, budget: .bytes(3 * expert)), prompt: prompts[index], tokens: lengths[index]
            ).metrics
        }
        let neededAlone = alone.map { $0.prefill.needed + $0.decode.needed }
        XCTAssertNotEqual(neededAlone[0], neededAlone[1], "the two generations must need differently to tell them apart")
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
                                GenerationRequest(promptIds: prompts[index], maxTokens: lengths[index], sampling: .greedy, ignoreEOS: true))
                        })
                }
                let label = "\(mode) \(policy) \(budget) round \(round)"
                let results = try outcomes.results()
                XCTAssertEqual(results.map(\.generation.ids), expected, label)
                // Each generation's metrics count its own needs, not the other's.
                XCTAssertEqual(results.map { $0.metrics.prefill.needed + $0.metrics.decode.needed }, neededAlone, label)
            }
            XCTAssertEqual(offloaded.storageMetrics()?.fallbacks, 0)
            XCTAssertGreaterThan(offloaded.storageMetrics()?.bytesRead ?? 0, 0, "the budget made the store read")
        }
    }
}

/// What each concurrent generation produced, or its error.
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [Int: Result<OffloadedGenerationResult, any Error>] = [:]

    func record(_ index: Int, _ result: Result<OffloadedGenerationResult, any Error>) {
        lock.withLock { outcomes[index] = result }
    }

    /// Every generation's result in order; throws the first error.
    func results() throws -> [OffloadedGenerationResult] {
        try lock.withLock { try outcomes.keys.sorted().map { try outcomes[$0]!.get() } }
    }
}

/// The queue's late-need class, which another generation's step must not push a waiting need into.
final class PrefetchQueueDemotionTests: XCTestCase {
    func testAStepDemotesPendingNeedsButNotOnesAGenerationIsWaitingOn() {
        var queue = PrefetchQueue()
        let waitedOn = ExpertKey(layer: 0, expert: 1), pending = ExpertKey(layer: 0, expert: 2)
        queue.push(waitedOn, .blocking)
        queue.push(pending, .need(rank: 0))
        queue.demoteNeeds()
        XCTAssertEqual(queue.requests[waitedOn], .blocking, "a blocked generation keeps its claim on room")
        XCTAssertEqual(queue.requests[pending], .lateNeed(rank: 0))
    }
}
