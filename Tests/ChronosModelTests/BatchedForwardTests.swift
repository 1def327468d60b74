import ChronosTensor
import ChronosTestSupport
import XCTest

@testable import ChronosModel

/// A pass over several sequences against one pass per sequence: every family's attention
/// (grouped, sliding, latent), prompts and decode steps in one pass, and each sequence's own
/// observer and expert provider.
final class BatchedForwardTests: XCTestCase {
    /// Prompts of different lengths, then decode steps, run once sequence by sequence and once
    /// batched (the first pass mixes a prompt with decode steps); the logits agree.
    private func checkBatchedEqualsSequential(_ model: any LanguageModel, name: String, vocab: Int) throws {
        let prompts = [[1, 5, 2, 7, 3], [4, 4, 9], [8], [2, 6, 1, 3]].map { $0.map { $0 % vocab } }
        let sequential = prompts.map { _ in model.makeCache() }, batched = prompts.map { _ in model.makeCache() }
        // Three sequences start batched; the fourth joins at the first decode pass with its whole prompt.
        var expected: [[Float]] = []
        for (prompt, cache) in zip(prompts, sequential) { expected.append(try model.forward(prompt, cache: cache).floats) }
        let first = try model.forward(
            zip(prompts.prefix(3), batched).map { ForwardSequence(ids: $0, cache: $1) }, options: ForwardOptions())
        for index in 0..<3 {
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(first[index].logits.floats, expected[index]), 1e-4, "\(name) prompt \(index)")
            XCTAssertEqual(first[index].positionOffset, 0)
        }
        for step in 0..<4 {
            let next = prompts.indices.map { (step * 3 + $0 * 5 + 1) % vocab }
            var sequences: [ForwardSequence] = []
            var want: [[Float]] = []
            for index in prompts.indices {
                let ids = step == 0 && index == 3 ? prompts[3] : [next[index]]
                if step == 0 && index == 3 {
                    want.append(expected[3])
                } else {
                    want.append(try model.forward([next[index]], cache: sequential[index]).floats)
                }
                sequences.append(ForwardSequence(ids: ids, cache: batched[index]))
            }
            let outputs = try model.forward(sequences, options: ForwardOptions())
            for index in prompts.indices {
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(outputs[index].logits.floats, want[index]), 1e-4, "\(name) step \(step) sequence \(index)")
            }
        }
        XCTAssertEqual(batched.map(\.offset), sequential.map(\.offset))
    }

    func testABatchedPassEqualsOnePassPerSequenceForEveryAttention() throws {
        try checkBatchedEqualsSequential(try TinyChronos.model(), name: "chronos (MLA, sliding)", vocab: 13)
        for name in ["mixtral", "qwen3_moe", "deepseek_v3", "llama_dense"] {
            let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/\(name)"))
            try checkBatchedEqualsSequential(model, name: name, vocab: model.summary.vocabSize)
        }
    }

    func testEachSequenceHasItsOwnObserverAndProvider() throws {
        let model = try TinyChronos.model()
        let plainCache = model.makeCache(), editedCache = model.makeCache()
        let plainLog = ForwardLog(previews: true), editedLog = ForwardLog(previews: true)
        plainCache.observer = plainLog
        editedCache.observer = editedLog
        _ = try model.forward(TinyChronos.ids(4), cache: plainCache)
        _ = try model.forward(TinyChronos.ids(6), cache: editedCache)

        // The second sequence's provider lacks the expert the first sequence's next token routes to first.
        let alone = model.makeCache(), aloneLog = ForwardLog()
        alone.observer = aloneLog
        _ = try model.forward(TinyChronos.ids(4), cache: alone)
        let aloneLogits = try model.forward([3], cache: alone)
        let decision = aloneLog.decisions.last!
        let missing = ExpertKey(layer: decision.layer, expert: decision.experts[0])
        let edited = EditedExperts(model.experts, missing: [missing])
        editedCache.experts = edited
        plainLog.decisions = []
        editedLog.decisions = []

        let outputs = try model.forward(
            [ForwardSequence(ids: [3], cache: plainCache), ForwardSequence(ids: [3, 5], cache: editedCache)], options: ForwardOptions())
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(outputs[0].logits.floats, aloneLogits.floats), 1e-4)
        // Each observer heard its own tokens at its own positions; only the second missed the expert.
        XCTAssertEqual(Set(plainLog.decisions.map(\.position)), [4])
        XCTAssertEqual(Set(editedLog.decisions.map(\.position)), [6, 7])
        XCTAssertTrue(plainLog.decisions.allSatisfy { $0.missing.isEmpty })
        XCTAssertTrue(editedLog.decisions.contains { $0.layer == missing.layer && $0.missing.contains(missing.expert) })
        XCTAssertFalse(plainLog.previews.isEmpty)
        XCTAssertTrue(edited.requests.contains(missing))
        XCTAssertEqual(outputs[1].positionOffset, 6)
        XCTAssertEqual(outputs[1].logits.shape, [2, 13])
    }

    func testOneCacheForTwoSequencesIsRefused() throws {
        let model = try TinyChronos.model()
        let cache = model.makeCache()
        XCTAssertThrowsError(
            try model.forward([ForwardSequence(ids: [1], cache: cache), ForwardSequence(ids: [2], cache: cache)], options: ForwardOptions())
        ) { error in
            XCTAssertEqual(error as? ModelError, .sharedCache)
        }
        XCTAssertEqual(cache.offset, 0)
    }

    func testSequencesWithoutIdsTakeNoPart() throws {
        let model = try TinyChronos.model()
        let idle = model.makeCache(), busy = model.makeCache()
        let outputs = try model.forward(
            [ForwardSequence(ids: [], cache: idle), ForwardSequence(ids: [1, 2], cache: busy)], options: ForwardOptions())
        XCTAssertEqual(outputs[0].logits.shape, [0, 13])
        XCTAssertEqual(outputs[1].logits.shape, [2, 13])
        XCTAssertEqual([idle.offset, busy.offset], [0, 2])
    }
}
