import ChronosEngine
import ChronosModel
import ChronosRouting
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosStorage

/// The store's loads, their order, cancellation and eviction, driven one load at a time on
/// the test's thread (`SteppedStore`), with time on a manual clock.
final class PrefetchTests: XCTestCase {
    /// A stepped store whose budget is `budget` of all experts, `stagingFraction` of it staging.
    func makeStore(
        budget: ExpertBudget = .fraction(1), stagingFraction: Double = 0.5, policy: MissPolicy = .wait,
        device: DiskModel? = nil, trustPredictions: Bool = true
    ) throws -> SteppedStore {
        try SteppedStore(device: device) { cache in
            ExpertStoreSettings(
                budget: ResidencyBudget(total: budget.bytes(ofTotal: cache.totalExpertBytes), stagingFraction: stagingFraction),
                policy: policy, ioThreads: 1, promptWeight: 0.5, prefetchThreshold: trustPredictions ? 0 : 0.3,
                prefetchLift: trustPredictions ? 0 : 1.5)
        }
    }

    /// A stepped store with room for `hot` and `staging` experts (of the fixture's equal size).
    func makeStore(hot: Int, staging: Int, eviction: EvictionPolicy) throws -> SteppedStore {
        try SteppedStore { cache in
            let expert = cache.byteCount(of: ExpertKey(layer: 0, expert: 0))
            return ExpertStoreSettings(
                budget: ResidencyBudget(hot: hot * expert, staging: staging * expert), eviction: eviction,
                ioThreads: 1)
        }
    }

    func key(_ layer: Int, _ expert: Int) -> ExpertKey { ExpertKey(layer: layer, expert: expert) }

    /// One decode step that uses `key` alone (a miss is loaded inside `weights(for:)`).
    func use(_ key: ExpertKey, in store: ExpertStore) {
        store.beginStep(tokens: 1)
        store.willNeed([key])
        XCTAssertNotNil(store.weights(for: key))
        store.endStep()
    }

    func testNeedsJumpAheadOfPredictionsAndPredictionsAheadOfThePromptSet() throws {
        let fixture = try makeStore()
        let (store, disk, io) = (fixture.store, fixture.disk, fixture.io)
        defer { store.close() }
        store.beginStep()
        store.preload(promptSet: [key(1, 5)])
        store.predict(lookahead: [[key(0, 1)], [key(0, 2)], [key(0, 3)]])
        XCTAssertEqual(disk.reads, [], "nothing is read before a load step")
        XCTAssertTrue(io.runNext())
        XCTAssertEqual(disk.reads, [key(0, 1)], "t+1 is the most urgent of the predictions")
        store.willNeed([key(1, 0), key(1, 1)])
        XCTAssertEqual(io.runUntilIdle(), 4)
        // The needs come next in use order, then t+2, and the prompt-level set last; t+3 is
        // beyond the loading horizon.
        XCTAssertEqual(disk.reads, [key(0, 1), key(1, 0), key(1, 1), key(0, 2), key(1, 5)])
        XCTAssertNotNil(store.weights(for: key(1, 0)))
        XCTAssertNotNil(store.weights(for: key(1, 1)))
        store.endStep()
        XCTAssertFalse(io.runNext(), "t+3 was never queued")
        let metrics = store.metrics()
        XCTAssertEqual(metrics.needed, 2)
        XCTAssertEqual(metrics.hits, 0, "both needs were misses when announced")
        XCTAssertEqual(metrics.stallNanoseconds, 0, "both were loaded before they were asked for")
    }

    func testLoadsPredictedWhileATokenRunsQueueBehindItsOwn() throws {
        let fixture = try makeStore()
        let (store, disk, io) = (fixture.store, fixture.disk, fixture.io)
        defer { store.close() }
        // Before the token runs: its own predictions; the first is read.
        store.predict(lookahead: [[key(1, 0), key(1, 3)]])
        store.beginStep()
        XCTAssertTrue(io.runNext())
        // While it runs: the next token's, first in the predictor's order.
        store.prefetch(ahead: [[key(0, 1)]])
        XCTAssertEqual(io.runUntilIdle(), 2)
        store.endStep()
        XCTAssertEqual(disk.reads, [key(1, 0), key(1, 3), key(0, 1)], "the running token's predicted loads come first")
    }

