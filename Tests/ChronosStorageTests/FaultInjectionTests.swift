import ChronosEngine
import ChronosModel
import ChronosStorage
import ChronosTestSupport
import Foundation
import XCTest

/// Injected faults are survived: a transient one is retried (same tokens), a persistent one
/// falls back; every fault is counted and nothing crashes.
final class FaultInjectionTests: XCTestCase {
    func testTransientFaultsOfEveryKindAreRetriedAndCounted() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let prompt = StorageFixtures.prompt(10, vocab: 32)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6)
        for kind in InjectedFault.Kind.allCases {
            let settings = OffloadSettings(
                mode: .chronos, budget: .fraction(0.5), policy: .wait,
                faults: [InjectedFault(kind, on: .read(2)), InjectedFault(kind, on: .read(5))])
            let run = try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 6)
            XCTAssertEqual(run.ids, expected, "\(kind)")
            let metrics = run.final!
            let counted =
                switch kind {
                case .ioError: metrics.ioErrors
                case .shortRead: metrics.shortReads
                case .corruption: metrics.corruptions
                }
            XCTAssertEqual(counted, 2, "\(kind)")
            XCTAssertEqual(metrics.faults, 2, "\(kind)")
            XCTAssertEqual(metrics.retries, 2, "\(kind)")
            XCTAssertEqual(metrics.failedLoads, 0, "\(kind)")
            XCTAssertEqual(run.metrics.faultLog.count, 2, "\(kind)")
        }
    }

    func testAPersistentFaultEndsAWaitingRunAndFallsBackUnderFallback() throws {
        for (directory, vocab) in [(try StorageFixtures.chronosModel(), 32), (try StorageFixtures.huggingFaceModel("mixtral"), 256)] {
            try StorageFixtures.pack(directory)
            let prompt = StorageFixtures.prompt(10, vocab: vocab)
            let model = try ModelRegistry.load(directory: directory)
            // The expert the first prompt token uses in layer 0 fails on every read.
            let cache = model.makeCache(), log = ForwardLog()
            cache.observer = log
            _ = try model.forward(prompt, cache: cache)
            let first = log.decisions.first { $0.layer == 0 }.map { ExpertKey(layer: 0, expert: $0.experts[0]) }
            for kind in InjectedFault.Kind.allCases {
                for policy in [MissPolicy.wait, .sync, .fallback] {
                    let settings = OffloadSettings(
                        mode: .lru, budget: .fraction(1), policy: policy,
                        faults: [InjectedFault(kind, on: .expert(first!), count: 1000)])
                    let label = "\(directory.lastPathComponent) \(kind) \(policy)"
                    // Only `fallback` may go on without the expert; `wait` and `sync` end the run.
                    guard policy == .fallback else {
                        XCTAssertThrowsError(try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 5), label) { error in
                            guard case ExpertCacheError.loadFailed(let expert, let faults) = error else {
                                return XCTFail("\(label): \(error)")
                            }
                            XCTAssertEqual(expert, first, label)
                            XCTAssertFalse(faults.isEmpty, label)
                        }
                        continue
                    }
                    let run = try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 5)
                    XCTAssertEqual(run.ids.count, 5, label)
                    XCTAssertGreaterThan(run.metrics.fallbacks, 0, label)
                }
            }
        }
    }
}

/// Faults met by a store driven one load at a time: the retries happen inside the load step,
/// and a load that fails still opens the readiness of the expert, so no one waits for it.
final class SteppedFaultTests: XCTestCase {
    let expert = ExpertKey(layer: 1, expert: 3)

    func makeStore(faults: [InjectedFault]) throws -> SteppedStore {
        try SteppedStore(faults: faults) { cache in
            ExpertStoreSettings(budget: ResidencyBudget(hot: cache.totalExpertBytes, staging: 0), policy: .wait, ioThreads: 1, retries: 2)
        }
    }

    func testATransientFaultIsRetriedWithinItsLoadStep() throws {
        let fixture = try makeStore(faults: [InjectedFault(.ioError, on: .read(1))])
        let store = fixture.store
        defer { store.close() }
        store.beginStep()
        store.willNeed([expert])
        XCTAssertTrue(fixture.io.runNext())
        XCTAssertEqual(fixture.disk.reads, [expert, expert], "the failed read and its retry, in one step")
        XCTAssertTrue(store.isResident(expert))
        XCTAssertNotNil(store.weights(for: expert))
        store.endStep()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.ioErrors, 1)
        XCTAssertEqual(metrics.retries, 1)
        XCTAssertEqual(metrics.reads, 1)
        XCTAssertEqual(metrics.failedLoads, 0)
        XCTAssertNil(store.failure)
    }

    func testAPersistentFaultFailsTheLoadAndEndsAWaitingRun() throws {
        let fixture = try makeStore(faults: [InjectedFault(.corruption, on: .expert(expert), count: 1000)])
        let store = fixture.store
        defer { store.close() }
        store.beginStep()
        store.willNeed([expert])
        // The wait runs the load on this thread; every try fails, and the call returns.
        XCTAssertNil(store.weights(for: expert))
        XCTAssertEqual(fixture.disk.reads, Array(repeating: expert, count: 3), "the first try and two retries")
        XCTAssertFalse(fixture.io.runNext(), "a failed expert is not tried again in the same step")
        store.endStep()
        guard case ExpertCacheError.loadFailed(let failed, let faults)? = store.failure as? ExpertCacheError else {
            return XCTFail("\(String(describing: store.failure))")
        }
        XCTAssertEqual(failed, expert)
        XCTAssertEqual(faults.count, 3)
        let metrics = store.metrics()
        XCTAssertEqual(metrics.corruptions, 3)
        XCTAssertEqual(metrics.failedLoads, 1)
        XCTAssertEqual(metrics.fallbacks, 1)

        // The next step may try it again.
        store.beginStep()
        store.willNeed([expert])
        XCTAssertTrue(fixture.io.runNext())
        XCTAssertEqual(fixture.disk.reads.count, 6)
        store.endStep()
    }
}
