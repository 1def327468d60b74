import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// A directory packed with `--strip-experts` (experts only in the cache) and, optionally, a
/// cache dtype and a dense dtype: what it loads as, and how it fails when the cache is gone.
final class StrippedCheckpointTests: XCTestCase {
    /// Every way of loading `directory` gives `expected`: offloaded at 30 % and 100 % of the
    /// expert bytes (policies that never drop an expert, and mmap), resident (every expert read
    /// from the cache), and `ModelLoader.load` without a provider (`chronos generate` without
    /// `--expert-budget`).
    private func assertEveryLoadGives(
        _ expected: [Int], _ directory: URL, prompt: [Int], tokens: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for budget in [ExpertBudget.fraction(0.3), .fraction(1)] {
            for mode in [ExpertResidencyMode.chronos, .lru, .mmap] {
                let run = try StorageFixtures.generate(
                    directory, OffloadSettings(mode: mode, budget: budget, policy: .wait),
                    prompt: prompt, tokens: tokens)
                XCTAssertEqual(run.ids, expected, "\(mode) at \(budget)", file: file, line: line)
                XCTAssertEqual(run.metrics.fallbacks, 0, "\(mode) at \(budget)", file: file, line: line)
            }
        }
        let resident = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .resident))
        XCTAssertNotNil(resident.cache, "resident mode reads the experts from the cache", file: file, line: line)
        XCTAssertEqual(
            try StorageFixtures.greedyIds(resident.model, prompt: prompt, tokens: tokens), expected, "resident",
            file: file, line: line)
        XCTAssertEqual(
            try StorageFixtures.residentIds(directory, prompt: prompt, tokens: tokens), expected, "ModelLoader.load",
            file: file, line: line)
    }

    /// `model`'s experts converted to `dtype` (round-to-nearest-even), all resident.
    private func experts(of model: any LanguageModel, as dtype: DType) -> ResidentExperts {
        var experts: [ExpertKey: ExpertWeights] = [:]
        for (layer, count) in model.summary.expertsPerLayer.enumerated() {
            for expert in 0..<count {
                let key = ExpertKey(layer: layer, expert: expert), w = model.experts.weights(for: key)!
                experts[key] = ExpertWeights(
                    gate: w.gate.converted(to: dtype), up: w.up.converted(to: dtype),
                    down: w.down.converted(to: dtype))
            }
        }
        return ResidentExperts(experts)
    }

    func testStrippedF32ModelGivesTheFullModelsTokensAtEveryBudget() throws {
        for (directory, vocab) in [(try StorageFixtures.chronosModel(), 32), (try StorageFixtures.huggingFaceModel("mixtral"), 256)] {
            let prompt = StorageFixtures.prompt(10, vocab: vocab)
            let full = try ModelLoader.load(directory: directory)
            let expected = try StorageFixtures.greedyIds(full, prompt: prompt, tokens: 8)
            let checkpointBytes = try SafetensorsCheckpoint(directory: directory).shards[0].url.fileSize()

            let outcome = try StorageFixtures.packAndStrip(directory)
            let checkpoint = try SafetensorsCheckpoint(directory: directory)
            XCTAssertTrue(StrippedCheckpoint.isStripped(checkpoint))
            XCTAssertEqual(checkpoint.shards[0].metadata[StrippedCheckpoint.metadataKey], "expert_cache")
            let cache = try ExpertCache.open(modelDirectory: directory)
            XCTAssertTrue(cache.checkpointStripped)
            XCTAssertEqual(outcome.strippedTensors, 3 * cache.manifest.experts.count)
            XCTAssertFalse(cache.manifest.experts.flatMap(\.tensors).contains { checkpoint.contains($0.source) })
            // The directory is the dense weights plus the cache: the experts are not stored twice.
            XCTAssertEqual(outcome.bytesBefore, checkpointBytes)
            XCTAssertLessThanOrEqual(outcome.bytesAfter, checkpointBytes - cache.totalExpertBytes)

            try assertEveryLoadGives(expected, directory, prompt: prompt, tokens: 8)
            let stripped = try ModelLoader.load(directory: directory)
            XCTAssertEqual(stripped.parameterCounts.expertBytes, full.parameterCounts.expertBytes, "inspect still reports expert bytes")
            XCTAssertEqual(stripped.parameterCounts.denseBytes, full.parameterCounts.denseBytes)
            // What a training stage starts from: every parameter, experts read back from the cache.
            let reloaded = stripped.namedParameters()
            XCTAssertEqual(reloaded.map(\.name), full.namedParameters().map(\.name))
            XCTAssertEqual(reloaded.map { $0.tensor.floats }, full.namedParameters().map { $0.tensor.floats })
        }
    }

    func testModelLoaderGivesTheFullModelsLogitsWhereTheModelModuleRefuses() throws {
        for (directory, vocab) in [(try StorageFixtures.chronosModel(), 32), (try StorageFixtures.huggingFaceModel("mixtral"), 256)] {
            let prompt = StorageFixtures.prompt(10, vocab: vocab)
            let full = try ModelRegistry.load(directory: directory)
            let expected = try full.forward(prompt, cache: full.makeCache()).floats
            try StorageFixtures.packAndStrip(directory)
            XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
                XCTAssertEqual(error as? ModelError, .expertsInCache(directory: directory.path))
            }
            let stripped = try ModelLoader.load(directory: directory)
            XCTAssertEqual(try stripped.forward(prompt, cache: stripped.makeCache()).floats, expected, "\(directory.lastPathComponent)")
            // A provider given to the loader is used as it is, stripped or not.
            let given = try ModelLoader.load(directory: directory, experts: stripped.experts)
            XCTAssertEqual(try given.forward(prompt, cache: given.makeCache()).floats, expected)
        }
    }

    func testBF16ExpertsAreRecordedAndComputedWith() throws {
        let directory = try StorageFixtures.chronosModel()
        let prompt = StorageFixtures.prompt(10, vocab: 32)
        let full = try ModelLoader.load(directory: directory)
        let bf16 = experts(of: full, as: .bf16)
        let expected = try StorageFixtures.greedyIds(ModelLoader.load(directory: directory, experts: bf16), prompt: prompt, tokens: 8)

        let manifest = try StorageFixtures.pack(directory, dtype: .bf16)
        XCTAssertEqual(manifest.dtype, "bf16")
        XCTAssertEqual(manifest.expertBytes, full.parameterCounts.expertBytes / 2)
        let cache = try ExpertCache.open(modelDirectory: directory)
        for entry in manifest.experts {
            let file = try SafetensorsFile(url: cache.fileURLs[entry.file])
            let source = [bf16.experts[entry.key]!.gate, bf16.experts[entry.key]!.up, bf16.experts[entry.key]!.down]
            for (tensor, converted) in zip(entry.tensors, source) {
                XCTAssertEqual(tensor.dtype, "bf16")
                let stored = try file.tensor(named: tensor.name)
                XCTAssertEqual(stored.dtype, .bf16)
                XCTAssertEqual(
                    Data(bytes: stored.rawPointer, count: stored.byteCount),
                    Data(bytes: converted.rawPointer, count: converted.byteCount), "\(tensor.name) is the RNE bf16 of its source")
            }
        }
        // Unstripped, the offloaded runtime computes with the cache's bf16 experts.
        let run = try StorageFixtures.generate(directory, OffloadSettings(mode: .lru, budget: .fraction(1)), prompt: prompt, tokens: 8)
        XCTAssertEqual(run.ids, expected)

        try CheckpointRewriter.rewrite(directory: directory, model: full, stripExperts: true, denseDType: nil)
        try assertEveryLoadGives(expected, directory, prompt: prompt, tokens: 8)
        let stripped = try ModelLoader.load(directory: directory)
        XCTAssertEqual(stripped.parameterCounts.expertBytes, manifest.expertBytes)
        XCTAssertEqual(stripped.experts.weights(for: ExpertKey(layer: 1, expert: 3))?.down.dtype, .bf16)
    }

    func testF16ExpertsAreStoredAsF16() throws {
        let directory = try StorageFixtures.huggingFaceModel("qwen2_moe")
        let full = try ModelLoader.load(directory: directory)
        let manifest = try StorageFixtures.pack(directory, dtype: .f16)
        XCTAssertEqual(manifest.dtype, "f16")
        XCTAssertTrue(manifest.experts.flatMap(\.tensors).allSatisfy { $0.dtype == "f16" })
        let prompt = StorageFixtures.prompt(10, vocab: 256)
        let expected = try StorageFixtures.greedyIds(
            ModelLoader.load(directory: directory, experts: experts(of: full, as: .f16)),
            prompt: prompt, tokens: 6)
        let run = try StorageFixtures.generate(
            directory, OffloadSettings(mode: .chronos, budget: .fraction(0.3)), prompt: prompt, tokens: 6)
        XCTAssertEqual(run.ids, expected)
        XCTAssertThrowsError(try StorageFixtures.pack(directory, dtype: .i8)) { error in
            XCTAssertEqual(error as? ExpertCacheError, .unsupportedDType("i8"))
        }
    }

    func testDenseWeightsConvertedToBF16LoadAndRun() throws {
        let directory = try StorageFixtures.chronosModel()
        let prompt = StorageFixtures.prompt(10, vocab: 32)
        let configuration = StorageFixtures.chronosConfiguration()
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        var weights: [String: Tensor] = [:]
        for name in checkpoint.tensorNames { weights[name] = try checkpoint.tensor(named: name).converted(to: .bf16) }
        let expected = try StorageFixtures.greedyIds(
            TransformerLanguageModel(configuration: configuration, weights: weights),
            prompt: prompt, tokens: 8)

        let outcome = try StorageFixtures.packAndStrip(directory, dtype: .bf16, denseDType: .bf16)
        XCTAssertGreaterThan(outcome.convertedTensors, 0)
        let rewritten = try SafetensorsCheckpoint(directory: directory)
        XCTAssertTrue(try rewritten.tensorNames.allSatisfy { try rewritten.info(named: $0).dtype == .bf16 })
        try assertEveryLoadGives(expected, directory, prompt: prompt, tokens: 8)
    }

    func testDenseConversionWithoutStrippingKeepsTheCacheValid() throws {
        let directory = try StorageFixtures.huggingFaceModel("mixtral")
        let model = try ModelLoader.load(directory: directory)
        try StorageFixtures.pack(directory)
        let outcome = try CheckpointRewriter.rewrite(directory: directory, model: model, stripExperts: false, denseDType: .bf16)
        XCTAssertEqual(outcome.strippedTensors, 0)
        XCTAssertLessThan(outcome.bytesAfter, outcome.bytesBefore)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        XCTAssertFalse(StrippedCheckpoint.isStripped(checkpoint))
        let expert = model.checkpointNames(for: ExpertKey(layer: 0, expert: 1))!.gate
        XCTAssertEqual(try checkpoint.info(named: expert).dtype, .f32, "experts in the checkpoint are left as they were")
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory).validate(against: ModelLoader.load(directory: directory)))
    }

    func testShardedCheckpointIsRewrittenAsOneFile() throws {
        let directory = try StorageFixtures.chronosModel()
        let single = directory.appendingPathComponent(ModelDirectory.Name.checkpoint)
        let original = try SafetensorsCheckpoint(directory: directory)
        let names = original.tensorNames, half = names.count / 2
        var weightMap: [String: String] = [:]
        for (index, part) in [Array(names[..<half]), Array(names[half...])].enumerated() {
            let shard = "model-0000\(index + 1)-of-00002.safetensors"
            try SafetensorsWriter.write(
                try part.map { ($0, try original.tensor(named: $0)) }, metadata: ["format": "pt"],
                to: directory.appendingPathComponent(shard))
            for name in part { weightMap[name] = shard }
        }
        try JSONSerialization.data(withJSONObject: ["weight_map": weightMap])
            .write(to: directory.appendingPathComponent(ModelDirectory.Name.checkpointIndex))
        try FileManager.default.removeItem(at: single)
        let prompt = StorageFixtures.prompt(10, vocab: 32)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6)

        try StorageFixtures.packAndStrip(directory)
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("model") }
        XCTAssertEqual(left, [ModelDirectory.Name.checkpoint])
        XCTAssertEqual(try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6), expected)
        XCTAssertEqual(
            try StorageFixtures.generate(directory, OffloadSettings(mode: .lru, budget: .fraction(0.3)), prompt: prompt, tokens: 6).ids,
            expected)
    }

    func testStrippedCheckpointIsRepackedFromItsCache() throws {
        let directory = try StorageFixtures.chronosModel()
        let prompt = StorageFixtures.prompt(10, vocab: 32)
        let expected = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6)
        try StorageFixtures.packAndStrip(directory, dtype: .bf16)
        let before = try ExpertCache.open(modelDirectory: directory).manifest
        let bf16 = try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6)
        // Two clusters mixing the layers, as `chronos pack --clusters` writes them.
        let keys = before.experts.map(\.key)
        let plan = ClusterPlan(clusters: [keys.filter { $0.expert % 2 == 0 }, keys.filter { $0.expert % 2 == 1 }])
        let after = try ExpertCachePacker.pack(directory: directory, model: ModelLoader.load(directory: directory), plan: plan)
        XCTAssertEqual(after.files.count, 2)
        XCTAssertEqual(after.dtype, "bf16")
        for entry in after.experts {
            let old = try XCTUnwrap(before.experts.first { $0.key == entry.key })
            XCTAssertEqual(entry.hash, old.hash, "\(entry.key): the same bytes, in a new place")
            XCTAssertEqual(entry.tensors.map(\.source), old.tensors.map(\.source))
            XCTAssertEqual(entry.tensors.map(\.sourceHash), old.tensors.map(\.sourceHash))
        }
        try ExpertCache.open(modelDirectory: directory).verifyFiles()
        XCTAssertEqual(try StorageFixtures.residentIds(directory, prompt: prompt, tokens: 6), bf16)
        XCTAssertEqual(
            try StorageFixtures.generate(directory, OffloadSettings(mode: .lru, budget: .fraction(0.3)), prompt: prompt, tokens: 6).ids,
            bf16)
        XCTAssertEqual(expected.count, bf16.count)
    }

    func testMissingCacheIsAClearError() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.packAndStrip(directory)
        let model = try ModelLoader.load(directory: directory)
        try FileManager.default.removeItem(at: ModelDirectory(directory).expertCache)
        // Without its cache a stripped checkpoint has no experts left to pack.
        XCTAssertThrowsError(try ExpertCachePacker.pack(directory: directory, model: model)) { error in
            XCTAssertEqual(error as? ExpertCacheError, .checkpointStripped(directory: directory.path))
            XCTAssertTrue("\(error)".contains("re-pack from the full checkpoint"), "\(error)")
        }
        let missing = StrippedCheckpointError.cacheMissing(directory: directory.path)
        XCTAssertTrue(
            missing.description.contains(
                "live in expert_cache/, which is missing: restore expert_cache/ from the model's source, or re-pack from the full checkpoint"
            ),
            missing.description)
        XCTAssertThrowsError(try ModelLoader.load(directory: directory)) { XCTAssertEqual($0 as? StrippedCheckpointError, missing) }
        for settings in [
            OffloadSettings(mode: .resident), OffloadSettings(mode: .lru, budget: .fraction(0.3)),
            OffloadSettings(mode: .mmap, budget: .fraction(0.3))
        ] {
            XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: settings)) {
                XCTAssertEqual($0 as? StrippedCheckpointError, missing, "\(settings.mode)")
            }
        }
    }

    func testStaleCacheIsAClearError() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.packAndStrip(directory)
        let configURL = directory.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["moe_intermediate_size"] = 14
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: configURL)
        for load in [
            { _ = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .lru, budget: .fraction(0.3))) },
            { _ = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .resident)) },
            { _ = try ModelLoader.load(directory: directory) }
        ] {
            XCTAssertThrowsError(try load()) { error in
                guard case StrippedCheckpointError.cacheStale(let path, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(path, directory.path)
                XCTAssertTrue(reason.contains("config.json"), reason)
                XCTAssertTrue("\(error)".contains("which is stale") && "\(error)".contains("re-pack from the full checkpoint"), "\(error)")
            }
        }
    }

    func testTruncatedOrCorruptedCacheIsAClearError() throws {
        let directory = try StorageFixtures.chronosModel()
        try StorageFixtures.packAndStrip(directory)
        let manifest = try ExpertCache.open(modelDirectory: directory).manifest
        let victim = manifest.experts.first { $0.layer == 0 && $0.expert == 5 }!
        let file = directory.appendingPathComponent("expert_cache/\(manifest.files[victim.file].name)")

        // A flipped byte: the resident load hashes every expert it reads.
        try StorageFixtures.flipByte(file, at: victim.offset + 3)
        XCTAssertThrowsError(try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .resident))) { error in
            guard case StrippedCheckpointError.cacheInvalid(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("L0/E5") && reason.contains(file.path), reason)
        }
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory).verifyFiles()) { error in
            guard case StrippedCheckpointError.cacheInvalid = error else { return XCTFail("\(error)") }
        }

        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 64).write(to: file)
        for load in [
            { _ = try OffloadedModel(directory: directory, settings: OffloadSettings(mode: .chronos, budget: .fraction(0.3))) },
            { _ = try ModelLoader.load(directory: directory) }
        ] {
            XCTAssertThrowsError(try load()) { error in
                guard case StrippedCheckpointError.cacheInvalid(_, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains(file.path), reason)
                XCTAssertTrue("\(error)".contains("which is invalid"), "\(error)")
            }
        }
    }
}

extension URL {
    /// The size of the file here in bytes.
    fileprivate func fileSize() throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
    }
}
