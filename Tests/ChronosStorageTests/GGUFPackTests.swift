import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// A GGUF file made by llama.cpp packed into a model directory whose experts are offloaded.
final class GGUFPackTests: XCTestCase {
    private let source = Fixtures.url("gguf-models/mixtral-wide-q4_k_m.gguf")

    private func packed() throws -> URL {
        let directory = try Fixtures.temporaryDirectory().appendingPathComponent("packed")
        try GGUFPacker.pack(ModelRegistry.load(directory: source), gguf: source, into: directory)
        return directory
    }

    func testExpertsArePackedInTheirGGUFTypesByteForByte() throws {
        let directory = try packed()
        let original = try ModelRegistry.load(directory: source)
        let cached = try ExpertCache.open(modelDirectory: directory).readAllExperts()
        var types = Set<DType>()
        for layer in 0..<2 {
            for expert in 0..<4 {
                let key = ExpertKey(layer: layer, expert: expert)
                let want = try XCTUnwrap(original.experts.weights(for: key)), got = try XCTUnwrap(cached.weights(for: key))
                for (a, b) in [(want.gate, got.gate), (want.up, got.up), (want.down, got.down)] {
                    XCTAssertEqual(a.dtype, b.dtype, "\(key)")
                    XCTAssertEqual(a.shape, b.shape, "\(key)")
                    XCTAssertEqual(memcmp(a.contiguous().rawPointer, b.contiguous().rawPointer, a.byteCount), 0, "\(key)")
                    types.insert(b.dtype)
                }
            }
        }
        XCTAssertEqual(types, [.q4_k, .q6_k])
        let tokenizer = try XCTUnwrap(ModelDirectory(directory).loadTokenizer())
        XCTAssertEqual(tokenizer.vocabularySize, 256)
    }

    func testOffloadedUnderA30PercentBudgetGivesTheResidentTokens() throws {
        let directory = try packed()
        let prompt = StorageFixtures.prompt(10, vocab: 256)
        let resident = try StorageFixtures.greedyIds(ModelRegistry.load(directory: source), prompt: prompt, tokens: 16)
        for mode in [ExpertResidencyMode.chronos, .lru] {
            let run = try StorageFixtures.generate(
                directory, OffloadSettings(mode: mode, budget: .fraction(0.3)), prompt: prompt, tokens: 16)
            XCTAssertEqual(run.ids, resident, "\(mode)")
            XCTAssertGreaterThan(run.final?.reads ?? 0, 8, "\(mode): the experts were read more than once each, so some were evicted")
        }
    }

    func testAnExistingOutputIsNeverOverwritten() throws {
        let directory = try packed()
        let before = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertThrowsError(try GGUFPacker.pack(ModelRegistry.load(directory: source), gguf: source, into: directory)) { error in
            XCTAssertEqual(error as? ExpertCacheError, .outputExists(path: directory.path))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), before)
    }
}
