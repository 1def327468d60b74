import ChronosEngine
import ChronosModel
import ChronosRouting
@testable import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// A disk that records the order of the experts it reads and takes `delay` per read; with a
/// gate, its first read waits until the gate opens.
final class RecordingDisk: ExpertDisk, @unchecked Sendable {
    let base: any ExpertDisk
    let delay: Double
    let gate = DispatchSemaphore(value: 0)
    let gated: Bool
    private let lock = NSLock()
    private var order: [ExpertKey] = []

    init(base: any ExpertDisk, delay: Double, gated: Bool = false) {
        self.base = base
        self.delay = delay
        self.gated = gated
    }

    var reads: [ExpertKey] { lock.withLock { order } }

    func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        let first = lock.withLock { () -> Bool in
            order.append(request.expert)
            return order.count == 1
        }
        if gated && first { gate.wait() }
        Thread.sleep(forTimeInterval: delay)
        return try base.read(request, into: buffer)
    }
}

final class PrefetchTests: XCTestCase {
    func makeStore(delay: Double, budget: ExpertBudget = .fraction(1), stagingFraction: Double = 0.5,
                   policy: MissPolicy = .wait, gated: Bool = false, trustPredictions: Bool = true) throws -> (ExpertStore, RecordingDisk) {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let cache = try ExpertCache.open(modelDirectory: directory)
        let disk = RecordingDisk(base: try FileExpertDisk(cache: cache), delay: delay, gated: gated)
        let total = budget.bytes(ofTotal: cache.totalExpertBytes)
        let store = try ExpertStore(cache: cache, disk: disk, settings: ExpertStoreSettings(
            budget: ResidencyBudget(total: total, stagingFraction: stagingFraction), policy: policy, ioThreads: 1,
            promptWeight: 0.5, prefetchThreshold: trustPredictions ? 0 : 0.3, prefetchLift: trustPredictions ? 0 : 1.5))
        return (store, disk)
    }

    func key(_ layer: Int, _ expert: Int) -> ExpertKey { ExpertKey(layer: layer, expert: expert) }

    func testNeedsJumpAheadOfPredictionsAndPredictionsAheadOfThePromptSet() throws {
        let (store, disk) = try makeStore(delay: 0, gated: true)
        defer { store.close() }
        store.beginStep()
        store.preload(promptSet: [key(1, 5)])
        store.predict(lookahead: [[key(0, 1)], [key(0, 2)], [key(0, 3)]])
        while disk.reads.isEmpty { Thread.sleep(forTimeInterval: 0.001) }  // the first read is under way, held at the gate
        store.willNeed([key(1, 0), key(1, 1)])
        disk.gate.signal()
        XCTAssertNotNil(store.weights(for: key(1, 0)))
        XCTAssertNotNil(store.weights(for: key(1, 1)))
        store.endStep()
        store.waitUntilIdle()
        let reads = disk.reads
        XCTAssertEqual(reads.count, 5, "\(reads)")
        // Whatever read was already under way, the needs come next in use order, then t+1, t+2,
        // and the prompt-level set last; t+3 is beyond the loading horizon.
        XCTAssertFalse(reads.contains(key(0, 3)))
        let expected = [key(1, 0), key(1, 1)] + [key(0, 1), key(0, 2), key(1, 5)].filter { $0 != reads[0] }
        XCTAssertEqual(Array(reads.dropFirst()), expected, "\(reads)")
        let metrics = store.metrics()
        XCTAssertEqual(metrics.needed, 2)
        XCTAssertEqual(metrics.hits, 0, "both needs were misses when announced")
    }

    func testLoadsPredictedWhileATokenRunsQueueBehindItsOwn() throws {
        let (store, disk) = try makeStore(delay: 0, gated: true)
        defer { store.close() }
        // Before the token runs: its own predictions, the first held at the gate.
        store.predict(lookahead: [[key(1, 0), key(1, 3)]])
        store.beginStep()
        while disk.reads.isEmpty { Thread.sleep(forTimeInterval: 0.001) }
        // While it runs: the next token's, first in the predictor's order.
        store.prefetch(ahead: [[key(0, 1)]])
        disk.gate.signal()
        store.waitUntilIdle()
        store.endStep()
        XCTAssertEqual(disk.reads, [key(1, 0), key(1, 3), key(0, 1)], "the running token's predicted loads come first")
    }

