import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTestSupport
import Foundation
import XCTest

/// The model in `models/austen-moe` continues a fixed prompt exactly as recorded, fully
/// resident and with its experts streamed from the packed cache, so an accidental change to
/// the model files or the runtime is caught.
final class ShippedModelTests: XCTestCase {
    let prompt = "It is a truth universally acknowledged"
    let promptIds = [1028, 363, 258, 1907, 5319, 556, 2769]
    /// `chronos generate "It is a truth universally acknowledged" --temperature 0 --max-tokens 24 --ignore-eos --print-ids`
    let recorded = [44, 282, 301, 441, 728, 319, 404, 286, 258, 385, 563, 718, 46, 301, 441, 728, 301, 535, 356, 405, 258, 385, 563, 1264]

    func request() -> GenerationRequest {
        GenerationRequest(promptIds: promptIds, maxTokens: recorded.count, ignoreEOS: true)
    }

    func testTheTokenizerAndTheResidentModelReproduceTheRecordedContinuation() throws {
        let tokenizer = try Tokenizer(contentsOf: ModelDirectory(Fixtures.shippedModel).tokenizer)
        XCTAssertEqual(tokenizer.encode(prompt), promptIds)
        let model = try ModelLoader.load(directory: Fixtures.shippedModel)
        XCTAssertEqual(try Generator(model: model, tokenizer: nil).generate(request()).ids, recorded)
    }

    func testStreamingExpertsUnderABudgetGivesTheSameTokens() throws {
        let offloaded = try OffloadedModel(
            directory: Fixtures.shippedModel,
            settings: OffloadSettings(mode: .chronos, budget: .fraction(0.3), policy: .wait))
        defer { offloaded.close() }
        let outcome = try OffloadedGenerator(offloaded: offloaded, tokenizer: nil).generate(request())
        XCTAssertEqual(outcome.generation.ids, recorded)
        XCTAssertGreaterThan(outcome.metrics.decode.bytesRead, 0, "experts were streamed, not all resident")
    }
}
