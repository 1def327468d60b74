import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// What the gpt-oss oracle (run with every hf-tiny case in `OracleTests`) does not show: that
/// the sinks, the clamps and the sliding window each act, the caches each layer gets, the
/// checks on `config.json`, and that a saved model loads back to the same logits.
final class GptOssTests: XCTestCase {
    private var reference: OracleReference { get throws { try OracleReference.load("gpt_oss") } }

    private func logits(_ directory: URL) throws -> [Float] {
        let model = try ModelRegistry.load(directory: directory)
        return try model.forward(reference.inputIds, cache: model.makeCache()).floats
    }

    private func expectedLogits() throws -> [Float] { try reference.logits.flatMap { $0.map(Float.init) } }

    func testTheSinksTheClampsAndTheWindowEachChangeTheLogits() throws {
        let edits: [(String, (inout [String: Any]) -> Void, (inout [(name: String, tensor: Tensor)]) -> Void)] = [
            (
                "sinks", { _ in },
                { tensors in
                    // exp(−1e4) is 0: no sink at all.
                    tensors = tensors.map {
                        $0.name.hasSuffix("sinks") ? ($0.name, Tensor(shape: [4], values: [Float](repeating: -1e4, count: 4))) : $0
                    }
                }
            ),
            ("swiglu_limit", { $0["swiglu_limit"] = 7.0 }, { _ in }),
            ("sliding_window", { $0["sliding_window"] = 64 }, { _ in })
        ]
        let expected = try expectedLogits()
        for (label, editConfig, editTensors) in edits {
            let directory = try FixtureDirectory.make(from: .gptOss, editConfig: editConfig, editTensors: editTensors)
            defer { try? FileManager.default.removeItem(at: directory) }
            XCTAssertGreaterThan(maxAbsoluteDifference(try logits(directory), expected), 1e-2, label)
        }
    }

    func testSlidingLayersGetAWindowedCacheAndFullLayersAWholeOne() throws {
        let model = try OracleCase.gptOss.load(), cache = model.makeCache()
        _ = try model.forward(try reference.inputIds, cache: cache)
        XCTAssertTrue(cache.layers[0] is SlidingWindowKVCache)
        XCTAssertTrue(cache.layers[1] is StandardKVCache)
        XCTAssertEqual(model.summary.expertsPerLayer, [4, 4])
    }

    func testASavedModelLoadsBackToTheSameLogits() throws {
        let model = try ModelRegistry.load(directory: OracleCase.gptOss.directory)
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try model.save(to: directory)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try logits(directory), try expectedLogits()), 1e-4)
    }

    func testLayerTypesAndActivationSettingsAreCheckedWhereTheyEnter() throws {
        let cases: [([String: Any], String, Bool)] = [
            (["layer_types": ["sliding_attention"]], "layer_types", false),
            (["layer_types": ["sliding_attention", "chunked_attention"]], "layer_types", true),
            (["sliding_window": NSNull()], "sliding_window", false),
            (["sliding_window": 0], "sliding_window", false),
            (["swiglu_limit": 0], "swiglu_limit", false)
        ]
        for (edit, field, unsupported) in cases {
            let directory = try FixtureDirectory.make(from: .gptOss) { $0.merge(edit) { $1 } }
            defer { try? FileManager.default.removeItem(at: directory) }
            XCTAssertThrowsError(try ModelRegistry.load(directory: directory), "\(edit)") { error in
                switch error as? ModelError {
                case .unsupportedConfig(_, let named, _)? where unsupported: XCTAssertEqual(named, field)
                case .malformedConfig(_, let named, _)? where !unsupported: XCTAssertEqual(named, field)
                default: XCTFail("\(edit): \(error)")
                }
            }
        }
    }

    func testAFusedExpertTensorOfTheWrongShapeIsNamed() throws {
        let name = "model.layers.1.mlp.experts.gate_up_proj"
        let directory = try FixtureDirectory.make(
            from: .gptOss,
            editTensors: { tensors in
                tensors = tensors.map { $0.name == name ? ($0.name, $0.tensor.slice(0..<3).contiguous()) : $0 }
            })
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
            XCTAssertEqual(error as? ModelError, .shapeMismatch(tensor: name, expected: [4, 64, 64], found: [3, 64, 64]))
        }
    }
}
