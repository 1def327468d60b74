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
