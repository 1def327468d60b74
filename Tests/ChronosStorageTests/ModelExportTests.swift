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
        return try StorageFixtures.chronosModel(configuration: configuration, seed: 5)
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

    func testTensorsOfMixedTypesJoinInF32() throws {
        // The key latent's projection in bf16 beside an f32 RoPE key: kv_a_proj_with_mqa joins them.
        let original = try deepSeekShapedModel()
        let checkpoint = try SafetensorsCheckpoint(directory: original)
        let tensors = try checkpoint.tensorNames.map { name -> (name: String, tensor: Tensor) in
            let tensor = try checkpoint.tensor(named: name)
            return (name, name.hasSuffix("kv_down_proj.weight") ? tensor.converted(to: .bf16) : tensor)
        }
        let mixed = try Fixtures.temporaryDirectory()
        try SafetensorsWriter.write(tensors, to: ModelDirectory(mixed).checkpoint)
        try FileManager.default.copyItem(at: ModelDirectory(original).config, to: ModelDirectory(mixed).config)
        let exported = try Fixtures.temporaryDirectory().appendingPathComponent("ds")
        try ModelExport.export(mixed, as: .deepSeekV2, to: exported)
        XCTAssertEqual(
            try SafetensorsCheckpoint(directory: exported).info(named: "model.layers.0.self_attn.kv_a_proj_with_mqa.weight").dtype, .f32)
        assertClose(try logits(exported), try logits(mixed), tolerance: 1e-5)
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

    /// The repository's root, where `scripts/` and `data/` are.
    private let repository = Fixtures.shippedModel.deletingLastPathComponent().deletingLastPathComponent()

    func testTwoProcessesTrainTheExportUnderTorchrunAndTheResultImportsAndGenerates() throws {
        guard Python.canImport("torch, transformers, tokenizers") else {
            throw XCTSkip("python3 with torch, transformers and tokenizers is not installed")
        }
        // A small model with the shipped model's tokenizer, exported for transformers.
        let configuration = ChronosConfiguration(
            vocabSize: 6400, hiddenSize: 32, hiddenLayers: 2, attentionHeads: 4, keyValueHeads: 2, headDim: 8, kvLatentDim: 16,
            ropeDim: 4, slidingWindow: 16, experts: 4, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 32,
            sharedExpertIntermediateSize: 32, lookaheadSteps: 2)
        let root = try Fixtures.temporaryDirectory()
        let model = root.appendingPathComponent("model"), exported = root.appendingPathComponent("hf")
        let trained = root.appendingPathComponent("trained"), imported = root.appendingPathComponent("back")
        try TransformerLanguageModel(
            configuration: configuration, weights: TransformerLanguageModel.initialize(configuration: configuration, seed: 1)
        )
        .save(to: model)
        for name in [ModelDirectory.Name.tokenizer, ModelDirectory.Name.tokenizerConfig] {
            try FileManager.default.copyItem(at: Fixtures.shippedModel.appendingPathComponent(name), to: model.appendingPathComponent(name))
        }
        try ModelExport.export(model, as: .transformers, to: exported)
        let lines = try String(contentsOf: repository.appendingPathComponent("data/austen/train.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(200)
        let data = root.appendingPathComponent("train.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: data, atomically: true, encoding: .utf8)

        let script = repository.appendingPathComponent("scripts/train_distributed.py").path
        let common = [script, "--model", exported.path, "--data", data.path, "--batch", "8", "--seq-len", "32"]
        func torchrun(_ arguments: [String]) throws -> String {
            let run = try Python.run(
                arguments: ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + common + arguments,
                environment: ["OMP_NUM_THREADS": "1"], timeout: 180)
            XCTAssertEqual(run.status, 0, "torchrun \(arguments): \(run.errors.suffix(2000))")
            return run.output
        }
        // One process's gradients over the whole batch equal the two processes' over its halves.
        _ = try torchrun(["--check-gradients"])
        // 50 steps on two processes: the loss falls.
        let output = try torchrun(["--steps", "50", "--out", trained.path])
        struct Summary: Decodable {
            let steps: Int
            let firstLoss: Double
            let lastLoss: Double
            let worldSize: Int

            enum CodingKeys: String, CodingKey {
                case steps
                case firstLoss = "first_loss"
                case lastLoss = "last_loss"
                case worldSize = "world_size"
            }
        }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(output.split(separator: "\n").last!.utf8))
        XCTAssertEqual(summary.steps, 50)
        XCTAssertEqual(summary.worldSize, 2)
        XCTAssertLessThan(summary.lastLoss, summary.firstLoss - 0.5, "the loss falls")

        // Back into Chronos: the trained tensors as PyTorch saved them, and a model that generates.
        try ModelExport.importModel(trained, to: imported)
        try assertSameTensors(trained, imported)
        let back = try ModelLoader.load(directory: imported)
        let tokenizer = try XCTUnwrap(ModelDirectory(imported).loadTokenizer())
        let generation = try Generator(model: back, tokenizer: tokenizer)
            .generate(GenerationRequest(promptIds: tokenizer.encode("It is a truth"), maxTokens: 8, sampling: .greedy, ignoreEOS: true))
        XCTAssertEqual(generation.ids.count, 8)
    }
}
