import ChronosEngine
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// With a policy that never drops an expert (`wait`, `sync`), every budget gives the tokens of
/// the fully resident model, and no tier ever holds more than its budget.
final class OffloadEquivalenceTests: XCTestCase {
    /// Packs `directory` (stripped, its experts stored only in the cache as `quantized`, when
    /// given) and checks every budget's offloaded tokens against the resident model's.
    func check(
        _ directory: URL, vocab: Int, budgets: [ExpertBudget], quantized: DType? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        if let quantized {
            try StorageFixtures.packAndStrip(directory, dtype: quantized)
        } else {
            try StorageFixtures.pack(directory)
        }
        let prompt = StorageFixtures.prompt(10, vocab: vocab)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 8)
        for budget in budgets {
            for (mode, policy) in [(ExpertResidencyMode.chronos, MissPolicy.wait), (.lru, .wait), (.chronos, .sync), (.lru, .sync)] {
                let settings = OffloadSettings(mode: mode, budget: budget, policy: policy)
                let run = try StorageFixtures.generate(directory, settings, prompt: prompt, tokens: 8)
                let label = "\(directory.lastPathComponent) \(mode) \(policy) budget \(budget)"
                XCTAssertEqual(run.ids, expected, label, file: file, line: line)
                let metrics = run.final!, total = run.metrics.budgetBytes
                let cache = try ExpertCache.open(modelDirectory: directory)
                let tiers = OffloadedModel.tiers(
                    total: total, expertBytes: cache.totalExpertBytes, settings: settings,
                    largestExpert: cache.manifest.largestExpertBytes)
                XCTAssertLessThanOrEqual(metrics.peakResidentBytes, total, label, file: file, line: line)
                XCTAssertLessThanOrEqual(metrics.peakHotBytes, tiers.hot, label, file: file, line: line)
                XCTAssertLessThanOrEqual(metrics.peakStagingBytes, tiers.staging, label, file: file, line: line)
                XCTAssertEqual(run.metrics.fallbacks, 0, label, file: file, line: line)
                XCTAssertGreaterThan(metrics.needed, 0, label, file: file, line: line)
                if budget != .fraction(1) { XCTAssertGreaterThan(metrics.bytesRead, 0, label, file: file, line: line) }
            }
        }
    }

    func testChronosNativeModelMatchesResidentAtEveryBudget() throws {
        let directory = try StorageFixtures.chronosModel()
        let expert = 3 * 12 * 16 * 4
        try check(directory, vocab: 32, budgets: [.bytes(2 * expert), .fraction(0.3), .fraction(0.5), .fraction(1)])
    }

    func testChronosModelWithoutSharedExpertsMatchesResident() throws {
        try check(try StorageFixtures.chronosModel(sharedExperts: 0, seed: 5), vocab: 32, budgets: [.fraction(0.25)])
    }

    func testMixtralFixtureMatchesResidentAtEveryBudget() throws {
        let expert = 3 * 128 * 64 * 4
        try check(try StorageFixtures.huggingFaceModel("mixtral"), vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.5), .fraction(1)])
    }

    func testBlockFormatExpertsMatchTheResidentModelOfTheSameExpertsAndBudgetsCountTheirBytes() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        let expert = DType.q8_0.byteCount(3 * 128 * 64)
        try check(directory, vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.5)], quantized: .q8_0)
        let cache = try ExpertCache.open(modelDirectory: directory)
        XCTAssertEqual(cache.manifest.dtype, "q8_0")
        XCTAssertEqual(cache.totalExpertBytes, 2 * 4 * expert)
        let model = try ModelLoader.load(directory: directory)
        XCTAssertEqual(model.experts.weights(for: ExpertKey(layer: 1, expert: 2))?.down.dtype, .q8_0)
    }

    func testQwen2MoEFixtureMatchesResidentAtEveryBudget() throws {
        let expert = 3 * 32 * 64 * 4
        try check(try StorageFixtures.huggingFaceModel("qwen2_moe"), vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.5)])
    }

    func testDeepSeekFixturesMatchResidentAtEveryBudget() throws {
        // 8 routed experts of width 32 in layer 1; layer 0 is dense.
        let expert = 3 * 32 * 64 * 4
        for name in ["deepseek_v2", "deepseek_v3"] {
            try check(try StorageFixtures.huggingFaceModel(name), vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.3), .fraction(0.5)])
        }
    }

    func testGlm4MoEFixturesMatchResidentAtEveryBudget() throws {
        // 8 routed experts of width 32 in layer 1; layer 0 is dense.
        let expert = 3 * 32 * 64 * 4
        for name in ["glm4_moe", "glm4_moe_air"] {
            try check(try StorageFixtures.huggingFaceModel(name), vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.3), .fraction(0.5)])
        }
    }

    func testGptOssMatchesResidentAtEveryBudget() throws {
        // The packer reads experts by their per-expert names, which the fixture's fused layout
        // lacks: the model is saved once, which writes them.
        let directory = try Fixtures.temporaryDirectory().appendingPathComponent("gpt_oss")
        try ModelRegistry.load(directory: Fixtures.url("hf-tiny/gpt_oss")).save(to: directory)
        // 4 experts of width 32 per layer; their biases stay resident with the router.
        let expert = 3 * 32 * 64 * 4
        try check(directory, vocab: 256, budgets: [.bytes(2 * expert), .fraction(0.5)])
    }

    func testMemoryMappedBaselineMatchesResident() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        try StorageFixtures.pack(directory)
        let prompt = StorageFixtures.prompt(10, vocab: 256)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6)
        for disk in [nil, DiskModel(milliseconds: 0.05, megabytesPerSecond: 4000)] {
            let run = try StorageFixtures.generate(
                directory, OffloadSettings(mode: .mmap, budget: .fraction(0.5), disk: disk),
                prompt: prompt, tokens: 6)
            XCTAssertEqual(run.ids, expected)
            if disk != nil {
                XCTAssertGreaterThan(run.final!.bytesRead, 0, "the simulated page cache charges first touches")
                XCTAssertLessThanOrEqual(run.final!.peakResidentBytes, run.metrics.budgetBytes)
            }
        }
    }

    func testBudgetBelowOneExpertIsRefused() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .lru, budget: .bytes(100)))) {
            error in
            guard case ExpertCacheError.budgetTooSmall = error else { return XCTFail("\(error)") }
        }
    }
}