    func testOnlyPredictionsWithAGoodRecordAreLoaded() throws {
        // Each step uses L0/E(step % 6); one lookahead always names it, the other never does.
        func run(right: Bool) throws -> Int {
            let (store, _) = try makeStore(delay: 0, trustPredictions: false)
            defer { store.close() }
            for step in 0..<8 {
                store.beginStep()
                store.willNeed([key(0, step % 6)])
                XCTAssertNotNil(store.weights(for: key(0, step % 6)))
                store.endStep()
                store.predict(lookahead: [[right ? key(0, (step + 1) % 6) : key(1, step % 6)]])
                store.waitUntilIdle()
            }
            return store.metrics().prefetchedBytes / store.cache.byteCount(of: key(0, 0))
        }
        XCTAssertEqual(try run(right: false), 0, "a predictor with no record of skill costs no reads")
        XCTAssertGreaterThan(try run(right: true), 0, "a predictor that proves right is loaded")
    }

    func testEachLookaheadSourceIsLoadedOnItsOwnRecord() throws {
        // Every step uses a new expert; after it, the head always names a wrong one and the
        // repetition of earlier text always the right one, in turn. Scored together they would
        // be right half the time and both would load.
        let (store, _) = try makeStore(hot: 2, staging: 2, eviction: .scored)
        defer { store.close() }
        let experts = store.cache.manifest.experts.map(\.key)
        for step in 0..<24 {
            use(experts[step % experts.count], in: store)
            if step % 2 == 0 {
                store.predict(lookahead: [[experts[(step + 5) % experts.count]]], source: .head)
            } else {
                store.predict(lookahead: [[experts[(step + 1) % experts.count]]], source: .repetition(matched: 5))
            }
            store.waitUntilIdle()
        }
        let metrics = store.metrics()
        XCTAssertGreaterThan(metrics.prefetchUsedBytes, 0, "the repetition proved right and was loaded")
        XCTAssertEqual(metrics.wastedPrefetchBytes, 0, "the head never proved right and was never loaded")
    }

