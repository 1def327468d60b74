import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// The scaled RoPE variants (`linear`, `llama3`, `yarn`) in both `config.json` forms; the
/// oracle comparisons themselves run with every hf-tiny case in `OracleTests`.
final class RoPEScalingTests: XCTestCase {
    private let scaledCases: [OracleCase] = [.llamaLinear, .llamaLlama3, .llamaYarn]

    private func logits(_ directory: URL) throws -> [Float] {
        let model = try ModelRegistry.load(directory: directory)
        return try model.forward(OracleReference.load("llama_dense").inputIds, cache: model.makeCache()).floats
    }

    private func loadingError(_ directory: URL) -> ModelError? {
        do {
            _ = try ModelRegistry.load(directory: directory)
            return nil
        } catch {
            return error as? ModelError
        }
    }

    func testTheTransformers4FormLoadsTheSameModel() throws {
        for oracle in scaledCases {
            let legacy = try FixtureDirectory.make(from: oracle) { config in
                var scaling = config.removeValue(forKey: "rope_parameters") as! [String: Any]
                config["rope_theta"] = scaling.removeValue(forKey: "rope_theta")
                scaling["type"] = scaling.removeValue(forKey: "rope_type")
                config["rope_scaling"] = scaling
            }
            defer { try? FileManager.default.removeItem(at: legacy) }
            XCTAssertEqual(try logits(legacy), try logits(oracle.directory), oracle.rawValue)
        }
    }

    func testScalingByOneIsPlainRoPE() throws {
        let plain = try logits(OracleCase.llamaDense.directory)
        for parameters: [String: Any] in [
            ["rope_type": "linear", "factor": 1.0],
            ["rope_type": "yarn", "factor": 1.0, "original_max_position_embeddings": 16]
        ] {
            let directory = try FixtureDirectory.make(from: .llamaDense) {
                $0["rope_parameters"] = parameters.merging(["rope_theta": 10000.0]) { $1 }
            }
            defer { try? FileManager.default.removeItem(at: directory) }
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(directory), plain), 1e-6, "\(parameters)")
        }
    }

    func testScalingFieldsAreCheckedWhereTheyEnter() throws {
        let cases: [([String: Any], String)] = [
            (["rope_type": "linear"], "rope_parameters.factor"),
            (["rope_type": "linear", "factor": -2.0], "rope_parameters.factor"),
            (["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0], "rope_parameters.high_freq_factor"),
            (["rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0], "rope_parameters.low_freq_factor"),
            (
                ["rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 0],
                "rope_parameters.original_max_position_embeddings"
            ),
            (["rope_type": "yarn", "factor": 4.0, "beta_fast": -1.0], "rope_parameters.beta_fast"),
            (["rope_type": "yarn", "factor": 4.0, "attention_factor": 0.0], "rope_parameters.attention_factor")
        ]
        for (parameters, field) in cases {
            let directory = try FixtureDirectory.make(from: .llamaDense) {
                $0["rope_parameters"] = parameters.merging(["rope_theta": 10000.0]) { $1 }
            }
            defer { try? FileManager.default.removeItem(at: directory) }
            guard case .malformedConfig(_, let named, _)? = loadingError(directory) else {
                XCTFail("\(parameters) was not refused")
                continue
            }
            XCTAssertEqual(named, field, "\(parameters)")
        }
        for type in ["dynamic", "longrope"] {
            let directory = try FixtureDirectory.make(from: .llamaDense) {
                $0["rope_parameters"] = ["rope_type": type, "rope_theta": 10000.0, "factor": 2.0]
            }
            defer { try? FileManager.default.removeItem(at: directory) }
            XCTAssertEqual(
                loadingError(directory),
                .unsupportedConfig(
                    file: directory.appendingPathComponent("config.json").path, field: "rope_parameters.rope_type", value: "'\(type)'"))
        }
    }

    func testTheAttentionFactorScalesCosineAndSine() throws {
        let doubled = Tensor(shape: [1, 2], values: [1, 0]).rope(
            heads: 1, headDim: 2, frequencies: RoPE.Frequencies(inverseFrequencies: [0.5], attentionFactor: 2), positionOffset: 1)
        XCTAssertEqual(doubled.floats[0], 2 * cos(0.5), accuracy: 1e-6)
        XCTAssertEqual(doubled.floats[1], 2 * sin(0.5), accuracy: 1e-6)
    }
}
