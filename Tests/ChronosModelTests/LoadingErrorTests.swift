import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// What loading a broken model directory says, and that it names the thing at fault.
final class LoadingErrorTests: XCTestCase {
    private func loadingError(_ directory: URL) -> Error? {
        do {
            _ = try ModelRegistry.load(directory: directory)
            return nil
        } catch {
            return error
        }
    }

    func testUnknownModelTypeNamesItAndTheKnownOnes() throws {
        let directory = try FixtureDirectory.make(from: .llamaDense) { $0["model_type"] = "gpt_neox" }
        let error = loadingError(directory)
        XCTAssertEqual(error as? ModelError, .unknownModelType("gpt_neox", known: ModelRegistry.modelTypes))
        XCTAssertEqual(
            ModelRegistry.modelTypes,
            ["chronos", "deepseek_v2", "deepseek_v3", "glm4_moe", "gpt_oss", "llama", "mixtral", "olmoe", "qwen2_moe", "qwen3_moe"])
        let message = "\(error!)"
        XCTAssertTrue(message.contains("gpt_neox") && message.contains("mixtral") && message.contains("qwen3_moe"), message)
    }

    func testMissingTensorNamesTensorAndDirectory() throws {
        let name = "model.layers.1.block_sparse_moe.experts.2.w3.weight"
        let directory = try FixtureDirectory.make(from: .mixtral, editTensors: { $0.removeAll { $0.name == name } })
        let error = loadingError(directory)
        XCTAssertEqual(error as? ModelError, .missingTensor(name: name, directory: directory.path))
        XCTAssertTrue("\(error!)".contains(name) && "\(error!)".contains(directory.path))

        let dense = "model.layers.0.self_attn.q_proj.bias"
        let noBias = try FixtureDirectory.make(from: .qwen2MoE, editTensors: { $0.removeAll { $0.name == dense } })
        XCTAssertEqual(loadingError(noBias) as? ModelError, .missingTensor(name: dense, directory: noBias.path))
    }

    func testShapeMismatchNamesTensorAndBothShapes() throws {
        let name = "model.layers.0.self_attn.k_proj.weight"
        let directory = try FixtureDirectory.make(
            from: .llamaDense,
            editTensors: { tensors in
                let index = tensors.firstIndex { $0.name == name }!
                tensors[index].tensor = Tensor(zeros: [16, 64])
            })
        let error = loadingError(directory)
        XCTAssertEqual(error as? ModelError, .shapeMismatch(tensor: name, expected: [32, 64], found: [16, 64]))
        XCTAssertTrue("\(error!)".contains(name) && "\(error!)".contains("[32, 64]") && "\(error!)".contains("[16, 64]"))
    }

    func testMalformedConfigNamesFileAndField() throws {
        let missingField = try FixtureDirectory.make(from: .mixtral) { $0.removeValue(forKey: "hidden_size") }
        let configFile = missingField.appendingPathComponent("config.json").path
        XCTAssertEqual(
            loadingError(missingField) as? ModelError,
            .malformedConfig(file: configFile, field: "hidden_size", reason: "is missing"))

        let wrongType = try FixtureDirectory.make(from: .qwen3MoE) { $0["num_local_experts"] = "eight" }
        guard case .malformedConfig(let file, let field, _)? = loadingError(wrongType) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertEqual(file, wrongType.appendingPathComponent("config.json").path)
        XCTAssertEqual(field, "num_local_experts")

        let noType = try FixtureDirectory.make(from: .llamaDense) { $0.removeValue(forKey: "model_type") }
        guard case .malformedConfig(_, let typeField, _)? = loadingError(noType) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertEqual(typeField, "model_type")

        let badSize = try FixtureDirectory.make(from: .mixtral) { $0["num_experts_per_tok"] = 5 }
        guard case .malformedConfig(_, let sizeField, let reason)? = loadingError(badSize) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertEqual(sizeField, "num_experts_per_tok", reason)

        for (family, layers) in [(OracleCase.qwen2MoE, 99_999_991), (.llamaDense, -1), (.mixtral, 0)] {
            let deep = try FixtureDirectory.make(from: family) { $0["num_hidden_layers"] = layers }
            guard case .malformedConfig(_, let layerField, let layerReason)? = loadingError(deep) as? ModelError else {
                return XCTFail("expected malformedConfig for \(layers) layers")
            }
            XCTAssertEqual(layerField, "num_hidden_layers", layerReason)
        }

        for value in [256.5, 1e30] {
            let fractional = try FixtureDirectory.make(from: .mixtral) { $0["intermediate_size"] = value }
            guard case .malformedConfig(_, let integerField, let integerReason)? = loadingError(fractional) as? ModelError else {
                return XCTFail("expected malformedConfig for \(value)")
            }
            XCTAssertEqual(integerField, "intermediate_size", integerReason)
            XCTAssertTrue(integerReason.contains("not an integer"), integerReason)
        }

        let notJSON = try FixtureDirectory.make(from: .llamaDense)
        try Data("{ \"model_type\": ".utf8).write(to: notJSON.appendingPathComponent("config.json"))
        guard case .malformedConfig(let jsonFile, _, _)? = loadingError(notJSON) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertEqual(jsonFile, notJSON.appendingPathComponent("config.json").path)

        let noConfig = try Fixtures.temporaryDirectory()
        guard case .malformedConfig(let absentFile, _, _)? = loadingError(noConfig) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertEqual(absentFile, noConfig.appendingPathComponent("config.json").path)

        let configDirectory = try Fixtures.temporaryDirectory()
        try FileManager.default.createDirectory(
            at: configDirectory.appendingPathComponent("config.json"), withIntermediateDirectories: false)
        guard case .malformedConfig(_, _, let directoryReason)? = loadingError(configDirectory) as? ModelError else {
            return XCTFail("expected malformedConfig")
        }
        XCTAssertTrue(directoryReason.contains("Is a directory"), directoryReason)
    }

