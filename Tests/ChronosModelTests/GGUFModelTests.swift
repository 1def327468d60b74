import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// What llama.cpp computed on one file of `Tests/Fixtures/gguf-models` (see its maker,
/// `scripts/make_gguf_model_fixtures.py`).
struct LlamaCppReference: Decodable {
    let inputIds: [Int]
    let logits: [[Float]]
    let greedy: [Int]
    let greedyLogits: [[Float]]
    let types: [String: String]
    /// The prompt's logits from transformers, for the files converted from a checkpoint made here.
    let transformersLogits: [[Float]]?

    enum CodingKeys: String, CodingKey {
        case inputIds = "input_ids"
        case logits, greedy, types
        case greedyLogits = "greedy_logits"
        case transformersLogits = "transformers_logits"
    }

    static func load(_ name: String) throws -> LlamaCppReference {
        try JSONDecoder().decode(Self.self, from: Data(contentsOf: Fixtures.url("gguf-models/\(name).json")))
    }
}

/// GGUF files written by llama.cpp's converter and quantiser, run through the shared model code.
final class GGUFModelTests: XCTestCase {
    func testF32GGUFFilesGiveTheSafetensorsModelsLogits() throws {
        for oracle in OracleCase.convertedToGGUF {
            let gguf = try ModelRegistry.load(directory: Fixtures.url("gguf-models/\(oracle.rawValue)-f32.gguf"))
            let safetensors = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            XCTAssertEqual(gguf.summary.modelType, safetensors.summary.modelType, oracle.rawValue)
            XCTAssertEqual(gguf.parameterCounts, safetensors.parameterCounts, oracle.rawValue)
            let logits = try gguf.forward(reference.inputIds, cache: gguf.makeCache()).floats
            let expected = try safetensors.forward(reference.inputIds, cache: safetensors.makeCache()).floats
            let difference = maxAbsoluteDifference(logits, expected)
            XCTAssertLessThanOrEqual(difference, 1e-5, "\(oracle.rawValue): largest logit difference \(difference)")
        }
    }

    func testF32GGUFFilesMatchLlamaCppLogitsAndGreedyTokens() throws {
        for oracle in OracleCase.convertedToGGUF {
            let name = "\(oracle.rawValue)-f32"
            let model = try ModelRegistry.load(directory: Fixtures.url("gguf-models/\(name).gguf"))
            let reference = try LlamaCppReference.load(name)
            let logits = try model.forward(reference.inputIds, cache: model.makeCache()).floats
            // llama.cpp keeps its key/value cache in f16.
            let difference = maxAbsoluteDifference(logits, reference.logits.flatMap { $0 })
            XCTAssertLessThanOrEqual(difference, 2e-2, "\(name): largest logit difference \(difference)")
            XCTAssertEqual(try greedy(model, reference.inputIds, count: reference.greedy.count), reference.greedy, name)
        }
    }