    func testOnlyPredictionsWithAGoodRecordAreLoaded() throws {
        // Each step uses L0/E(step % 6); one lookahead always names it, the other never does.
        func run(right: Bool) throws -> Int {
            let fixture = try makeStore(trustPredictions: false)
            let store = fixture.store
            defer { store.close() }
            for step in 0..<8 {
                use(key(0, step % 6), in: store)
                store.predict(lookahead: [[right ? key(0, (step + 1) % 6) : key(1, step % 6)]])
                fixture.io.runUntilIdle()
            }
            XCTAssertEqual(fixture.disk.reads.filter { $0.layer == 1 }.count, 0, "the wrong predictions never reached the disk")
            return store.metrics().prefetchedBytes / fixture.expertBytes
        }
        XCTAssertEqual(try run(right: false), 0, "a predictor with no record of skill costs no reads")
        XCTAssertGreaterThan(try run(right: true), 0, "a predictor that proves right is loaded")
    }

    func testEachLookaheadSourceIsLoadedOnItsOwnRecord() throws {
        // Every step uses a new expert; after it, the head always names a wrong one and the
        // repetition of earlier text always the right one, in turn. Scored together they would
        // be right half the time and both would load.
        let fixture = try makeStore(hot: 2, staging: 2, eviction: .scored)
        let store = fixture.store
        defer { store.close() }
        let experts = store.cache.manifest.experts.map(\.key)
        for step in 0..<24 {
            use(experts[step % experts.count], in: store)
            if step % 2 == 0 {
                store.predict(lookahead: [[experts[(step + 5) % experts.count]]], source: .head)
            } else {
                store.predict(lookahead: [[experts[(step + 1) % experts.count]]], source: .repetition(matched: 5))
            }
            fixture.io.runUntilIdle()
        }
        let metrics = store.metrics()
        XCTAssertGreaterThan(metrics.prefetchUsedBytes, 0, "the repetition proved right and was loaded")
        XCTAssertEqual(metrics.wastedPrefetchBytes, 0, "the head never proved right and was never loaded")
    }

    func testALookaheadIsLoadedOnlyOnItsRecordForExpertsNotInMemory() throws {
        // The head names two experts each step: the one every step uses (held in memory, always
        // right) and one not in memory (always wrong). Half right overall, it never earns a load.
        let fixture = try makeStore(hot: 2, staging: 2, eviction: .scored)
        let store = fixture.store
        defer { store.close() }
        let experts = store.cache.manifest.experts.map(\.key), always = experts[0]
        for step in 0..<24 {
            use(always, in: store)
            store.predict(lookahead: [[always, experts[1 + step % (experts.count - 1)]]], source: .head)
            fixture.io.runUntilIdle()
        }
        XCTAssertEqual(fixture.disk.reads, [always], "the experts it would load were never read")
        XCTAssertEqual(store.metrics().prefetchUsedBytes, 0)

        // Naming the next step's expert, not in memory, it earns loads that are used.
        let rightFixture = try makeStore(hot: 2, staging: 2, eviction: .scored)
        let right = rightFixture.store
        defer { right.close() }
        for step in 0..<24 {
            use(experts[step % experts.count], in: right)
            right.predict(lookahead: [[experts[(step + 1) % experts.count]]], source: .head)
            rightFixture.io.runUntilIdle()
        }
        XCTAssertGreaterThan(right.metrics().prefetchUsedBytes, 0)
    }

    func testAKindOfPredictionIsLoadedOnlyWhileItsLoadsAreUsed() {
        var calibration = ReuseCalibration(promptPrior: 0.25)
        let head = LoadPurpose.lookahead(.head, offset: 1)
        XCTAssertGreaterThanOrEqual(calibration.usefulness(of: head), ExpertStore.usefulLoadShare, "untried, it gets its chance")
        // Right predictions evicted before their token came: four loads wasted for one used.
        for _ in 0..<4 { calibration.settleLoad(head, used: false) }
        calibration.settleLoad(head, used: true)
        XCTAssertLessThan(calibration.usefulness(of: head), ExpertStore.usefulLoadShare)
        for other in [LoadPurpose.lookahead(.head, offset: 2), .lookahead(.repetition(matched: 6), offset: 1), .preview, .prompt] {
            XCTAssertEqual(calibration.usefulness(of: other), 0.5, "\(other) is on its own record")
        }
        for _ in 0..<8 { calibration.settleLoad(head, used: true) }
        XCTAssertGreaterThanOrEqual(calibration.usefulness(of: head), ExpertStore.usefulLoadShare, "loads used again earn it back")
    }

