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

    func testMXFP4ExpertsStayInTheirBlocksAndMatchTheDequantisedModel() throws {
        let directory = Fixtures.url("hf-tiny/gpt_oss_mxfp4"), reference = try OracleReference.load("gpt_oss_mxfp4")
        let expected = reference.logits.flatMap { $0.map(Float.init) }
        let model = try ModelRegistry.load(directory: directory)
        var widened: [ExpertKey: ExpertWeights] = [:]
        for layer in 0..<2 {
            for expert in 0..<4 {
                let key = ExpertKey(layer: layer, expert: expert), weights = try XCTUnwrap(model.experts.weights(for: key))
                XCTAssertEqual([weights.gate.dtype, weights.up.dtype, weights.down.dtype], [.mxfp4, .mxfp4, .mxfp4])
                XCTAssertEqual([weights.gate.shape, weights.down.shape], [[32, 64], [64, 32]])
                widened[key] = ExpertWeights(
                    gate: weights.gate.converted(to: .f32), up: weights.up.converted(to: .f32), down: weights.down.converted(to: .f32))
            }
        }
        // Widened to f32, the blocks are the weights transformers computed the reference with.
        let exact = try ModelRegistry.load(directory: directory, experts: ResidentExperts(widened))
        let exactCache = exact.makeCache(), log = ForwardLog()
        exactCache.observer = log
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try exact.forward(reference.inputIds, cache: exactCache).floats, expected), 1e-4)
        XCTAssertEqual(log.decisions.map(\.experts), try XCTUnwrap(reference.routerTopK).flatMap { $0 })
        // Read in their blocks, the kernels quantise each 32 activations to 8 bits (as llama.cpp
        // does for MXFP4): the prompt through the batched kernel, then decoding through the
        // matrix-vector kernel, both within 5e-2 of the exact logits (whose largest is 4.4); a
        // misread block (nibble order, scale) is off by whole units.
        let cache = model.makeCache()
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try model.forward(reference.inputIds, cache: cache).floats, expected), 5e-2)
        let step = try model.forward([reference.greedy[0]], cache: cache).floats
        let exactStep = try exact.forward([reference.greedy[0]], cache: exactCache).floats
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(step, exactStep), 5e-2)
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
