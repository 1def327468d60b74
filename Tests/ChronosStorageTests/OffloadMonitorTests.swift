import ChronosEngine
import ChronosModel
import ChronosStorage
import ChronosTestSupport
import Foundation
import XCTest

/// The per-pass snapshots a live monitor reads, by callback and as an `AsyncStream`.
final class OffloadMonitorTests: XCTestCase {
    func testEveryForwardPassIsReportedByCallbackAndStream() async throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let offloaded = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .chronos, budget: .fraction(0.5)))
        let generator = OffloadedGenerator(offloaded: offloaded, tokenizer: nil)
        let stream = generator.snapshots()
        var called: [OffloadSnapshot] = []
        generator.onSnapshot = { called.append($0) }
        let result = try generator.generate(
            GenerationRequest(
                promptIds: StorageFixtures.prompt(8, vocab: 32), maxTokens: 5,
                sampling: .greedy, ignoreEOS: true))
        generator.finishSnapshots()
        offloaded.close()
        var streamed: [OffloadSnapshot] = []
        for await snapshot in stream { streamed.append(snapshot) }

        XCTAssertEqual(called.count, 5, "the prompt and four decode passes")
        XCTAssertEqual(streamed.map(\.position), called.map(\.position))
        XCTAssertTrue(called[0].isPrefill)
        XCTAssertEqual(called.last?.decodeSteps, 4)
        XCTAssertEqual(called.last?.storage?.needed, result.metrics.prefill.needed + result.metrics.decode.needed)
        XCTAssertLessThanOrEqual(
            called.map { ($0.residentBytes[.hot] ?? 0) + ($0.residentBytes[.staging] ?? 0) }.max()!,
            offloaded.budgetBytes)
        XCTAssertTrue(result.metrics.summaryLine.contains("tokens/s"))
    }
}