    func testAPredictionForTheCurrentStepLapsesOnceTheExpertIsUsed() {
        var residency = ExpertResidency(
            budget: ResidencyBudget(hot: 1 << 20, staging: 0), eviction: .scored, promptWeight: 0.25,
            totalPairs: 8)
        residency.setPredictions([[key(0, 0), key(0, 1)], [key(0, 1)], [key(0, 0)]], source: .head)
        residency.beginStep()
        XCTAssertEqual(residency.nextPredictedOffset(of: key(0, 0)), 1)
        XCTAssertEqual(residency.nextPredictedOffset(of: key(0, 1)), 1)
        residency.markUsed(key(0, 0))
        XCTAssertEqual(residency.nextPredictedOffset(of: key(0, 0)), 3, "used in this step: its next predicted use counts")
        XCTAssertEqual(residency.nextPredictedOffset(of: key(0, 1)), 1, "not used yet")
        residency.endStep(singleToken: true)
        residency.beginStep()
        XCTAssertEqual(residency.nextPredictedOffset(of: key(0, 1)), 2, "the step it was predicted for has passed")
        XCTAssertNil(residency.nextPredictedOffset(of: key(0, 2)))
    }

    func testStalePredictionsAreCancelledBeforeTheyReachTheDisk() throws {
        let fixture = try makeStore()
        let (store, disk, io) = (fixture.store, fixture.disk, fixture.io)
        defer { store.close() }
        store.beginStep()
        store.predict(lookahead: [[key(0, 0), key(0, 1), key(0, 2), key(0, 3)]])
        XCTAssertTrue(io.runNext())
        store.predict(lookahead: [[key(1, 4)]])
        XCTAssertEqual(store.metrics().cancelledPrefetches, 3)
        XCTAssertEqual(io.runUntilIdle(), 1)
        XCTAssertEqual(disk.reads, [key(0, 0), key(1, 4)], "only the read already done and the new prediction")
        XCTAssertTrue(store.isResident(key(1, 4)))
        for expert in 1...3 { XCTAssertFalse(store.isResident(key(0, expert))) }

        // A new generation cancels what is still queued for the old one.
        store.predict(lookahead: [[key(1, 2), key(1, 3)]])
        store.resetPredictions()
        XCTAssertEqual(store.metrics().cancelledPrefetches, 5)
        XCTAssertFalse(io.runNext())
        XCTAssertEqual(disk.reads.count, 2)
    }

    func testPredictedExpertsAreHitsAndUnusedOnesAreCountedAsWaste() throws {
        let fixture = try makeStore()
        let store = fixture.store
        store.beginStep()
        store.predict(lookahead: [[key(0, 0), key(0, 1)]])
        XCTAssertEqual(fixture.io.runUntilIdle(), 2)
        store.willNeed([key(0, 0)])
        XCTAssertNotNil(store.weights(for: key(0, 0)))
        store.endStep()
        store.close()
        XCTAssertEqual(fixture.disk.reads, [key(0, 0), key(0, 1)])
        let metrics = store.metrics()
        XCTAssertEqual(metrics.hits, 1)
        XCTAssertEqual(metrics.stagingHits, 1)
        let bytes = fixture.expertBytes
        XCTAssertEqual(metrics.prefetchedBytes, 2 * bytes)
        XCTAssertEqual(metrics.prefetchUsedBytes, bytes)
        XCTAssertEqual(metrics.wastedPrefetchBytes, bytes)
    }