    func testALookaheadIsLoadedOnlyOnItsRecordForExpertsNotInMemory() throws {
        // The head names two experts each step: the one every step uses (held in memory, always
        // right) and one not in memory (always wrong). Half right overall, it never earns a load.
        let (store, _) = try makeStore(hot: 2, staging: 2, eviction: .scored)
        defer { store.close() }
        let experts = store.cache.manifest.experts.map(\.key), always = experts[0]
        for step in 0..<24 {
            use(always, in: store)
            store.predict(lookahead: [[always, experts[1 + step % (experts.count - 1)]]], source: .head)
            store.waitUntilIdle()
        }
        XCTAssertEqual(store.metrics().wastedPrefetchBytes, 0, "the experts it would load were never used")
        XCTAssertEqual(store.metrics().prefetchUsedBytes, 0)

        // Naming the next step's expert, not in memory, it earns loads that are used.
        let (right, _) = try makeStore(hot: 2, staging: 2, eviction: .scored)
        defer { right.close() }
        for step in 0..<24 {
            use(experts[step % experts.count], in: right)
            right.predict(lookahead: [[experts[(step + 1) % experts.count]]], source: .head)
            right.waitUntilIdle()
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
        var residency = ExpertResidency(budget: ResidencyBudget(hot: 1 << 20, staging: 0), eviction: .scored, promptWeight: 0.25,
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

    func testStalePredictionsAreCancelled() throws {
        let (store, disk) = try makeStore(delay: 0, gated: true)
        defer { store.close() }
        store.beginStep()
        store.predict(lookahead: [[key(0, 0), key(0, 1), key(0, 2), key(0, 3)]])
        while disk.reads.isEmpty { Thread.sleep(forTimeInterval: 0.001) }
        store.predict(lookahead: [[key(1, 4)]])
        disk.gate.signal()
        store.waitUntilIdle()
        XCTAssertEqual(disk.reads.count, 2, "only the read already under way and the new prediction: \(disk.reads)")
        XCTAssertEqual(store.metrics().cancelledPrefetches, 3)
        XCTAssertTrue(store.isResident(key(1, 4)))
    }

    func testPredictedExpertsAreHitsAndUnusedOnesAreCountedAsWaste() throws {
        let (store, _) = try makeStore(delay: 0)
        store.beginStep()
        store.predict(lookahead: [[key(0, 0), key(0, 1)]])
        store.waitUntilIdle()
        store.willNeed([key(0, 0)])
        XCTAssertNotNil(store.weights(for: key(0, 0)))
        store.endStep()
        store.close()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.hits, 1)
        XCTAssertEqual(metrics.stagingHits, 1)
        let bytes = store.cache.byteCount(of: key(0, 0))
        XCTAssertEqual(metrics.prefetchedBytes, 2 * bytes)
        XCTAssertEqual(metrics.prefetchUsedBytes, bytes)
        XCTAssertEqual(metrics.wastedPrefetchBytes, bytes)
    }

    /// A store with room for `hot` and `staging` experts (of the fixture's equal size), reading
    /// without delay through a recording disk.
    func makeStore(hot: Int, staging: Int, eviction: EvictionPolicy) throws -> (ExpertStore, RecordingDisk) {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let cache = try ExpertCache.open(modelDirectory: directory)
        let disk = RecordingDisk(base: try FileExpertDisk(cache: cache), delay: 0)
        let expert = cache.byteCount(of: key(0, 0))
        let store = try ExpertStore(cache: cache, disk: disk, settings: ExpertStoreSettings(
            budget: ResidencyBudget(hot: hot * expert, staging: staging * expert), eviction: eviction, ioThreads: 1))
        return (store, disk)
    }

    /// One decode step that uses `key` alone.
    func use(_ key: ExpertKey, in store: ExpertStore) {
        store.beginStep(tokens: 1)
        store.willNeed([key])
        XCTAssertNotNil(store.weights(for: key))
        store.endStep()
    }

    func testStagingKeepsTheMostRecentlyDemotedExperts() throws {
        for eviction in [EvictionPolicy.lru, .scored] {
            let (store, disk) = try makeStore(hot: 2, staging: 1, eviction: eviction)
            defer { store.close() }
            // A, B fill the hot set; C demotes A to staging; D demotes B, which must displace A.
            for expert in [0, 1, 2, 3, 1] { use(key(0, expert), in: store) }
            XCTAssertEqual(disk.reads, [0, 1, 2, 3].map { key(0, $0) }, "\(eviction): B came back from staging, not from disk")
        }
    }

    func testScoredEvictionKeepsTheExpertTheRoutingFavours() throws {
        // Room for two experts; E0 is used every third step between experts never seen again,
        // so LRU always evicts it just before it comes back.
        var reads: [EvictionPolicy: Int] = [:]
        for eviction in [EvictionPolicy.lru, .scored] {
            let (store, disk) = try makeStore(hot: 2, staging: 0, eviction: eviction)
            defer { store.close() }
            let experts = store.cache.manifest.experts.map(\.key).filter { $0 != key(0, 0) }
            for step in 0..<36 {
                use(step % 3 == 0 ? key(0, 0) : experts[(step - step / 3 - 1) % experts.count], in: store)
            }
            reads[eviction] = disk.reads.filter { $0 == key(0, 0) }.count
        }
        XCTAssertEqual(reads[.lru], 12, "LRU reads the favourite back every time")
        XCTAssertLessThanOrEqual(reads[.scored]!, 4, "its rate of use keeps it resident once measured")
    }

    func testScoredEvictionKeepsTheExpertTheForecastNames() throws {
        // Room for two experts, each used once: without a forecast the older use leaves first.
        for forecast in [false, true] {
            let (store, disk) = try makeStore(hot: 2, staging: 0, eviction: .scored)
            defer { store.close() }
            use(key(0, 0), in: store)
            use(key(0, 1), in: store)
            if forecast { store.forecast(chanceOfUse: [key(0, 0): 0.9, key(0, 1): 0.05]) }
            use(key(0, 2), in: store)
            use(key(0, 0), in: store)
            XCTAssertEqual(disk.reads.filter { $0 == key(0, 0) }.count, forecast ? 1 : 2,
                           forecast ? "the forecast kept E0" : "E0, used longest ago, was evicted")
        }
    }

    func testExpertsInMemoryAreUsedFirstWhileTheOthersLoad() throws {
        let (store, disk) = try makeStore(delay: 0, gated: true)
        defer { store.close() }
        store.beginStep()
        disk.gate.signal()
        store.willNeed([key(0, 3)])
        XCTAssertNotNil(store.weights(for: key(0, 3)))
        store.endStep()
        store.beginStep()
        XCTAssertEqual(store.willNeed([key(0, 1), key(0, 2), key(0, 3)]), [key(0, 3), key(0, 1), key(0, 2)])
        for expert in [3, 1, 2] { XCTAssertNotNil(store.weights(for: key(0, expert))) }
        store.endStep()
    }

    func testABudgetOfOneExpertServesALayerThatNeedsMany() throws {
        let (store, _) = try makeStore(delay: 0.001, budget: .fraction(1.0 / 12), stagingFraction: 0)
        defer { store.close() }
        store.beginStep()
        let keys = (0..<6).map { key(0, $0) }
        store.willNeed(keys)
        for key in keys { XCTAssertNotNil(store.weights(for: key)) }
        store.endStep()
        let metrics = store.metrics()
        XCTAssertEqual(metrics.peakResidentBytes, store.cache.byteCount(of: key(0, 0)))
        XCTAssertEqual(metrics.reads, 6)
    }

    func testSimulatedDiskChargesLatencyAndBandwidth() throws {
        let (store, _) = try makeStore(delay: 0)
        store.close()
        let cache = store.cache
        let model = DiskModel(milliseconds: 5, megabytesPerSecond: 1)  // 2304 bytes take 2.3 ms
        let disk = SimulatedDisk(wrapping: try FileExpertDisk(cache: cache), model: model)
        let entry = cache.manifest.experts[0]
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: entry.length, alignment: 64)
        defer { buffer.deallocate() }
        let start = DispatchTime.now().uptimeNanoseconds
        let request = DiskRead(file: entry.file, path: cache.path(ofFile: entry.file), offset: entry.offset, length: entry.length,
                               expert: entry.key)
        XCTAssertEqual(try disk.read(request, into: buffer), entry.length)
        XCTAssertEqual(try disk.read(request, into: buffer), entry.length)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        // Two back-to-back reads: each pays the latency, and the transfers share the bandwidth.
        XCTAssertGreaterThanOrEqual(elapsed, 2 * model.seconds(forReading: entry.length) * 0.95)
        XCTAssertEqual(try DiskModel.fromEnvironment(["CHRONOS_SIM_SSD_MS": "2", "CHRONOS_SIM_SSD_MBPS": "500"]),
                       DiskModel(milliseconds: 2, megabytesPerSecond: 500))
        XCTAssertNil(try DiskModel.fromEnvironment([:]))
        for (name, value) in [("CHRONOS_SIM_SSD_MBPS", "0"), ("CHRONOS_SIM_SSD_MBPS", "nan"), ("CHRONOS_SIM_SSD_MS", "inf"),
                              ("CHRONOS_SIM_SSD_MS", "-1"), ("CHRONOS_SIM_SSD_MS", "fast")] {
            XCTAssertThrowsError(try DiskModel.fromEnvironment([name: value]), "\(name)=\(value)") { error in
                XCTAssertEqual((error as? InvalidSetting)?.name, name)
            }
        }
    }

    func testChronosRunPredictsAndReportsPredictionQuality() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        try IntentClassifier(hiddenSize: 16, inputLayer: 0, layers: [0, 1], experts: 6, horizon: 8, width: 8, seed: 1).save(in: directory)
        let settings = OffloadSettings(mode: .chronos, budget: .fraction(0.75), policy: .wait, stagingFraction: 0.5,
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

        try TrainedLookaheadHead(hiddenSize: 64, inputLayer: 1, layers: [0, 1], experts: 4, steps: 3, width: 16, seed: 2).save(in: directory)
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
        let store = try ExpertStore(cache: cache, disk: try FileExpertDisk(cache: cache), settings: ExpertStoreSettings(
            budget: ResidencyBudget(hot: 2 * expert, staging: expert), policy: .wait, ioThreads: 1))
        defer { store.close() }
        let experts = cache.manifest.experts.filter { $0.key.layer == 1 }.count
        for step in 0..<(3 * experts) {
            let used = step % experts
            store.beginStep()
            store.willNeed([key(0, used)])
            XCTAssertNotNil(store.weights(for: key(0, used)))
            store.predict(nextLayer: [key(1, right ? used : (used + 1) % experts)], layer: 1)
            store.waitUntilIdle()
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
