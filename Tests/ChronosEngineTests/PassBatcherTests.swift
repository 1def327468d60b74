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

    /// The 12 greedy ids after `prompt`, each pass run by `forward`.
    private static func generate(
        _ model: any LanguageModel, _ prompt: [Int], forward: @escaping (_ ids: [Int], _ cache: ModelCache) throws -> Tensor
    ) throws -> [Int] {
        try Generator(model: model, tokenizer: nil).run(
            GenerationRequest(promptIds: prompt, maxTokens: 12, ignoreEOS: true), cache: model.makeCache(),
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