    func testStagingKeepsTheMostRecentlyDemotedExperts() throws {
        for eviction in [EvictionPolicy.lru, .scored] {
            let fixture = try makeStore(hot: 2, staging: 1, eviction: eviction)
            let store = fixture.store
            defer { store.close() }
            // A, B fill the hot set; C demotes A to staging; D demotes B, which must displace A.
            for expert in [0, 1, 2, 3] { use(key(0, expert), in: store) }
            XCTAssertFalse(store.isResident(key(0, 0)), "\(eviction): A left memory")
            XCTAssertTrue(store.isResident(key(0, 1)), "\(eviction): B waits in staging")
            use(key(0, 1), in: store)
            XCTAssertEqual(fixture.disk.reads, [0, 1, 2, 3].map { key(0, $0) }, "\(eviction): B came back from staging, not from disk")
            XCTAssertEqual(store.metrics().stagingHits, 1, "\(eviction)")
        }
    }

    func testScoredEvictionKeepsTheExpertTheRoutingFavours() throws {
        // Room for two experts; E0 is used every third step between experts never seen again,
        // so LRU always evicts it just before it comes back.
        var reads: [EvictionPolicy: Int] = [:]
        for eviction in [EvictionPolicy.lru, .scored] {
            let fixture = try makeStore(hot: 2, staging: 0, eviction: eviction)
            let store = fixture.store
            defer { store.close() }
            let experts = store.cache.manifest.experts.map(\.key).filter { $0 != key(0, 0) }
            for step in 0..<36 {
                use(step % 3 == 0 ? key(0, 0) : experts[(step - step / 3 - 1) % experts.count], in: store)
            }
            reads[eviction] = fixture.disk.reads.filter { $0 == key(0, 0) }.count
        }
        XCTAssertEqual(reads[.lru], 12, "LRU reads the favourite back every time")
        XCTAssertLessThanOrEqual(reads[.scored]!, 4, "its rate of use keeps it resident once measured")
    }

    func testScoredEvictionKeepsTheExpertTheForecastNames() throws {
        // Room for two experts, each used once: without a forecast the older use leaves first.
        for forecast in [false, true] {
            let fixture = try makeStore(hot: 2, staging: 0, eviction: .scored)
            let store = fixture.store
            defer { store.close() }
            use(key(0, 0), in: store)
            use(key(0, 1), in: store)
            if forecast { store.forecast(chanceOfUse: [key(0, 0): 0.9, key(0, 1): 0.05]) }
            use(key(0, 2), in: store)
            XCTAssertEqual(store.isResident(key(0, 0)), forecast, forecast ? "the forecast kept E0" : "E0, used longest ago, was evicted")
            XCTAssertEqual(store.isResident(key(0, 1)), !forecast)
            use(key(0, 0), in: store)
            XCTAssertEqual(fixture.disk.reads.filter { $0 == key(0, 0) }.count, forecast ? 1 : 2)
        }
    }

    func testExpertsInMemoryAreUsedFirstWhileTheOthersLoad() throws {
        let fixture = try makeStore(device: SteppedStore.device)
        let (store, disk, io, clock) = (fixture.store, fixture.disk, fixture.io, fixture.clock)
        defer { store.close() }
        use(key(0, 3), in: store)
        store.beginStep()
        XCTAssertEqual(store.willNeed([key(0, 1), key(0, 2), key(0, 3)]), [key(0, 3), key(0, 1), key(0, 2)])
        let before = store.metrics().stallNanoseconds
        XCTAssertNotNil(store.weights(for: key(0, 3)))
        XCTAssertEqual(disk.reads, [key(0, 3)], "the resident expert is served without waiting for any load")
        XCTAssertEqual(store.metrics().stallNanoseconds, before)
        XCTAssertTrue(io.runNext())
        XCTAssertEqual(disk.reads.last, key(0, 1), "the misses load in use order")
        let now = clock.now
        XCTAssertNotNil(store.weights(for: key(0, 1)))
        XCTAssertNotNil(store.weights(for: key(0, 2)))
        XCTAssertEqual(clock.now - now, SteppedStore.readNanoseconds, "only E2 was waited for")
        store.endStep()
    }

