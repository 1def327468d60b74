import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// llama-quantize's recipes as `chronos quantize` applies them, and quantised checkpoints loading.
final class QuantizationRecipeTests: XCTestCase {
    private let eightLayers = QuantizationRecipe.ModelShape(layers: 8, experts: 4, queryGroups: 2)

    func testQ4KMGivesMoreBitsToTheFirstLastAndEveryThirdLayersValuesAndDownProjections() {
        let recipe = QuantizationRecipe.q4_k_m
        let values = (0..<8).map { recipe.type(for: .attentionValue(layer: $0), shape: [512, 4096], dtype: .bf16, model: eightLayers) }
        XCTAssertEqual(values, [DType.q6_k, .q4_k, .q4_k, .q6_k, .q4_k, .q4_k, .q6_k, .q6_k])
        let downs = (0..<8).map { recipe.type(for: .feedForwardDown(layer: $0), shape: [4096, 1024], dtype: .bf16, model: eightLayers) }
        XCTAssertEqual(downs, values)
        XCTAssertEqual(recipe.type(for: .feedForwardUp(layer: 0), shape: [1024, 4096], dtype: .bf16, model: eightLayers), .q4_k)
        XCTAssertEqual(recipe.type(for: .output, shape: [32000, 4096], dtype: .bf16, model: eightLayers), .q6_k)
        XCTAssertEqual(recipe.type(for: .embedding, shape: [32000, 4096], dtype: .bf16, model: eightLayers), .q4_k)
        XCTAssertEqual(recipe.type(for: .router, shape: [8, 4096], dtype: .bf16, model: eightLayers), .bf16)
        XCTAssertEqual(recipe.type(for: .vector, shape: [4096], dtype: .f32, model: eightLayers), .f32)
        XCTAssertEqual(recipe.type(for: .lookahead, shape: [256, 4096], dtype: .f32, model: eightLayers), .f32)
    }

    func testEightExpertModelsKeepKeysAndValuesInQ8_0AndTheOutputProjectionInQ5K() {
        let mixtral = QuantizationRecipe.ModelShape(layers: 32, experts: 8, queryGroups: 4)
        for recipe in [QuantizationRecipe.q4_k_m, .q3_k_m, .q2_k] {
            XCTAssertEqual(recipe.type(for: .attentionKey(layer: 5), shape: [1024, 4096], dtype: .bf16, model: mixtral), .q8_0)
            XCTAssertEqual(recipe.type(for: .attentionValue(layer: 5), shape: [1024, 4096], dtype: .bf16, model: mixtral), .q8_0)
            XCTAssertEqual(recipe.type(for: .attentionOutput(layer: 5), shape: [4096, 4096], dtype: .bf16, model: mixtral), .q5_k)
        }
        XCTAssertEqual(QuantizationRecipe.q8_0.type(for: .output, shape: [32000, 4096], dtype: .bf16, model: mixtral), .q8_0)
    }

    func testRowsThatAreNotWholeBlocksFallBackAsLlamaCppDoes() {
        let shape = eightLayers
        XCTAssertEqual(QuantizationRecipe.q4_k_m.type(for: .feedForwardUp(layer: 1), shape: [128, 64], dtype: .f32, model: shape), .q5_0)
        XCTAssertEqual(QuantizationRecipe.q6_k.type(for: .feedForwardUp(layer: 1), shape: [128, 96], dtype: .f32, model: shape), .q8_0)
        XCTAssertEqual(QuantizationRecipe.q5_k_s.type(for: .feedForwardUp(layer: 1), shape: [128, 64], dtype: .f32, model: shape), .q5_1)
        XCTAssertEqual(QuantizationRecipe.q2_k.type(for: .attentionQuery(layer: 1), shape: [128, 64], dtype: .f32, model: shape), .q4_0)
        XCTAssertEqual(QuantizationRecipe.q4_0.type(for: .feedForwardUp(layer: 1), shape: [128, 48], dtype: .f32, model: shape), .f16)
        XCTAssertEqual(QuantizationRecipe.q4_k_m.type(for: .output, shape: [256, 64], dtype: .f32, model: shape), .q8_0)
    }

    func testAQuantisedCheckpointLoadsAndComputesCloseToTheFloatModel() throws {
        let directory = Fixtures.url("hf-tiny/mixtral")
        let model = try ModelRegistry.load(directory: directory)
        let shape = model.quantizationShape
        XCTAssertEqual(shape.layers, 2)
        XCTAssertEqual(shape.experts, 4)
        var types: [String: DType] = [:]
        for (name, role, tensorShape, _) in model.parameterRoles {
            types[name] = QuantizationRecipe.q8_0.type(for: role, shape: tensorShape, dtype: .f32, model: shape)
        }
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("q8_0")
        var reports: [Int] = []
        try model.save(to: out, types: types) { written, total in
            XCTAssertEqual(total, types.count)
            reports.append(written)
        }
        XCTAssertEqual(reports, Array(1...types.count))

        let quantized = try ModelRegistry.load(directory: out)
        let parameters = Dictionary(uniqueKeysWithValues: quantized.namedParameters().map { ($0.name, $0.tensor.dtype) })
        XCTAssertEqual(parameters["model.layers.0.block_sparse_moe.experts.1.w2.weight"], .q8_0)
        XCTAssertEqual(parameters["model.layers.0.self_attn.q_proj.weight"], .q8_0)
        XCTAssertEqual(parameters["model.layers.0.block_sparse_moe.gate.weight"], .f32)
        XCTAssertEqual(parameters["model.norm.weight"], .f32)
        XCTAssertLessThan(quantized.parameterCounts.totalBytes, model.parameterCounts.totalBytes / 3)

        let ids = [1, 17, 42, 99, 3, 250, 7]
        let expected = try model.forward(ids, cache: model.makeCache()).floats
        let actual = try quantized.forward(ids, cache: quantized.makeCache()).floats
        let scale = expected.map(abs).max()!
        let difference = zip(expected, actual).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(difference, 0.05 * scale, "largest logit difference \(difference) of \(scale)")
        XCTAssertGreaterThan(difference, 0, "quantised weights compute exactly the float model: nothing was quantised")
    }

    func testAQuantisedNormIsRefused() throws {
        let directory = Fixtures.url("hf-tiny/mixtral")
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        var tensors = try checkpoint.tensorNames.map { (name: $0, tensor: try checkpoint.tensor(named: $0)) }
        let index = tensors.firstIndex { $0.name == "model.norm.weight" }!
        tensors[index].tensor = tensors[index].tensor.converted(to: .q8_0)
        let out = try Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(at: directory.appendingPathComponent("config.json"), to: out.appendingPathComponent("config.json"))
        try SafetensorsWriter.write(tensors, to: out.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try ModelRegistry.load(directory: out)) { error in
            XCTAssertTrue("\(error)".contains("model.norm.weight"), "\(error)")
        }
    }
}
