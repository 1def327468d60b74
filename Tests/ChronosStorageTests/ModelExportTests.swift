import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// `chronos export` and `chronos import`: round trips bit for bit, the DeepSeek-V2 layout read
/// back here with the same logits, and, where torch and transformers are installed, both
/// layouts loaded by transformers with Chronos's logits.
final class ModelExportTests: XCTestCase {
    /// A tiny model whose every layer is latent attention with DeepSeek-V2's routing, two shared
    /// experts as wide as a routed one, weights scaled so routing varies; the settings only
    /// sliding-window layers read are those an import from DeepSeek-V2 gives.
    private func deepSeekShapedModel() throws -> URL {
        var configuration = StorageFixtures.chronosConfiguration(sharedExperts: 2)
        configuration.layerTypes = [.mla, .mla]
        configuration.keyValueHeads = configuration.attentionHeads
        configuration.slidingWindow = ChronosConfiguration().slidingWindow
        configuration.normTopKProb = false
        configuration.sharedExpertIntermediateSize = configuration.moeIntermediateSize
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 5)
        for (name, tensor) in weights where !name.contains("norm") && !name.hasSuffix(".bias") {
            weights[name] = Tensor(shape: tensor.shape, values: tensor.floats.map { $0 * 20 })
        }
        let directory = try Fixtures.temporaryDirectory()
        try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: directory)
        return directory
    }

    private let prompt = StorageFixtures.prompt(12, vocab: 32)

    /// The logits of the model in `directory` over `prompt`, all experts resident.
    private func logits(_ directory: URL) throws -> [Float] {
        let model = try ModelLoader.load(directory: directory)
        return try model.forward(prompt, cache: model.makeCache()).floats
    }

    /// Asserts the checkpoints of `a` and `b` hold the same tensors with the same bytes.
    private func assertSameTensors(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let left = try SafetensorsCheckpoint(directory: a), right = try SafetensorsCheckpoint(directory: b)
        XCTAssertEqual(Set(left.tensorNames), Set(right.tensorNames), file: file, line: line)
        for name in left.tensorNames where right.contains(name) {
            let x = try left.tensor(named: name), y = try right.tensor(named: name)
            XCTAssertEqual(x.dtype, y.dtype, name, file: file, line: line)
            XCTAssertEqual(x.shape, y.shape, name, file: file, line: line)
            XCTAssertEqual(
                Data(bytes: x.contiguous().rawPointer, count: x.byteCount), Data(bytes: y.contiguous().rawPointer, count: y.byteCount),
                name, file: file, line: line)
        }
    }

    func testTransformersExportImportsToTheSameTensorsAndConfiguration() throws {
        let original = try StorageFixtures.chronosModel()
        let root = try Fixtures.temporaryDirectory()
        let exported = root.appendingPathComponent("hf"), imported = root.appendingPathComponent("back")
        var reports: [Int] = []
        try ModelExport.export(original, as: .transformers, to: exported) { written, _ in reports.append(written) }
        XCTAssertEqual(reports.last, try SafetensorsCheckpoint(directory: original).tensorNames.count)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: ModelDirectory(exported).config)) as! [String: Any]
        XCTAssertEqual((config["auto_map"] as? [String: String])?["AutoModelForCausalLM"], "modeling_chronos.ChronosForCausalLM")
        let module = try String(contentsOf: ModelDirectory(exported).modelingModule, encoding: .utf8)
        XCTAssertTrue(module.contains("class ChronosForCausalLM"))

        try ModelExport.importModel(exported, to: imported)
        try assertSameTensors(original, imported)
        XCTAssertEqual(try ChronosConfiguration(directory: imported), try ChronosConfiguration(directory: original))
        XCTAssertEqual(try logits(imported), try logits(original))
    }

    func testDeepSeekExportLoadsWithTheSameLogitsAndImportsBitForBit() throws {
        let original = try deepSeekShapedModel()
        let root = try Fixtures.temporaryDirectory()
        let exported = root.appendingPathComponent("ds"), imported = root.appendingPathComponent("back")
        try ModelExport.export(original, as: .deepSeekV2, to: exported)
        XCTAssertEqual(try ModelRegistry.modelType(directory: exported), "deepseek_v2")
        // Read as a DeepSeek-V2 model, the rearranged tensors compute the same logits.
        assertClose(try logits(exported), try logits(original), tolerance: 1e-5)

        try ModelExport.importModel(exported, to: imported)
        try assertSameTensors(original, imported)
        XCTAssertEqual(try ChronosConfiguration(directory: imported), try ChronosConfiguration(directory: original))
    }

    func testShapesAndSourcesThatCannotBeExportedAreRefusedByName() throws {
        let root = try Fixtures.temporaryDirectory()
        // Sliding-window layers and renormalised routing have no DeepSeek-V2 spelling.
        XCTAssertThrowsError(try ModelExport.export(StorageFixtures.chronosModel(), as: .deepSeekV2, to: root.appendingPathComponent("a")))
        {
            XCTAssertTrue("\($0)".contains("layer_types"), "\($0)")
        }
        // Only Chronos-native models export; only chronos and deepseek_v2 checkpoints import.
        let mixtral = try StorageFixtures.huggingFaceModel("mixtral")
        XCTAssertThrowsError(try ModelExport.export(mixtral, as: .transformers, to: root.appendingPathComponent("b"))) {
            XCTAssertTrue("\($0)".contains("'mixtral'"), "\($0)")
        }
        XCTAssertThrowsError(try ModelExport.importModel(mixtral, to: root.appendingPathComponent("c"))) {
            XCTAssertTrue("\($0)".contains("'mixtral'"), "\($0)")
        }
        // A DeepSeek-V2 checkpoint of another shape is refused, naming the setting.
        XCTAssertThrowsError(
            try ModelExport.importModel(StorageFixtures.huggingFaceModel("deepseek_v2"), to: root.appendingPathComponent("d"))
        ) {
            XCTAssertTrue("\($0)".contains("q_lora_rank") || "\($0)".contains("first_k_dense_replace"), "\($0)")
        }
        // An existing directory is never replaced, and nothing is left behind.
        let existing = root.appendingPathComponent("e")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ModelExport.export(StorageFixtures.chronosModel(), as: .transformers, to: existing))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: existing.path), [])
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: root.path).contains { $0.contains("partial") })
    }

    /// Prints, for each checkpoint directory of argv[2:], the class transformers loads and the
    /// logits it computes for argv[1] (JSON ids).
    private static let logitsScript = #"""
        import json, sys, torch
        from transformers import AutoModelForCausalLM
        ids = torch.tensor([json.loads(sys.argv[1])])
        results = []
        for path in sys.argv[2:]:
            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
            with torch.no_grad():
                logits = model(ids).logits[0]
            results.append({"class": type(model).__name__, "logits": logits.flatten().tolist()})
        print(json.dumps(results))
        """#

    private struct TransformersLogits: Decodable {
        let `class`: String
        let logits: [Float]
    }

    func testTransformersComputesChronossLogitsOnBothLayouts() throws {
        guard Python.canImport("torch, transformers") else { throw XCTSkip("python3 with torch and transformers is not installed") }
        let root = try Fixtures.temporaryDirectory()
        let native = try StorageFixtures.chronosModel(), deepSeek = try deepSeekShapedModel()
        let exports = [root.appendingPathComponent("hf"), root.appendingPathComponent("ds")]
        try ModelExport.export(native, as: .transformers, to: exports[0])
        try ModelExport.export(deepSeek, as: .deepSeekV2, to: exports[1])
        let ids = String(data: try JSONEncoder().encode(prompt), encoding: .utf8)!
        let (status, output) = try Python.run(Self.logitsScript, [ids] + exports.map(\.path))
        XCTAssertEqual(status, 0, "transformers could not load the exports")
        let results = try JSONDecoder().decode([TransformersLogits].self, from: output)

        XCTAssertEqual(results[0].class, "ChronosForCausalLM")
        assertClose(results[0].logits, try logits(native), tolerance: 1e-4)
        // transformers' own DeepseekV2ForCausalLM, no custom code.
        XCTAssertEqual(results[1].class, "DeepseekV2ForCausalLM")
        assertClose(results[1].logits, try logits(deepSeek), tolerance: 1e-4)
    }
}
