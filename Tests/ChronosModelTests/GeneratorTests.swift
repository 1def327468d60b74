import ChronosModel
import ChronosTestSupport
import Foundation
import XCTest

final class GeneratorTests: XCTestCase {
    struct Reference: Decodable {
        let inputIds: [Int]
        let greedy: [Int]

        enum CodingKeys: String, CodingKey {
            case inputIds = "input_ids"
            case greedy
        }
    }

    func load(_ name: String) throws -> (any LanguageModel, Reference) {
        let directory = Fixtures.url("hf-tiny/\(name)")
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
        return (try ModelRegistry.load(directory: directory), reference)
    }

    func testGreedyGenerationReproducesTransformers() throws {
        for name in ["llama_dense", "mixtral"] {
            let (model, reference) = try load(name)
            let result = try Generator(model: model, tokenizer: nil).generate(
                GenerationRequest(promptIds: reference.inputIds, maxTokens: reference.greedy.count, ignoreEOS: true))
            XCTAssertEqual(result.ids, reference.greedy, name)
            XCTAssertEqual(result.stopReason, .length)
            XCTAssertEqual(result.metrics.promptTokens, reference.inputIds.count)
            XCTAssertEqual(result.metrics.generatedTokens, reference.greedy.count)
        }
    }

    func testStopTokensAndCancellationEndTheGeneration() throws {
        let (model, reference) = try load("llama_dense")
        let generator = Generator(model: model, tokenizer: nil)
        let stopAt = reference.greedy[3]
        let stopped = try generator.generate(
            GenerationRequest(
                promptIds: reference.inputIds, maxTokens: 12, stopTokens: [stopAt],
                ignoreEOS: true))
        XCTAssertEqual(stopped.ids, Array(reference.greedy.prefix { $0 != stopAt }))
        XCTAssertEqual(stopped.stopReason, .stopToken)
        XCTAssertEqual(stopped.stopToken, stopAt)
        XCTAssertEqual(stopped.idsWithStopToken, stopped.ids + [stopAt], "the sequence a training stage learns from")
        var streamed: [Int] = []
        let cancelled = try generator.generate(GenerationRequest(promptIds: reference.inputIds, maxTokens: 12, ignoreEOS: true)) {
            streamed.append($0.id)
            return streamed.count < 2
        }
        XCTAssertEqual(cancelled.ids, Array(reference.greedy.prefix(2)))
        XCTAssertEqual(streamed, cancelled.ids)
        XCTAssertEqual(cancelled.stopReason, .cancelled)
        XCTAssertNil(cancelled.stopToken)
        XCTAssertEqual(cancelled.idsWithStopToken, cancelled.ids)
    }

    func testAPromptInChunksGivesTheTokensOfOnePassAndCanBeCancelledBetweenThem() throws {
        let (model, reference) = try load("mixtral")
        let generator = Generator(model: model, tokenizer: nil)
        var passes: [Int] = []
        let chunked = try generator.run(
            GenerationRequest(promptIds: reference.inputIds, maxTokens: reference.greedy.count, ignoreEOS: true, prefillChunk: 3),
            cache: model.makeCache(),
            forward: { ids, cache, phase in
                if phase == .prefill { passes.append(ids.count) }
                return try model.forward(ids, cache: cache)
            }, onToken: { _ in true })
        XCTAssertEqual(chunked.ids, reference.greedy)
        XCTAssertEqual(passes.reduce(0, +), reference.inputIds.count)
        XCTAssertEqual(passes.count, (reference.inputIds.count + 2) / 3)
        XCTAssertTrue(passes.dropLast().allSatisfy { $0 == 3 })

        var prefillPasses = 0
        let cancelled = try generator.run(
            GenerationRequest(promptIds: reference.inputIds, maxTokens: 5, ignoreEOS: true, prefillChunk: 3),
            cache: model.makeCache(),
            forward: { ids, cache, phase in
                prefillPasses += 1
                return try model.forward(ids, cache: cache)
            }, isCancelled: { prefillPasses == 1 },
            onToken: { _ in
                XCTFail("no token after a cancelled prompt")
                return true
            })
        XCTAssertEqual(prefillPasses, 1, "the cancellation is seen before the prompt's second pass")
        XCTAssertEqual(cancelled.stopReason, .cancelled)
        XCTAssertEqual(cancelled.ids, [])
        XCTAssertThrowsError(
            try generator.generate(GenerationRequest(promptIds: reference.inputIds, prefillChunk: 0)),
            "a chunk of no tokens is refused")
    }

    func testTeacherForcingEmitsTheGivenIdsWithTheirLogProbabilities() throws {
        let (model, reference) = try load("mixtral")
        let forced = [7, 200, 7, 31]
        let result = try Generator(model: model, tokenizer: nil).generate(
            GenerationRequest(promptIds: reference.inputIds, maxTokens: 10, stopTokens: [200], forcedIds: forced))
        XCTAssertEqual(result.ids, forced, "a forced id is emitted even when it is a stop token")
        XCTAssertEqual(result.forcedLogProbabilities.count, forced.count)
        let logits = try model.forward(reference.inputIds + forced, cache: model.makeCache())
        for (step, id) in forced.enumerated() {
            let row = logits.row(reference.inputIds.count - 1 + step)
            let peak = row.max()!
            let expected = row[id] - peak - Foundation.log(row.reduce(Float(0)) { $0 + Foundation.exp($1 - peak) })
            XCTAssertEqual(result.forcedLogProbabilities[step], expected, accuracy: 1e-4)
        }
    }
}
