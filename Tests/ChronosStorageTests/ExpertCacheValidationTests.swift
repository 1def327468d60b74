import ChronosEngine
import ChronosFormats
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
            guard case ExpertCacheError.stale(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("config.json"), reason)
            XCTAssertTrue("\(error)".contains("chronos pack"), "the message says how to fix it")
        }
        XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .chronos)))
        try StorageFixtures.pack(directory)
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))
    }

    func testTouchingFilesKeepsTheCacheValid() throws {
        let directory = try StorageFixtures.chronosModel()
        let manifest = try StorageFixtures.pack(directory)
        // A fresh clone or copy gives every file a new modification time; only content counts.
        let names = ["config.json", "model.safetensors"] + manifest.files.map { "expert_cache/\($0.name)" }
        for (offset, name) in names.enumerated() {
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(Double(offset * 97 - 3600))],
                ofItemAtPath: directory.appendingPathComponent(name).path)
        }
        let cache = try ExpertCache.open(modelDirectory: directory)
        try cache.verifyFiles()
        let prompt = StorageFixtures.prompt(8, vocab: 32)
        XCTAssertEqual(
            try StorageFixtures.generate(directory, OffloadSettings(mode: .lru, budget: .fraction(0.3)), prompt: prompt, tokens: 4).ids,
            try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 4))
    }

    func testAReformattedConfigKeepsTheCacheAndAChangedSettingMakesItStaleEvenWithTheOldModificationTime() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let configURL = directory.appendingPathComponent("config.json")
        // Indentation, key order and how a number is written are formatting, not settings.
        let settings = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted]).write(to: configURL)
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))
        try StorageFixtures.editKeepingModificationTime(configURL) { data in
            var text = String(decoding: data, as: UTF8.self)
            text = text.replacingOccurrences(of: "\"rope_theta\" : 10000", with: "\"rope_theta\" : 10001")
            data = Data(text.utf8)
        }
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case ExpertCacheError.stale(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("a setting of config.json changed"), reason)
            XCTAssertTrue("\(error)".contains("re-pack with `chronos pack`"), "\(error)")
        }
    }

    func testChangedExpertSourceByteMakesTheCacheStale() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let weights = directory.appendingPathComponent("model.safetensors")
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        let victim = ChronosWeightNames.expert(ExpertKey(layer: 1, expert: 4)).up
        let offset = try checkpoint.info(named: victim).byteRange.lowerBound + 17
        try StorageFixtures.editKeepingModificationTime(weights) { $0[offset] ^= 0x01 }
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case ExpertCacheError.stale(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains(victim) && reason.contains("L1/E4") && reason.contains("changed since packing"), reason)
        }
        XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .lru, budget: .fraction(0.5))))

        // Re-packing records the new bytes; a change to a dense tensor leaves the cache valid.
        try StorageFixtures.pack(directory)
        let router = try checkpoint.info(named: ChronosWeightNames.router(layer: 0)).byteRange.lowerBound + 2
        try StorageFixtures.editKeepingModificationTime(weights) { $0[router] ^= 0x01 }
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))
    }

    func testTruncatedClusterFileIsRefused() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let file = directory.appendingPathComponent("expert_cache/cluster_001.ctsr")
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 100).write(to: file)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case ExpertCacheError.sizeMismatch(let path, let expected, let found) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, file.path)
            XCTAssertEqual(expected - found, 100)
        }
    }

    func testManifestNamingAnIntegerExpertTypeIsRefused() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.pack(directory)
        let url = directory.appendingPathComponent("expert_cache/\(ExpertCacheManifest.fileName)")
        let text = try String(contentsOf: url, encoding: .utf8)
        let edited = text.replacingOccurrences(of: #""dtype"\s*:\s*"[a-z0-9]+""#, with: #""dtype": "i32""#, options: .regularExpression)
        XCTAssertNotEqual(edited, text)
        try edited.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case ExpertCacheError.malformedManifest(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("dtype 'i32'"), reason)
        }
    }

    func testACacheOfOneBlockFormatRefusesToServeAsAnother() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        try StorageFixtures.pack(directory, dtype: .q8_0)
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))
        let url = directory.appendingPathComponent("expert_cache/\(ExpertCacheManifest.fileName)")
        let text = try String(contentsOf: url, encoding: .utf8)
        // q4_0 rows of the same values are shorter: the manifest no longer describes the files.
        let edited = text.replacingOccurrences(of: #""dtype" : "q8_0""#, with: #""dtype" : "q4_0""#)
        XCTAssertNotEqual(edited, text)
        try edited.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            guard case ExpertCacheError.stale(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("disagrees with the manifest"), reason)
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
            guard case ExpertCacheError.fileHashMismatch(let path, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, file.path)
        }

        // At run time the expert's own hash catches it: under `wait` the load is retried, then
        // the run ends with an error naming the file and the expert; `fallback` goes on without it.
        let prompt = StorageFixtures.prompt(24, vocab: 32)
        XCTAssertThrowsError(
            try StorageFixtures.generate(
                directory, OffloadSettings(mode: .lru, budget: .fraction(1), policy: .wait),
                prompt: prompt, tokens: 6)
        ) { error in
            XCTAssertTrue(
                "\(error)".contains("L1/E2") && "\(error)".contains(file.path) && "\(error)".contains("--policy fallback"),
                "\(error)")
        }
        let run = try StorageFixtures.generate(
            directory, OffloadSettings(mode: .lru, budget: .fraction(1), policy: .fallback),
            prompt: prompt, tokens: 6)
        XCTAssertEqual(run.ids.count, 6)

        // Mapped and stripped-resident experts are checked on first use, and end the run alike.
        XCTAssertThrowsError(
            try StorageFixtures.generate(
                directory, OffloadSettings(mode: .mmap, budget: .fraction(1)),
                prompt: prompt, tokens: 6)
        ) { error in
            XCTAssertEqual((error as? CorruptExpertError)?.expert, ExpertKey(layer: 1, expert: 2), "\(error)")
        }
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
