import ChronosEngine
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import Synchronization
import XCTest

/// Generations decoding at once through one `PassBatcher`: the same tokens as each alone, in
/// shared passes.
final class PassBatcherTests: XCTestCase {
    private let prompts = [[1, 5, 2, 7, 3], [4, 4, 9], [8], [2, 6, 1, 3, 3, 0]]

    /// The 12 greedy ids after `prompt`, each pass run by `forward` on `cache` (a new one when nil).
    private static func generate(
        _ model: any LanguageModel, _ prompt: [Int], cache: ModelCache? = nil,
        forward: @escaping (_ ids: [Int], _ cache: ModelCache) throws -> Tensor
    ) throws -> [Int] {
        try Generator(model: model, tokenizer: nil).run(
            GenerationRequest(promptIds: prompt, maxTokens: 12, ignoreEOS: true), cache: cache ?? model.makeCache(),
            forward: { ids, cache, _ in try forward(ids, cache) }, onToken: { _ in true }
        ).ids
    }

    func testGenerationsRunTogetherGiveTheirOwnTokensInSharedPasses() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral"))
        let alone = try prompts.map { prompt in try Self.generate(model, prompt) { ids, cache in try model.forward(ids, cache: cache) } }

        // Every generation joins before any starts, so each pass waits for all that still run.
        let batcher = PassBatcher(model: model, gatherFraction: 0, minimumGatherWindow: 1)
        for _ in prompts { batcher.join() }
        let together = Mutex([[Int]?](repeating: nil, count: prompts.count))
        let done = DispatchGroup()
        for (index, prompt) in prompts.enumerated() {
            done.enter()
            Thread {
                defer {
                    batcher.leave()
                    done.leave()
                }
                let ids = try? Self.generate(model, prompt) { ids, cache in
                    try batcher.forward(ids, cache: cache, options: ForwardOptions()).logits
                }
                together.withLock { $0[index] = ids }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(together.withLock { $0 }, alone.map { Optional($0) })
        // A prompt pass, then one pass per new token but the last: all four in each.
        let counts = batcher.passCounts
        XCTAssertEqual(counts.sequences, prompts.count * 12)
        XCTAssertEqual(counts.passes, 12)
    }

    /// `experts`, failing for good once asked for weights more than `after` times.
    private final class FailingExperts: ExpertProvider {
        struct Failed: Error {}
        let experts: any ExpertProvider
        let after: Int
        private let calls = Mutex(0)

        init(_ experts: any ExpertProvider, after: Int) {
            self.experts = experts
            self.after = after
        }

        func weights(for key: ExpertKey) -> ExpertWeights? {
            calls.withLock { $0 += 1 }
            return experts.weights(for: key)
        }
        func willNeed(_ keys: [ExpertKey]) -> [ExpertKey] { experts.willNeed(keys) }
        var failure: (any Error)? { calls.withLock { $0 } > after ? Failed() : nil }
    }

    /// One generation's experts fail during a shared decode pass: it ends with the failure, and
    /// the other generation in the pass goes on to the tokens it gives alone.
    func testAFailedSharedPassEndsOnlyTheGenerationItBelongsTo() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral"))
        let alone = try Self.generate(model, prompts[0]) { ids, cache in try model.forward(ids, cache: cache) }
        let batcher = PassBatcher(model: model, gatherFraction: 0, minimumGatherWindow: 1)
        batcher.join()
        batcher.join()
        let prompts = prompts
        let results = Mutex([Result<[Int], any Error>?](repeating: nil, count: 2))
        let done = DispatchGroup()
        for index in 0..<2 {
            done.enter()
            Thread {
                defer {
                    batcher.leave()
                    done.leave()
                }
                let cache = model.makeCache()
                // Past the prompt passes: the failure lands in a decode step both generations share.
                if index == 1 { cache.experts = FailingExperts(model.experts, after: 20) }
                let result = Result {
                    try Self.generate(model, prompts[index], cache: cache) { ids, cache in
                        try batcher.forward(ids, cache: cache, options: ForwardOptions()).logits
                    }
                }
                results.withLock { $0[index] = result }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        let (first, second) = results.withLock { ($0[0], $0[1]) }
        XCTAssertEqual(try first?.get(), alone)
        XCTAssertThrowsError(try second?.get()) { XCTAssertTrue($0 is FailingExperts.Failed, "\($0)") }
        XCTAssertGreaterThan(batcher.passCounts.sequences, batcher.passCounts.passes, "the generations shared passes")
    }

    /// `model`, each pass taking at least `seconds` more.
    private final class SlowModel: LanguageModel {
        let model: any LanguageModel
        let seconds: Double

        init(_ model: any LanguageModel, seconds: Double) {
            self.model = model
            self.seconds = seconds
        }

        var summary: ModelSummary { model.summary }
        var parameterCounts: ParameterCounts { model.parameterCounts }
        var experts: any ExpertProvider { model.experts }
        func makeCache() -> ModelCache { model.makeCache() }
        func checkpointNames(for key: ExpertKey) -> ExpertWeightNames? { model.checkpointNames(for: key) }
        func forward(_ sequences: [ForwardSequence], options: ForwardOptions) throws -> [ForwardOutput] {
            Thread.sleep(forTimeInterval: seconds)
            return try model.forward(sequences, options: options)
        }
    }

    func testGenerationsSplitAtTheStartRejoinInOnePass() throws {
        // One generation hands over its prompt after the others' pass has begun; the others'
        // next passes are handed over right after theirs ends, so the next pass runs all four
        // instead of the late one alone while the other three wait, alternating from then on.
        let model = SlowModel(try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral")), seconds: 0.04)
        let batcher = PassBatcher(model: model, gatherFraction: 0.5, minimumGatherWindow: 0.001)
        for _ in prompts { batcher.join() }
        let done = DispatchGroup()
        let late = prompts.count - 1
        for (index, prompt) in prompts.enumerated() {
            done.enter()
            Thread {
                defer {
                    batcher.leave()
                    done.leave()
                }
                if index == late { Thread.sleep(forTimeInterval: 0.01) }
                _ = try? Self.generate(model, prompt) { ids, cache in
                    try batcher.forward(ids, cache: cache, options: ForwardOptions()).logits
                }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        let counts = batcher.passCounts
        XCTAssertEqual(counts.sequences, prompts.count * 12)
        XCTAssertLessThanOrEqual(counts.passes, 14, "the late generation's passes ran apart from the others' (\(counts.passes) passes)")
    }

    func testAPassOnItsOwnDoesNotWait() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral"))
        let batcher = PassBatcher(model: model, gatherFraction: 0, minimumGatherWindow: 60)
        let started = Date()
        let ids = try Self.generate(model, prompts[0]) { ids, cache in
            try batcher.forward(ids, cache: cache, options: ForwardOptions()).logits
        }
        XCTAssertEqual(ids.count, 12)
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "a pass with no other member waited for the gather window")
        XCTAssertEqual(batcher.passCounts.passes, 12)
    }
}