    func testReadinessComesAfterTheLoadStepAndAWaitStallsForExactlyTheRead() throws {
        let fixture = try makeStore(device: SteppedStore.device)
        let (store, disk, io, clock) = (fixture.store, fixture.disk, fixture.io, fixture.clock)
        defer { store.close() }
        XCTAssertEqual(fixture.expertBytes, 2304, "the simulated device's times assume the fixture's expert size")
        store.beginStep()
        store.willNeed([key(0, 0), key(0, 1)])
        XCTAssertFalse(store.isResident(key(0, 0)), "queued, not loaded")
        XCTAssertEqual(disk.reads, [])
        XCTAssertTrue(io.runNext())
        XCTAssertTrue(store.isResident(key(0, 0)), "ready once its load step ran")
        XCTAssertFalse(store.isResident(key(0, 1)), "its load has not run")
        XCTAssertEqual(clock.now, SteppedStore.readNanoseconds)
        XCTAssertNotNil(store.weights(for: key(0, 0)))
        XCTAssertEqual(store.metrics().stallNanoseconds, 0, "a ready expert costs no wait")
        // Under `wait` the call for a queued expert runs its load on this thread and stalls
        // for exactly the simulated read: latency, then transfer after the previous one.
        XCTAssertNotNil(store.weights(for: key(0, 1)))
        store.endStep()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.stallNanoseconds, SteppedStore.readNanoseconds)
        XCTAssertEqual(metrics.readNanoseconds, 2 * SteppedStore.readNanoseconds)
        XCTAssertEqual(clock.now, 2 * SteppedStore.readNanoseconds)
        XCTAssertEqual(disk.reads, [key(0, 0), key(0, 1)])
    }

    func testFallbackNeverWaitsAndServesTheExpertOnceLoaded() throws {
        let fixture = try makeStore(policy: .fallback, device: SteppedStore.device)
        let (store, io, clock) = (fixture.store, fixture.io, fixture.clock)
        defer { store.close() }
        store.beginStep()
        store.willNeed([key(1, 2)])
        XCTAssertNil(store.weights(for: key(1, 2)), "not loaded yet: the block falls back")
        XCTAssertEqual(fixture.disk.reads, [], "and nothing was read on the decode thread")
        XCTAssertEqual(clock.now, 0)
        XCTAssertTrue(io.runNext())
        XCTAssertNotNil(store.weights(for: key(1, 2)))
        store.endStep()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.fallbacks, 1)
        XCTAssertEqual(metrics.stallNanoseconds, 0)
        XCTAssertEqual(metrics.readNanoseconds, SteppedStore.readNanoseconds)
    }

    func testABudgetOfOneExpertServesALayerThatNeedsMany() throws {
        let fixture = try makeStore(budget: .fraction(1.0 / 12), stagingFraction: 0, device: SteppedStore.device)
        let store = fixture.store
        defer { store.close() }
        store.beginStep()
        let keys = (0..<6).map { key(0, $0) }
        store.willNeed(keys)
        for key in keys {
            XCTAssertNotNil(store.weights(for: key))
            XCTAssertEqual(store.residentBytes()[.hot], fixture.expertBytes, "only \(key) is held")
        }
        store.endStep()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.peakResidentBytes, fixture.expertBytes)
        XCTAssertEqual(metrics.reads, 6)
        XCTAssertEqual(metrics.evictions, 5)
        XCTAssertEqual(fixture.disk.reads, keys, "one at a time, in use order")
        XCTAssertEqual(metrics.stallNanoseconds, 6 * SteppedStore.readNanoseconds, "each need waited for its own read")
    }

    func testSimulatedDiskChargesLatencyAndBandwidth() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let cache = try ExpertCache.open(modelDirectory: directory)
        let model = SteppedStore.device, latency: UInt64 = 2_000_000, transfer: UInt64 = 1_000_000
        let entry = cache.manifest.experts[0]
        XCTAssertEqual(entry.length, 2304)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: entry.length, alignment: 64)
        defer { buffer.deallocate() }
        let request = DiskRead(
            file: entry.file, path: cache.path(ofFile: entry.file), offset: entry.offset, length: entry.length,
            expert: entry.key)

        // Two reads one after the other: each pays the latency and its transfer.
        let clock = ManualClock(start: 1_000)
        let disk = SimulatedDisk(wrapping: try FileExpertDisk(cache: cache), model: model, clock: clock)
        XCTAssertEqual(try disk.read(request, into: buffer), entry.length)
        XCTAssertEqual(clock.now, 1_000 + latency + transfer)
        XCTAssertEqual(try disk.read(request, into: buffer), entry.length)
        XCTAssertEqual(clock.now, 1_000 + 2 * (latency + transfer))
        disk.charge(bytes: entry.length, file: entry.file)
        XCTAssertEqual(clock.now, 1_000 + 3 * (latency + transfer), "a charged read takes the time of a real one")
        clock.advance(by: 5_000_000)
        XCTAssertEqual(try disk.read(request, into: buffer), entry.length)
        XCTAssertEqual(clock.now, 1_000 + 5_000_000 + 4 * (latency + transfer), "after an idle spell a read starts when it arrives")

        // A read issued while another is under way overlaps its latency and queues its transfer.
        let overlapClock = ManualClock()
        let inner = NestedReadDisk(base: try FileExpertDisk(cache: cache))
        let overlapped = SimulatedDisk(wrapping: inner, model: model, clock: overlapClock)
        inner.nested = { XCTAssertEqual(try? overlapped.read(request, into: buffer), entry.length) }
        XCTAssertEqual(try overlapped.read(request, into: buffer), entry.length)
        XCTAssertEqual(overlapClock.now, latency + 2 * transfer)

        XCTAssertEqual(
            try DiskModel.fromEnvironment(["CHRONOS_SIM_SSD_MS": "2", "CHRONOS_SIM_SSD_MBPS": "500"]),
            DiskModel(milliseconds: 2, megabytesPerSecond: 500))
        XCTAssertNil(try DiskModel.fromEnvironment([:]))
        for (name, value) in [
            ("CHRONOS_SIM_SSD_MBPS", "0"), ("CHRONOS_SIM_SSD_MBPS", "nan"), ("CHRONOS_SIM_SSD_MS", "inf"),
            ("CHRONOS_SIM_SSD_MS", "-1"), ("CHRONOS_SIM_SSD_MS", "fast")
        ] {
            XCTAssertThrowsError(try DiskModel.fromEnvironment([name: value]), "\(name)=\(value)") { error in
                XCTAssertEqual((error as? InvalidSetting)?.name, name)
            }
        }
    }

    func testChronosRunPredictsAndReportsPredictionQuality() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        try IntentClassifier(hiddenSize: 16, inputLayer: 0, layers: [0, 1], experts: 6, horizon: 8, width: 8, seed: 1).save(in: directory)
        let settings = OffloadSettings(
            mode: .chronos, budget: .fraction(0.75), policy: .wait, stagingFraction: 0.5,
            disk: DiskModel(milliseconds: 0.2, megabytesPerSecond: 2000))
        let run = try StorageFixtures.generate(directory, settings, prompt: StorageFixtures.prompt(12, vocab: 32), tokens: 10)
        let report = run.metrics.predictions
        XCTAssertEqual(report.lookahead.count, 2, "the tiny model looks 2 tokens ahead")
        XCTAssertEqual(report.lookahead[0].samples, 9, "after the prompt and each decode pass but the last")
        XCTAssertNotNil(report.lookahead[0].recall)
        XCTAssertNotNil(report.lookaheadShuffled[0].recall)
        XCTAssertNotNil(report.lookaheadFrequency[0].recall)
        XCTAssertNotNil(report.lookaheadPrevious[0].recall)
        XCTAssertEqual(report.prompt.samples, 1)
        XCTAssertGreaterThan(run.final!.prefetchedBytes, 0)
        XCTAssertEqual(run.metrics.decodeSteps, 9)
        XCTAssertGreaterThan(run.metrics.tokensPerSecond, 0)
    }
}

