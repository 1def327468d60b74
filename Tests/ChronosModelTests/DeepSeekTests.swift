import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// What the DeepSeek oracles (run with every hf-tiny case in `OracleTests`) do not show: the
/// cache's contents, the checks on `config.json`, and the checkpoint tensors that are dropped.
final class DeepSeekTests: XCTestCase {
    private let cases: [OracleCase] = [.deepSeekV2, .deepSeekV2QueryLatent, .deepSeekV3]

    private func loadingError(_ directory: URL) -> ModelError? {
        do {
            _ = try ModelRegistry.load(directory: directory)
            return nil
        } catch {
            return error as? ModelError
        }
    }

    func testTheCacheHoldsOnlyTheLatentAndTheRopeKeyOfEachPosition() throws {
        for oracle in cases {
            let model = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            let cache = model.makeCache()
            _ = try model.forward(reference.inputIds, cache: cache)
            for layer in cache.layers {
                guard let latent = layer as? LatentKVCache else { return XCTFail("\(oracle.rawValue): not a latent cache") }
                // kv_lora_rank 32 and qk_rope_head_dim 8: nothing per head.
                XCTAssertEqual(latent.rowWidth, 32 + 8, oracle.rawValue)
                XCTAssertEqual(latent.offset, reference.inputIds.count, oracle.rawValue)
            }
            XCTAssertEqual(model.summary.expertsPerLayer, [0, 8], oracle.rawValue)
            XCTAssertTrue(model.summary.hasSharedExpert, oracle.rawValue)
        }
    }

    func testTheSelectionBiasChoosesExperts() throws {
        let model = try OracleCase.deepSeekV3.load(), reference = try OracleReference.load("deepseek_v3")
        let unbiased = try FixtureDirectory.make(
            from: .deepSeekV3,
            editTensors: { tensors in
                tensors = tensors.map { $0.name.hasSuffix("e_score_correction_bias") ? ($0.name, Tensor(zeros: $0.tensor.shape)) : $0 }
            })
        defer { try? FileManager.default.removeItem(at: unbiased) }
        func choices(_ model: any LanguageModel) throws -> [[Int]] {
            let cache = model.makeCache(), log = ForwardLog()
            cache.observer = log
            _ = try model.forward(reference.inputIds, cache: cache)
            return log.decisions.map(\.experts)
        }
        XCTAssertNotEqual(try choices(model), try choices(ModelRegistry.load(directory: unbiased)))
    }

    func testMultiTokenPredictionLayersAreDropped() throws {
        let directory = try FixtureDirectory.make(
            from: .deepSeekV3,
            editTensors: { tensors in
                tensors.append(("model.layers.2.eh_proj.weight", Tensor(zeros: [64, 128])))
            })
        defer { try? FileManager.default.removeItem(at: directory) }
        let reference = try OracleReference.load("deepseek_v3"), model = try ModelRegistry.load(directory: directory)
        let logits = try model.forward(reference.inputIds, cache: model.makeCache()).floats
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(logits, reference.logits.flatMap { $0.map(Float.init) }), 1e-4)
    }

    func testRoutingAndAttentionSettingsAreCheckedWhereTheyEnter() throws {
        let unsupported: [(OracleCase, String, Any)] = [
            (.deepSeekV2, "topk_method", "noaux_tc"),
            (.deepSeekV2, "norm_topk_prob", true),
            (.deepSeekV2, "scoring_func", "sigmoid"),
            (.deepSeekV3, "scoring_func", "softmax"),
            (.deepSeekV3, "topk_method", "greedy"),
            (.deepSeekV3, "attention_bias", true),
            (.deepSeekV3, "moe_layer_freq", 2)
        ]
        for (oracle, field, value) in unsupported {
            let directory = try FixtureDirectory.make(from: oracle) { $0[field] = value }
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .unsupportedConfig(_, let named, _)? = loadingError(directory) else {
                XCTFail("\(oracle.rawValue): \(field) = \(value) was not refused")
                continue
            }
            XCTAssertEqual(named, field)
        }
        let malformed: [(OracleCase, [String: Any], String)] = [
            (.deepSeekV3, ["n_group": 3], "n_group"),
            (.deepSeekV3, ["n_group": 8, "topk_group": 4], "n_group"),
            (.deepSeekV3, ["topk_group": 5], "topk_group"),
            (.deepSeekV2, ["topk_group": 1, "num_experts_per_tok": 3], "num_experts_per_tok"),
            (.deepSeekV2, ["n_group": NSNull()], "n_group"),
            (.deepSeekV3, ["routed_scaling_factor": 0], "routed_scaling_factor"),
            (.deepSeekV3, ["first_k_dense_replace": 3], "first_k_dense_replace"),
            (.deepSeekV2QueryLatent, ["q_lora_rank": 0], "q_lora_rank"),
            (.deepSeekV2, ["qk_rope_head_dim": 7], "qk_rope_head_dim"),
            (.deepSeekV2, ["kv_lora_rank": -1], "kv_lora_rank")
        ]
        for (oracle, edit, field) in malformed {
            let directory = try FixtureDirectory.make(from: oracle) { $0.merge(edit) { $1 } }
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .malformedConfig(_, let named, _)? = loadingError(directory) else {
                XCTFail("\(oracle.rawValue): \(edit) was not refused")
                continue
            }
            XCTAssertEqual(named, field, "\(edit)")
        }
    }
}
