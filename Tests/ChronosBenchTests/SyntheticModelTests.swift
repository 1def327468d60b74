import ChronosBench
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import XCTest

/// The synthetic models load as the architecture they claim, with the bytes one token reads.
final class SyntheticModelTests: XCTestCase {
    func testTinyMixtralLoadsAndReadsDenseWeightsPlusTopKExperts() throws {
        var shape = SyntheticModel.MixtralShape()
        (shape.vocab, shape.hidden, shape.layers, shape.heads, shape.kvHeads) = (16, 8, 1, 2, 1)
        (shape.experts, shape.topK, shape.expertWidth, shape.dtype) = (4, 2, 4, .f32)
        let directory = try Fixtures.temporaryDirectory()
        try SyntheticModel.writeMixtral(shape, to: directory)
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
}
