import ChronosModel
import ChronosTensor
import XCTest

/// The whole tiny Chronos model's gradient against central finite differences, parameter
/// tensor by parameter tensor.
final class ChronosGradientTests: XCTestCase {
    /// Cross-entropy plus a lookahead term against the mean router distribution and a router
    /// term (squared probabilities and their change from token to token), all differentiable.
    private func loss(_ output: ForwardOutput, targets: [Int], steps: Int) -> Tensor {
        let tokens = targets.count
        var total = Tensor.crossEntropy(logits: output.logits, targets: targets)
        let target = output.meanRouterProbabilities
        for k in 0...steps where k < tokens {
            let logQ = output.lookahead!.logProbabilities(offset: k).slice(0..<(tokens - k))
            let term = (target.slice(k..<tokens) * logQ).sum().scaled(by: -0.5 / Float((steps + 1) * (tokens - k)))
            total = total + term
        }
        for layer in output.layers {
            let p = layer.routerProbabilities
            let temporal = (p.slice(1..<tokens) - p.slice(0..<(tokens - 1))).squared().sum()
            total = total + p.squared().mean().scaled(by: 2) + temporal.scaled(by: 0.1)
        }
        return total
    }

    func testTheRouterLearnsFromTheLanguageModelLossThroughTheCombineWeights() throws {
        let configuration = TinyChronos.configuration([.sliding], window: 4)
        let leaves = try TinyChronos.weights(configuration, seed: 9, scale: 10).mapValues { $0.copy().requiringGradient() }
        let model = try TransformerLanguageModel(configuration: configuration, weights: leaves)
        let sequence = TinyChronos.ids(8), inputs = Array(sequence.dropLast()), targets = Array(sequence.dropFirst())
        func crossEntropy() throws -> Tensor {
            Tensor.crossEntropy(logits: try model.forward(inputs, cache: model.makeCache()), targets: targets)
        }
        try Autograd.recording { Autograd.backward(try crossEntropy()) }
        let router = leaves[ChronosWeightNames.router(layer: 0)]!
        let analytic = try XCTUnwrap(router.gradient).floats
        let step: Float = 1e-2
        for i in analytic.indices where i % 5 == 0 {
            let original = router.floatPointer[i]
            router.floatPointer[i] = original + step
            let plus = try crossEntropy().floats[0]
            router.floatPointer[i] = original - step
            let minus = try crossEntropy().floats[0]
            router.floatPointer[i] = original
            let numeric = (plus - minus) / (2 * step)
            XCTAssertEqual(analytic[i], numeric, accuracy: 3e-2 * abs(numeric) + 1e-3, "∂CE/∂router[\(i)]")
        }
        XCTAssertGreaterThan(analytic.map(abs).max()!, 1e-3)
    }

    func testEveryParameterGradientMatchesFiniteDifferences() throws {
        let configuration = TinyChronos.configuration([.mla, .sliding], window: 3)
        let leaves = try TinyChronos.weights(configuration, seed: 5, scale: 10).mapValues { $0.copy().requiringGradient() }
        let model = try TransformerLanguageModel(configuration: configuration, weights: leaves)
        let sequence = TinyChronos.ids(13)
        let inputs = Array(sequence.dropLast()), targets = Array(sequence.dropFirst())
        // Exercise the soft fallback too: a partly available expert and seeded slot dropping.
        let options = ForwardOptions(
            recordsRouting: true, predictsLookahead: true, availability: [ExpertKey(layer: 0, expert: 1): 0.5],
            fallbackMaskProbability: 0.25, fallbackMaskSeed: 4)
        func evaluate() throws -> (loss: Float, selection: [[[Int]]]) {
            let output = try model.forward(inputs, cache: model.makeCache(), options: options)
            return (loss(output, targets: targets, steps: configuration.lookaheadSteps).floats[0], output.layers.map(\.selectedExperts))
        }

        try Autograd.recording {
            let output = try model.forward(inputs, cache: model.makeCache(), options: options)
            XCTAssertTrue(output.layers.contains { $0.availability.joined().contains(0) }, "some slot should be dropped")
            Autograd.backward(loss(output, targets: targets, steps: configuration.lookaheadSteps))
        }
        let base = try Autograd.recording(false) { try evaluate() }

        let step: Float = 1e-2
        var generator = SplitMix64(seed: 17)
        var checked = 0, skipped = 0, worst: Float = 0
        let parameters = model.namedParameters()
        XCTAssertEqual(parameters.count, leaves.count)
        for (name, tensor) in parameters {
            let analytic = tensor.gradient?.floats ?? [Float](repeating: 0, count: tensor.count)
            XCTAssertNotNil(tensor.gradient, "no gradient reached \(name)")
            XCTAssertTrue(analytic.contains { $0 != 0 }, "the gradient of \(name) is zero")
            let largest = analytic.indices.max { abs(analytic[$0]) < abs(analytic[$1]) }!
            let indices = [largest] + (0..<2).map { _ in Int(generator.next() % UInt64(tensor.count)) }
            var checkedHere = 0
            for i in indices {
                let original = tensor.floatPointer[i]
                tensor.floatPointer[i] = original + step
                let plus = try Autograd.recording(false) { try evaluate() }
                tensor.floatPointer[i] = original - step
                let minus = try Autograd.recording(false) { try evaluate() }
                tensor.floatPointer[i] = original
                // A perturbation that changes some token's top-k is not differentiable there.
                guard plus.selection == base.selection, minus.selection == base.selection else {
                    skipped += 1
                    continue
                }
                let numeric = (plus.loss - minus.loss) / (2 * step)
                let error = abs(analytic[i] - numeric)
                worst = max(worst, error / max(abs(numeric), 0.05))
                XCTAssertLessThanOrEqual(
                    error, 3e-2 * max(abs(numeric), abs(analytic[i])) + 1e-3,
                    "∂L/∂\(name)[\(i)] = \(analytic[i]), finite difference \(numeric)")
                checked += 1
                checkedHere += 1
            }
            XCTAssertGreaterThan(checkedHere, 0, "no element of \(name) could be checked")
        }
        print(
            "checked \(checked) elements of \(parameters.count) tensors (\(skipped) skipped for a top-k change); worst relative error \(worst)"
        )
    }
}