/// Predictors trained from traces plug into a Hugging Face model's offloaded run.
final class TrainedPredictorRunTests: XCTestCase {
    func testTrainedLookaheadAndIntentDriveAMixtralRunWithoutChangingItsTokens() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        try StorageFixtures.pack(directory)
        let prompt = StorageFixtures.prompt(10, vocab: 256)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 8)
        let settings = OffloadSettings(mode: .chronos, budget: .fraction(0.5), policy: .wait)
        let plain = try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 8)
        XCTAssertEqual(plain.ids, expected)
        XCTAssertTrue(plain.metrics.predictions.lookahead.isEmpty, "a Mixtral has no lookahead head of its own")
        XCTAssertEqual(plain.metrics.predictions.prompt.samples, 0)

        try TrainedLookaheadHead(hiddenSize: 64, inputLayer: 1, layers: [0, 1], experts: 4, steps: 3, width: 16, seed: 2).save(
            in: directory)
        try IntentClassifier(hiddenSize: 64, inputLayer: 0, layers: [0, 1], experts: 4, horizon: 8, width: 16, seed: 3).save(in: directory)
        let run = try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 8)
        XCTAssertEqual(run.ids, expected)
        XCTAssertEqual(run.metrics.predictions.lookahead.count, 3)
        XCTAssertNotNil(run.metrics.predictions.lookahead[0].recall)
        XCTAssertEqual(run.metrics.predictions.prompt.samples, 1)

        var off = settings
        off.predictors = PredictorSelection(lookahead: false, intent: false)
        let without = try StorageFixtures.generate(directory, off, prompt: prompt, tokens: 8)
        XCTAssertEqual(without.ids, expected)
        XCTAssertTrue(without.metrics.predictions.lookahead.isEmpty)
        XCTAssertEqual(without.metrics.predictions.prompt.samples, 0)
    }
}

