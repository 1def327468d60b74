import ChronosBench
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import XCTest

/// The synthetic models load as the architecture they claim, with the bytes one token reads.
final class SyntheticModelTests: XCTestCase {
    func testTinyMixtralLoadsAndReadsDenseWeightsPlusTopKExperts() throws {
        var config = SyntheticModel.Shape.mixtral.config
        for (key, value) in [
            "vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 4, "num_local_experts": 4, "intermediate_size": 4
        ] {
            config[key] = value
        }
        let directory = try Fixtures.temporaryDirectory()
        try SyntheticModel.write(config: config, dtype: .f32, to: directory)
        let model = try ModelRegistry.load(directory: directory)
        XCTAssertEqual(model.summary.modelType, "mixtral")
        XCTAssertEqual(model.summary.expertsPerLayer, [4])
        // f32, head dim 4. Dense: embedding 16·8 = 128, final norm 8, head 128, two norms 16,
        // q 8·8 = 64, k 4·8 = 32, v 32, o 64, router 4·8 = 32: 504 parameters, 2016 bytes.
        // Experts: 3 · 4·8 = 96 parameters each, 384 bytes. One token reads the dense weights
        // but the 15 embedding rows it does not use (480 bytes), plus 2 experts (768 bytes):
        // 2016 − 480 + 768 = 2304.
        XCTAssertEqual(model.parameterCounts.denseBytes, 2016)
        XCTAssertEqual(model.parameterCounts.expertBytes, 4 * 384)
        XCTAssertEqual(model.weightBytesPerToken, 2304)
    }

    func testEveryShapeDescribesAModelOfItsArchitecture() throws {
        for shape in SyntheticModel.Shape.allCases {
            let directory = try Fixtures.temporaryDirectory()
            try JSONSerialization.data(withJSONObject: shape.config).write(to: directory.appendingPathComponent("config.json"))
            let experts = try ModelRegistry.routedExpertShapes(directory: directory)
            XCTAssertEqual(experts.count, shape == .mixtral ? 8 * 8 : 7 * 64, "\(shape)")
        }
    }
}