    func testQwenDenseOLMoEAndScaledRotaryGGUFFilesMatchTransformersAndLlamaCpp() throws {
        for name in ["qwen2-dense-f32", "qwen3-dense-f32", "olmoe-f32", "qwen3_moe-yarn-f32", "llama-linear-f32"] {
            let model = try ModelRegistry.load(directory: Fixtures.url("gguf-models/\(name).gguf"))
            XCTAssertEqual(model.summary.isMixtureOfExperts, ["olmoe-f32", "qwen3_moe-yarn-f32"].contains(name), name)
            let reference = try LlamaCppReference.load(name)
            let logits = try model.forward(reference.inputIds, cache: model.makeCache()).floats
            let transformers = try XCTUnwrap(reference.transformersLogits).flatMap { $0 }
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, transformers), 1e-4, name)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, reference.logits.flatMap { $0 }), 2e-2, name)
            XCTAssertEqual(try greedy(model, reference.inputIds, count: reference.greedy.count), reference.greedy, name)
        }
    }

    /// llama.cpp's `deepseek2` files, kv_b_proj split and transposed, give the safetensors
    /// checkpoints' logits where the file says all the checkpoint does, and llama.cpp's.
    func testDeepSeekGGUFFilesMatchTheCheckpointsAndLlamaCpp() throws {
        for oracle in [OracleCase.deepSeekV2, .deepSeekV2QueryLatent, .deepSeekV3] {
            let name = "\(oracle.rawValue)-f32"
            let model = try ModelRegistry.load(directory: Fixtures.url("gguf-models/\(name).gguf"))
            XCTAssertEqual(model.summary.modelType, oracle == .deepSeekV3 ? "deepseek_v3" : "deepseek_v2", name)
            let prompt = try OracleReference.load(oracle.rawValue).inputIds
            let logits = try model.forward(prompt, cache: model.makeCache()).floats
            // The V3 case's mscale differs from its mscale_all_dim, which a GGUF file cannot say.
            if oracle != .deepSeekV3 {
                let safetensors = try oracle.load()
                let expected = try safetensors.forward(prompt, cache: safetensors.makeCache()).floats
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, expected), 1e-5, name)
            }
            // llama.cpp does not load a DeepSeek-V2 without a query latent unless it has 27 layers.
            guard oracle != .deepSeekV2 else { continue }
            let reference = try LlamaCppReference.load(name)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, reference.logits.flatMap { $0 }), 2e-2, name)
            XCTAssertEqual(try greedy(model, reference.inputIds, count: reference.greedy.count), reference.greedy, name)
        }
    }

    /// llama.cpp's `glm4moe` files, their rotary width in `rope.dimension_count` and their
    /// pre-feed-forward norm named `post_attention_norm`, give the checkpoints' logits and llama.cpp's.
    func testGlm4MoEGGUFFilesMatchTheCheckpointsAndLlamaCpp() throws {
        for oracle in [OracleCase.glm4MoE, .glm4MoEAir] {
            let name = "\(oracle.rawValue)-f32"
            let model = try ModelRegistry.load(directory: Fixtures.url("gguf-models/\(name).gguf"))
            let safetensors = try oracle.load(), prompt = try OracleReference.load(oracle.rawValue).inputIds
            XCTAssertEqual(model.summary.modelType, "glm4_moe", name)
            XCTAssertEqual(model.parameterCounts, safetensors.parameterCounts, name)
            let logits = try model.forward(prompt, cache: model.makeCache()).floats
            let expected = try safetensors.forward(prompt, cache: safetensors.makeCache()).floats
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, expected), 1e-5, name)
            let reference = try LlamaCppReference.load(name)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, reference.logits.flatMap { $0 }), 2e-2, name)
            XCTAssertEqual(try greedy(model, reference.inputIds, count: reference.greedy.count), reference.greedy, name)
        }
    }

    /// A GLM-4.5 file counts its multi-token-prediction layer in `block_count`; that layer is skipped.
    func testAGlm4MoEPredictionLayerIsSkipped() throws {
        let plain = try ModelRegistry.load(directory: Fixtures.url("gguf-models/glm4_moe_air-f32.gguf"))
        let model = try ModelRegistry.load(directory: Fixtures.url("gguf-models/glm4_moe_air-mtp-f32.gguf"))
        XCTAssertEqual(model.summary.layerCount, 2)
        let prompt = try OracleReference.load("glm4_moe_air").inputIds
        XCTAssertEqual(
            try model.forward(prompt, cache: model.makeCache()).floats, try plain.forward(prompt, cache: plain.makeCache()).floats)
    }

    func testQuantisedGGUFFilesMatchLlamaCpp() throws {
        for recipe in ["q8_0", "q4_k_m", "q4_0"] {
            let name = "mixtral-wide-\(recipe)"
            let url = Fixtures.url("gguf-models/\(name).gguf")
            let reference = try LlamaCppReference.load(name)
            let file = try GGUFFile(url: url)
            for info in file.tensorInfos {
                XCTAssertEqual(info.dtype.rawValue.uppercased(), reference.types[info.name], "\(name): \(info.name)")
            }
            let model = try ModelRegistry.load(directory: url)
            let logits = try model.forward(reference.inputIds, cache: model.makeCache()).floats
            let expected = reference.logits.flatMap { $0 }
            // Both engines quantise activations block by block, so they differ by about that
            // rounding; a misplaced tensor or row would differ by the logits' whole spread.
            let spread = rootMeanSquare(expected.map { $0 - expected.reduce(0, +) / Float(expected.count) })
            let difference = rootMeanSquare(zip(logits, expected).map { $0 - $1 })
            XCTAssertLessThanOrEqual(
                difference, 0.03 * spread, "\(name): root-mean-square logit difference \(difference), spread \(spread)")
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, expected), 0.15 * spread, name)

            // Greedy tokens agree while llama.cpp's top two logits are clearly apart.
            let tokens = try greedy(model, reference.inputIds, count: reference.greedy.count)
            var compared = 0
            for (step, row) in ([reference.logits.last!] + reference.greedyLogits).enumerated() {
                let sorted = row.sorted(by: >)
                guard sorted[0] - sorted[1] > 0.1 * spread else { break }
                XCTAssertEqual(tokens[step], reference.greedy[step], "\(name): greedy token \(step)")
                guard tokens[step] == reference.greedy[step] else { break }
                compared += 1
            }
            XCTAssertGreaterThan(compared, 0, "\(name): no greedy step had a clear margin")
        }
    }

    func testKQuantFixtureReallyHoldsKQuantTensors() throws {
        let types = Set(try GGUFFile(url: Fixtures.url("gguf-models/mixtral-wide-q4_k_m.gguf")).tensorInfos.map(\.dtype))
        XCTAssertTrue(types.isSuperset(of: [.q4_k, .q6_k]), "\(types)")
    }

    func testPerExpertAndStackedExpertLayoutsLoadToTheSameModel() throws {
        let stacked = try ModelRegistry.load(directory: Fixtures.url("gguf/tiny-moe-stacked.gguf"))
        let perExpert = try ModelRegistry.load(directory: Fixtures.url("gguf/tiny-moe-per-expert.gguf"))
        XCTAssertEqual(stacked.summary.modelType, "mixtral")
        XCTAssertEqual(stacked.summary.expertsPerLayer, [2, 2])
        let ids = [5, 200, 259, 17, 32]
        let logits = try stacked.forward(ids, cache: stacked.makeCache()).floats
        XCTAssertEqual(logits, try perExpert.forward(ids, cache: perExpert.makeCache()).floats)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        let tokenizer = try XCTUnwrap(ModelDirectory(Fixtures.url("gguf/tiny-moe-stacked.gguf")).loadTokenizer())
        XCTAssertEqual(tokenizer.encode(" the in"), [258, 32, 259])
    }

    /// A router holding NaN (found by fuzzing) is an error naming the layer, not a trap.
    func testARouterOfNonFiniteWeightsIsAnErrorNotATrap() throws {
        let source = Fixtures.url("gguf/tiny-moe-stacked.gguf")
        var bytes = try Data(contentsOf: source)
        let router = try GGUFFile(url: source).info(named: "blk.1.ffn_gate_inp.weight")
        bytes.replaceSubrange(router.byteRange.lowerBound..<(router.byteRange.lowerBound + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("nan-router.gguf")
        try bytes.write(to: url)
        let model = try ModelRegistry.load(directory: url)
        XCTAssertThrowsError(try model.forward([5, 6], cache: model.makeCache())) { error in
            XCTAssertEqual(error as? ModelError, .nonFiniteRouting(layer: 1))
        }
    }

    func testMetadataThatDoesNotDescribeAModelIsRefusedByKey() throws {
        let directory = try Fixtures.temporaryDirectory()
        let cases: [([String: GGUFValue], String)] = [
            (["general.architecture": .string("gemma3")], "general.architecture"),
            ([:], "general.architecture"),
            (["general.architecture": .string("llama")], "llama.attention.head_count"),
            (["general.architecture": .string("llama"), "llama.attention.head_count": .unsigned(0)], "llama.attention.head_count"),
            (
                [
                    "general.architecture": .string("qwen3moe"), "qwen3moe.attention.head_count": .unsigned(4),
                    "qwen3moe.embedding_length": .string("64")
                ], "qwen3moe.embedding_length"
            )
        ]
        for (index, (metadata, key)) in cases.enumerated() {
            let url = directory.appendingPathComponent("case\(index).gguf")
            try GGUFFile.write(metadata: metadata, to: url)
            XCTAssertThrowsError(try ModelRegistry.load(directory: url), "\(metadata)") { error in
                XCTAssertTrue("\(error)".contains(key), "\(error) does not name \(key)")
            }
        }
    }

    private func greedy(_ model: any LanguageModel, _ prompt: [Int], count: Int) throws -> [Int] {
        let cache = model.makeCache()
        var logits = try model.forward(prompt, cache: cache)
        var tokens: [Int] = []
        while tokens.count < count {
            let last = logits.slice((logits.shape[0] - 1)..<logits.shape[0]).floats
            tokens.append(argmax(last))
            logits = try model.forward([tokens.last!], cache: cache)
        }
        return tokens
    }

    private func rootMeanSquare(_ values: [Float]) -> Float {
        (values.reduce(0) { $0 + $1 * $1 } / Float(values.count)).squareRoot()
    }
}
