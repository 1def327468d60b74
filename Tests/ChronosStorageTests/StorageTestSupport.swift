import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Model directories for storage tests: a tiny Chronos-native model written with `save`, and
/// copies of the Hugging Face fixtures (never packed in place).
enum StorageFixtures {
    /// A tiny Chronos configuration: 2 layers of 6 experts, top-2, a 2-token lookahead.
    static func chronosConfiguration(sharedExperts: Int = 1) -> ChronosConfiguration {
        ChronosConfiguration(
            vocabSize: 32, hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8, kvLatentDim: 8,
            ropeDim: 4, slidingWindow: 8, layerTypes: [.mla, .sliding], experts: 6, expertsPerToken: 2,
            sharedExperts: sharedExperts, moeIntermediateSize: 12, sharedExpertIntermediateSize: 10, normTopKProb: true,
            lookaheadSteps: 2, maxPositionEmbeddings: 128)
    }

    /// A new directory holding a tiny Chronos model with weights scaled so routing varies.
    static func chronosModel(sharedExperts: Int = 1, seed: UInt64 = 3) throws -> URL {
        try chronosModel(configuration: chronosConfiguration(sharedExperts: sharedExperts), seed: seed)
    }

    /// A new directory holding a Chronos model of `configuration` with weights scaled so routing varies.
    static func chronosModel(configuration: ChronosConfiguration, seed: UInt64) throws -> URL {
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: seed)
        for (name, tensor) in weights where !name.contains("norm") && !name.hasSuffix(".bias") {
            weights[name] = Tensor(shape: tensor.shape, values: tensor.floats.map { $0 * 20 })
        }
        let directory = try Fixtures.temporaryDirectory()
        try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: directory)
        return directory
    }

    /// A copy of `Tests/Fixtures/hf-tiny/<name>` in a new directory.
    static func huggingFaceModel(_ name: String) throws -> URL {
        let directory = try Fixtures.temporaryDirectory().appendingPathComponent(name)
        try FileManager.default.copyItem(at: Fixtures.url("hf-tiny/\(name)"), to: directory)
        return directory
    }

    /// Packs `directory` with the default plan, the experts stored as `dtype` (default: as checkpointed).
    @discardableResult
    static func pack(_ directory: URL, dtype: DType? = nil) throws -> ExpertCacheManifest {
        try ExpertCachePacker.pack(directory: directory, model: ModelLoader.load(directory: directory), dtype: dtype)
    }

    /// Packs `directory` as `chronos pack --dtype D --strip-experts [--dense-dtype DD]` does.
    @discardableResult
    static func packAndStrip(_ directory: URL, dtype: DType? = nil, denseDType: DType? = nil) throws -> CheckpointRewriter.Outcome {
        let model = try ModelLoader.load(directory: directory)
        try ExpertCachePacker.pack(directory: directory, model: model, dtype: dtype)
        return try CheckpointRewriter.rewrite(directory: directory, model: model, stripExperts: true, denseDType: denseDType)
    }

    /// A fixed prompt of `count` ids below `vocab`.
    static func prompt(_ count: Int, vocab: Int, salt: Int = 0) -> [Int] {
        (0..<count).map { ($0 * 7 + 3 + salt * 5) % vocab }
    }

    /// Greedy ids of a generation under `settings`, with its metrics (after `close`).
    static func generate(_ directory: URL, _ settings: OffloadSettings, prompt: [Int], tokens: Int)
        throws -> (ids: [Int], metrics: OffloadRunMetrics, final: StorageMetrics?)
    {
        let offloaded = try OffloadedModel(directory: directory, settings: settings)
        let generator = OffloadedGenerator(offloaded: offloaded, tokenizer: nil)
        let result = try generator.generate(GenerationRequest(promptIds: prompt, maxTokens: tokens, sampling: .greedy, ignoreEOS: true))
        offloaded.close()
        return (result.generation.ids, result.metrics, offloaded.storageMetrics())
    }

    /// Greedy ids with every expert resident.
    static func residentIds(_ directory: URL, prompt: [Int], tokens: Int) throws -> [Int] {
        try greedyIds(ModelLoader.load(directory: directory), prompt: prompt, tokens: tokens)
    }

    /// Greedy ids of `model` with every expert it has resident.
    static func greedyIds(_ model: any LanguageModel, prompt: [Int], tokens: Int) throws -> [Int] {
        try Generator(model: model, tokenizer: nil)
            .generate(GenerationRequest(promptIds: prompt, maxTokens: tokens, sampling: .greedy, ignoreEOS: true)).ids
    }

    /// Rewrites the file at `url` through `edit`, keeping its size and modification time.
    static func editKeepingModificationTime(_ url: URL, _ edit: (inout Data) -> Void) throws {
        let modified = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as! Date
        var data = try Data(contentsOf: url)
        let count = data.count
        edit(&data)
        precondition(data.count == count, "the edit keeps the size")
        try data.write(to: url)
        try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: url.path)
    }

    /// Flips one byte of the file at `url` at `offset`.
    static func flipByte(_ url: URL, at offset: Int) throws {
        var data = try Data(contentsOf: url)
        data[offset] ^= 0xFF
        try data.write(to: url)
    }
}

/// A disk that records, in order, the experts the store asks it to read.
final class RecordingDisk: ExpertDisk, @unchecked Sendable {
    let base: any ExpertDisk
    private let lock = NSLock()
    private var order: [ExpertKey] = []

    init(base: any ExpertDisk) {
        self.base = base
    }

    /// The experts asked for so far, retries included.
    var reads: [ExpertKey] { lock.withLock { order } }

    func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        lock.withLock { order.append(request.expert) }
        return try base.read(request, into: buffer)
    }

    func charge(bytes: Int, file: Int) { base.charge(bytes: bytes, file: file) }
}

/// An expert store over the tiny Chronos model driven step by step: its loads run only when
/// the test runs them (`io`) or when a call waits for one, on the test's thread, and its time
/// is a manual clock that only the simulated device (if any) moves.
struct SteppedStore {
    let store: ExpertStore
    /// Every read the store asked for, in order (below it: injected faults, the simulated
    /// device, the cluster files).
    let disk: RecordingDisk
    let io: SteppedIOExecutor
    let clock: ManualClock

    /// One 2304-byte expert of the fixture on `device` takes 2 ms of latency and 1 ms of transfer.
    static let device = DiskModel(milliseconds: 2, megabytesPerSecond: 2.304)
    /// Nanoseconds one isolated read of an expert takes on `device`.
    static let readNanoseconds: UInt64 = 3_000_000

    /// A store with the settings `settings` makes for the packed fixture's cache, reading through
    /// `device` (none: reads take no time) with `faults` injected.
    init(device: DiskModel? = nil, faults: [InjectedFault] = [], settings: (ExpertCache) -> ExpertStoreSettings) throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let cache = try ExpertCache.open(modelDirectory: directory)
        clock = ManualClock()
        var below: any ExpertDisk = try FileExpertDisk(cache: cache)
        if let device { below = SimulatedDisk(wrapping: below, model: device, clock: clock) }
        if !faults.isEmpty { below = FaultInjectingDisk(wrapping: below, faults: faults) }
        disk = RecordingDisk(base: below)
        io = SteppedIOExecutor()
        store = try ExpertStore(cache: cache, disk: disk, settings: settings(cache), clock: clock, io: io)
    }

    /// The size of one of the fixture's experts (all have the same).
    var expertBytes: Int { store.cache.byteCount(of: ExpertKey(layer: 0, expert: 0)) }
}
