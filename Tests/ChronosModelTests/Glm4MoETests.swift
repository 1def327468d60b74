import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// What the GLM-4.5 oracles (run with every hf-tiny case in `OracleTests`) do not show: that the
/// partial rotary width, the selection bias and the q/k norms each act, that both spellings of
/// `partial_rotary_factor` are read, the dropped prediction layers, and the checks on `config.json`.
final class Glm4MoETests: XCTestCase {
    private func logits(_ directory: URL, reference: OracleReference) throws -> [Float] {
        let model = try ModelRegistry.load(directory: directory)
        return try model.forward(reference.inputIds, cache: model.makeCache()).floats
    }

    private func expectedLogits(_ reference: OracleReference) -> [Float] { reference.logits.flatMap { $0.map(Float.init) } }

    private func loadingError(_ directory: URL) -> ModelError? {
        do {
            _ = try ModelRegistry.load(directory: directory)
            return nil
        } catch {
            return error as? ModelError
        }
    }

    func testLayersAreDenseThenRoutedWithOneWideSharedExpert() throws {
        for oracle in [OracleCase.glm4MoE, .glm4MoEAir] {
            let model = try oracle.load()
            XCTAssertEqual(model.summary.expertsPerLayer, [0, 8], oracle.rawValue)
            XCTAssertEqual(model.summary.expertsPerToken, 2, oracle.rawValue)
            XCTAssertTrue(model.summary.hasSharedExpert, oracle.rawValue)
            XCTAssertEqual([model.summary.attentionHeads, model.summary.keyValueHeads, model.summary.headDim], [4, 2, 16])
        }
    }

    func testTheRotaryWidthTheSelectionBiasAndTheQueryKeyNormsEachChangeTheLogits() throws {
        let reference = try OracleReference.load("glm4_moe")
        let edits: [(String, (inout [String: Any]) -> Void, (inout [(name: String, tensor: Tensor)]) -> Void)] = [
            (
                "partial_rotary_factor",
                { config in
                    var rope = config["rope_parameters"] as! [String: Any]
                    rope["partial_rotary_factor"] = 1.0
                    config["rope_parameters"] = rope
                }, { _ in }
            ),
            (
                "e_score_correction_bias", { _ in },
                { tensors in
                    tensors = tensors.map { $0.name.hasSuffix("e_score_correction_bias") ? ($0.name, Tensor(zeros: $0.tensor.shape)) : $0 }
                }
            ),
            (
                "use_qk_norm",
                { $0["use_qk_norm"] = false },
                { tensors in tensors.removeAll { $0.name.hasSuffix("q_norm.weight") || $0.name.hasSuffix("k_norm.weight") } }
            )
        ]
        for (label, editConfig, editTensors) in edits {
            let directory = try FixtureDirectory.make(from: .glm4MoE, editConfig: editConfig, editTensors: editTensors)
            defer { try? FileManager.default.removeItem(at: directory) }
            XCTAssertGreaterThan(maxAbsoluteDifference(try logits(directory, reference: reference), expectedLogits(reference)), 1e-3, label)
        }
    }

    func testThePartialRotaryFactorIsReadAtTheTopLevelAsHubConfigsHoldIt() throws {
        // The hub files keep partial_rotary_factor beside rope_theta, with no rope_parameters.
        let reference = try OracleReference.load("glm4_moe")
        let directory = try FixtureDirectory.make(from: .glm4MoE) { config in
            config["rope_parameters"] = nil
            config["rope_theta"] = 10000.0
            config["partial_rotary_factor"] = 0.5
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(directory, reference: reference), expectedLogits(reference)), 1e-4)
        // Without any factor, half of each head rotates, as transformers' Glm4MoeConfig defaults.
        let unstated = try FixtureDirectory.make(from: .glm4MoE) { config in
            config["rope_parameters"] = ["rope_type": "default", "rope_theta": 10000.0]
        }
        defer { try? FileManager.default.removeItem(at: unstated) }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(unstated, reference: reference), expectedLogits(reference)), 1e-4)
    }

    func testMultiTokenPredictionLayersAreDropped() throws {
        let directory = try FixtureDirectory.make(
            from: .glm4MoE, editConfig: { $0["num_nextn_predict_layers"] = 1 },
            editTensors: { tensors in
                tensors.append(("model.layers.2.eh_proj.weight", Tensor(zeros: [64, 128])))
                tensors.append(("model.layers.2.mlp.experts.0.down_proj.weight", Tensor(zeros: [64, 32])))
            })
        defer { try? FileManager.default.removeItem(at: directory) }
        let reference = try OracleReference.load("glm4_moe")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(directory, reference: reference), expectedLogits(reference)), 1e-4)
    }

    func testASavedModelLoadsBackToTheSameLogits() throws {
        let reference = try OracleReference.load("glm4_moe_air")
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try ModelRegistry.load(directory: OracleCase.glm4MoEAir.directory).save(to: directory)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(directory, reference: reference), expectedLogits(reference)), 1e-4)
    }

    func testRoutingRotaryAndActivationSettingsAreCheckedWhereTheyEnter() throws {
        let malformed: [([String: Any], String)] = [
            (["partial_rotary_factor": 0, "rope_parameters": NSNull()], "partial_rotary_factor"),
            (["rope_parameters": ["rope_theta": 10000.0, "partial_rotary_factor": 1.5]], "partial_rotary_factor"),
            // 16 · 0.1 rounds down to 1 dimension, which RoPE cannot pair.
            (["rope_parameters": ["rope_theta": 10000.0, "partial_rotary_factor": 0.1]], "partial_rotary_factor"),
            (["n_group": 3], "n_group"),
            (["n_group": 8, "topk_group": 2], "n_group"),
            (["topk_group": 5], "topk_group"),
            (["n_group": 4, "topk_group": 1, "num_experts_per_tok": 3], "num_experts_per_tok"),
            (["n_shared_experts": 0], "n_shared_experts"),
            (["first_k_dense_replace": 3], "first_k_dense_replace"),
            (["routed_scaling_factor": 0], "routed_scaling_factor"),
            (["moe_intermediate_size": -4], "moe_intermediate_size"),
            (["head_dim": NSNull(), "num_attention_heads": 5], "num_attention_heads")
        ]
        for (edit, field) in malformed {
            let directory = try FixtureDirectory.make(from: .glm4MoE) { $0.merge(edit) { $1 } }
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .malformedConfig(_, let named, let reason)? = loadingError(directory) else {
                XCTFail("\(edit) was not refused")
                continue
            }
            XCTAssertEqual(named, field, "\(edit): \(reason)")
        }
        let unsupported: [([String: Any], String)] = [
            (["hidden_act": "gelu"], "hidden_act"),
            (["rope_parameters": ["rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0]], "rope_parameters.rope_type")
        ]
        for (edit, field) in unsupported {
            let directory = try FixtureDirectory.make(from: .glm4MoE) { $0.merge(edit) { $1 } }
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .unsupportedConfig(_, let named, _)? = loadingError(directory) else {
                XCTFail("\(edit) was not refused")
                continue
            }
            XCTAssertEqual(named, field, "\(edit)")
        }
    }
}