    func testUnsupportedSettingsAreRefusedNotRunWrongly() throws {
        let scaled = try FixtureDirectory.make(from: .llamaDense) {
            $0["rope_parameters"] = ["rope_theta": 500000.0, "rope_type": "dynamic", "factor": 8.0]
        }
        XCTAssertEqual(
            loadingError(scaled) as? ModelError,
            .unsupportedConfig(
                file: scaled.appendingPathComponent("config.json").path,
                field: "rope_parameters.rope_type", value: "'dynamic'"))
        let gelu = try FixtureDirectory.make(from: .mixtral) { $0["hidden_act"] = "gelu" }
        guard case .unsupportedConfig(_, let field, _)? = loadingError(gelu) as? ModelError else {
            return XCTFail("expected unsupportedConfig")
        }
        XCTAssertEqual(field, "hidden_act")
    }

    func testDirectoryWithoutWeightsIsACheckpointError() throws {
        let directory = try FixtureDirectory.make(from: .llamaDense)
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(loadingError(directory) as? SafetensorsError, .noCheckpoint(directory: directory.path))
    }

    func testStrippedCheckpointWithoutAnExpertProviderIsRefused() throws {
        let full = try OracleCase.mixtral.load()
        let directory = try FixtureDirectory.make(from: .mixtral)
        // What `chronos pack --strip-experts` leaves: the dense tensors, marked as such.
        let tensors = try FixtureDirectory.fixtureTensors(.mixtral).filter { !$0.name.contains(".experts.") }
        try SafetensorsWriter.write(
            tensors, metadata: [StrippedCheckpoint.metadataKey: StrippedCheckpoint.inExpertCache],
            to: ModelDirectory(directory).checkpoint)
        XCTAssertTrue(StrippedCheckpoint.isStripped(directory: directory))
        let error = loadingError(directory)
        XCTAssertEqual(error as? ModelError, .expertsInCache(directory: directory.path))
        XCTAssertTrue("\(error!)".contains("ModelLoader.load") && "\(error!)".contains("expert_cache/"), "\(error!)")

        // Given the experts, it loads and computes as the full checkpoint does.
        var experts: [ExpertKey: ExpertWeights] = [:]
        for (layer, count) in full.summary.expertsPerLayer.enumerated() {
            for expert in 0..<count {
                let key = ExpertKey(layer: layer, expert: expert)
                experts[key] = full.experts.weights(for: key)
            }
        }
        let stripped = try ModelRegistry.load(directory: directory, experts: ResidentExperts(experts))
        let ids = [1, 5, 9, 2]
        XCTAssertEqual(
            try stripped.forward(ids, cache: stripped.makeCache()).floats,
            try full.forward(ids, cache: full.makeCache()).floats)
    }
}
