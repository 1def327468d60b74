import ChronosEngine
import ChronosModel
import ChronosStorage
import ChronosTestSupport
import Foundation
import XCTest

final class ExpertCacheValidationTests: XCTestCase {
    func testStaleManifestIsRefusedAfterTheConfigChanges() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        try StorageFixtures.pack(directory)
        let configURL = directory.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["rms_norm_eps"] = 1e-6
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: configURL)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case let ExpertCacheError.stale(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("config.json"), reason)
            XCTAssertTrue("\(error)".contains("chronos pack"), "the message says how to fix it")
        }
        XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .chronos)))
        try StorageFixtures.pack(directory)
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))
    }

    func testRetrainedCheckpointMakesTheCacheStale() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let weights = directory.appendingPathComponent("model.safetensors")
        let later = Date().addingTimeInterval(60)
        try FileManager.default.setAttributes([.modificationDate: later], ofItemAtPath: weights.path)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            XCTAssertTrue("\(error)".contains("model.safetensors"), "\(error)")
        }
    }

    func testTruncatedClusterFileIsRefused() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let file = directory.appendingPathComponent("expert_cache/cluster_001.ctsr")
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 100).write(to: file)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case let ExpertCacheError.sizeMismatch(path, expected, found) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, file.path)
            XCTAssertEqual(expected - found, 100)
        }
    }

    func testCorruptedClusterFileIsDetectedByItsHashes() throws {
        let directory = try StorageFixtures.chronosModel()
        let manifest = try StorageFixtures.pack(directory)
        let victim = manifest.experts.first { $0.layer == 1 && $0.expert == 2 }!
        let file = directory.appendingPathComponent("expert_cache/\(manifest.files[victim.file].name)")
        try StorageFixtures.flipByte(file, at: victim.offset + victim.length / 2)

        // Opening checks sizes and headers only; a full verification hashes every file.
        let cache = try ExpertCache.open(modelDirectory: directory)
        XCTAssertThrowsError(try cache.verifyFiles()) { error in
            guard case let ExpertCacheError.fileHashMismatch(path, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, file.path)
        }

        // At run time the expert's own hash catches it: the load is retried, then falls back.
        let prompt = StorageFixtures.prompt(12, vocab: 32)
        let run = try StorageFixtures.generate(directory, OffloadSettings(mode: .lru, budget: .fraction(1), policy: .wait),
                                               prompt: prompt, tokens: 6)
        let metrics = run.final!
        XCTAssertGreaterThan(metrics.corruptions, 0)
        XCTAssertGreaterThan(metrics.failedLoads, 0)
        XCTAssertTrue(run.metrics.faultLog.contains { $0.contains("L1/E2") && $0.contains(file.path) }, "\(run.metrics.faultLog)")
    }

    func testCacheOfAnotherModelIsRefused() throws {
        let mixtral = try StorageFixtures.huggingFaceModel("mixtral")
        try StorageFixtures.pack(mixtral)
        let qwen = try StorageFixtures.huggingFaceModel("qwen2_moe")
        let cache = try ExpertCache.open(modelDirectory: mixtral)
        XCTAssertThrowsError(try cache.validate(against: ModelRegistry.load(directory: qwen))) { error in
            guard case ExpertCacheError.modelMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: qwen)) { error in
            XCTAssertEqual(error as? ExpertCacheError, .notPacked(directory: qwen.path))
        }
    }
}