/// Next-layer previews, driven one load at a time on the test's thread.
final class NextLayerPreviewTests: XCTestCase {
    func key(_ layer: Int, _ expert: Int) -> ExpertKey { ExpertKey(layer: layer, expert: expert) }

    /// Each step layer 0 uses E(s) and layer 1 uses E(s); the preview names layer 1's expert
    /// (right) or another one (wrong) before layer 1 announces its needs.
    func run(right: Bool) throws -> StorageMetrics {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let cache = try ExpertCache.open(modelDirectory: directory)
        // Room for three experts: every expert has left memory before it comes round again.
        let expert = cache.byteCount(of: key(0, 0))
        let io = SteppedIOExecutor()
        let store = try ExpertStore(
            cache: cache, disk: try FileExpertDisk(cache: cache),
            settings: ExpertStoreSettings(
                budget: ResidencyBudget(hot: 2 * expert, staging: expert), policy: .wait, ioThreads: 1), clock: ManualClock(), io: io)
        defer { store.close() }
        let experts = cache.manifest.experts.filter { $0.key.layer == 1 }.count
        for step in 0..<(3 * experts) {
            let used = step % experts
            store.beginStep()
            store.willNeed([key(0, used)])
            XCTAssertNotNil(store.weights(for: key(0, used)))
            store.predict(nextLayer: [key(1, right ? used : (used + 1) % experts)], layer: 1)
            io.runUntilIdle()
            store.willNeed([key(1, used)])
            XCTAssertNotNil(store.weights(for: key(1, used)))
            store.endStep()
        }
        return store.metrics()
    }

    func testPreviewsThatProveRightAreLoadedAndUsed() throws {
        let metrics = try run(right: true)
        XCTAssertGreaterThan(metrics.prefetchUsedBytes, 0, "once its record is good, the preview loads the next layer's expert")
        XCTAssertEqual(metrics.prefetchUsedBytes, metrics.prefetchedBytes, "every preview loaded was used")
        XCTAssertGreaterThan(metrics.stagingHits, 0)
    }

    func testPreviewsThatAreWrongCostNoReads() throws {
        XCTAssertEqual(try run(right: false).prefetchedBytes, 0)
    }
}

/// A disk that, on its first read, calls `nested` before reading: a second request arriving
/// while the first is under way.
final class NestedReadDisk: ExpertDisk, @unchecked Sendable {
    let base: any ExpertDisk
    var nested: (() -> Void)?

    init(base: any ExpertDisk) {
        self.base = base
    }

    func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        if let nested {
            self.nested = nil
            nested()
        }
        return try base.read(request, into: buffer)
    }
}
