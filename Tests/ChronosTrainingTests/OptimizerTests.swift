import ChronosModel
import ChronosTensor
import XCTest

@testable import ChronosTraining

final class OptimizerTests: XCTestCase {
    /// A Chronos model small enough to train a step in a test.
    private static let tinyConfiguration = ChronosConfiguration(
        vocabSize: 40, hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1,
        headDim: 8, kvLatentDim: 8, ropeDim: 4, slidingWindow: 8, experts: 4,
        expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 16,
        sharedExpertIntermediateSize: 16, lookaheadSteps: 2)

    func testAdamWMatchesTheFormulaByHand() {
        let w = Tensor(shape: [2], values: [1, -2]).requiringGradient()
        let bias = Tensor(shape: [1], values: [0.5]).requiringGradient()
        let params = [("layer.weight", w), ("layer.bias", bias)]
        var settings = AdamW.Settings()
        settings.weightDecay = 0.1
        let optimizer = AdamW(settings: settings)
        var expected: [Float] = [1, -2], m: [Float] = [0, 0], v: [Float] = [0, 0]
        for step in 1...3 {
            for (_, p) in params { p.zeroGradient() }
            Autograd.recording { Autograd.backward(((w * w).sum() + bias.scaled(by: 3).sum())) }
            let g = expected.map { 2 * $0 }
            optimizer.update(params, learningRate: 0.01)
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.95 * v[i] + 0.05 * g[i] * g[i]
                let mHat = m[i] / (1 - pow(0.9, Float(step))), vHat = v[i] / (1 - pow(0.95, Float(step)))
                expected[i] -= 0.01 * (mHat / (vHat.squareRoot() + 1e-8) + 0.1 * expected[i])
            }
            XCTAssertEqual(w.floats[0], expected[0], accuracy: 1e-6)
            XCTAssertEqual(w.floats[1], expected[1], accuracy: 1e-6)
        }
        // A bias gets no decay: a constant gradient of 3 moves it by exactly lr per step.
        XCTAssertEqual(bias.floats[0], 0.5 - 0.03, accuracy: 1e-5)
        XCTAssertFalse(AdamW.decays("model.embed_tokens.weight"))
        XCTAssertFalse(AdamW.decays("model.layers.0.input_layernorm.weight"))
        XCTAssertTrue(AdamW.decays("model.layers.0.self_attn.q_proj.weight"))
    }

    func testScheduleWarmsUpThenDecaysToTheFloor() {
        let schedule = LearningRateSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(schedule.rate(at: 0), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(schedule.rate(at: 9), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(schedule.rate(at: 10), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(schedule.rate(at: 60), 0.55e-3, accuracy: 1e-8, "halfway: floor + half the span")
        XCTAssertEqual(schedule.rate(at: 110), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(schedule.rate(at: 500), 1e-4, accuracy: 1e-9)
    }

    func testClippingScalesToTheGlobalNorm() {
        let a = Tensor(shape: [2], values: [0, 0]).requiringGradient(), b = Tensor(shape: [1], values: [0]).requiringGradient()
        Autograd.recording {
            Autograd.backward((a * Tensor(shape: [2], values: [3, 0])).sum() + (b * Tensor(shape: [1], values: [4])).sum())
        }
        let norm = GradientClipping.clip([("a", a), ("b", b)], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(a.gradient!.floats[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(b.gradient!.floats[0], 0.8, accuracy: 1e-6)
    }

    /// A resumed run's reference routers come from its snapshot; one missing or of another shape
    /// is an error naming it, not a trap at the first step.
    func testReferenceRoutersThatDoNotFitTheModelAreRefused() throws {
        let configuration = Self.tinyConfiguration
        let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 3)
        let routers = ChronosTrainer.referenceRouters(
            fromFrozen: try ChronosTrainer(
                configuration: configuration, weights: weights, settings: OptimizationSettings()
            ).frozenTensors)
        XCTAssertNoThrow(
            try ChronosTrainer(
                configuration: configuration, weights: weights, settings: OptimizationSettings(),
                referenceRouters: routers))
        var missing = routers
        missing[1] = nil
        XCTAssertThrowsError(
            try ChronosTrainer(
                configuration: configuration, weights: weights, settings: OptimizationSettings(),
                referenceRouters: missing)
        ) { error in
            XCTAssertTrue("\(error)".contains("frozen.router.1"), "\(error)")
        }
        var narrow = routers
        narrow[0] = Tensor(zeros: [4, 8])
        XCTAssertThrowsError(
            try ChronosTrainer(
                configuration: configuration, weights: weights, settings: OptimizationSettings(),
                referenceRouters: narrow)
        ) { error in
            XCTAssertTrue("\(error)".contains("frozen.router.0"), "\(error)")
        }
    }

    /// A step's sequences are spread over one model replica per compute thread; the gradient
    /// the optimiser sees must still be the mean of every sequence's, as one model computes it.
    func testAStepSpreadOverReplicasCarriesTheGradientOfEverySequence() throws {
        let configuration = Self.tinyConfiguration
        let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 3)
        var settings = OptimizationSettings()
        settings.fallbackMaskProbability = 0
        settings.clipNorm = 0
        let trainer = try ChronosTrainer(configuration: configuration, weights: weights, settings: settings)
        let sequences = (0..<5).map { s in (0..<10).map { (s * 7 + $0 * 5 + $0 * $0) % 40 } }
        func loss(_ model: TransformerLanguageModel, _ ids: [Int]) throws -> Tensor {
            let output = try model.forward(Array(ids.dropLast()), cache: model.makeCache(), options: .recordingAll)
            return Tensor.crossEntropy(logits: output.logits, targets: Array(ids.dropFirst())) + trainer.chronosTerms(output).weighted
        }
        let single = try TransformerLanguageModel(
            configuration: configuration,
            weights: weights.mapValues { $0.converted(to: .f32).copy().requiringGradient() })
        for ids in sequences {
            try Autograd.recording { Autograd.backward(try loss(single, ids).scaled(by: 1 / Float(sequences.count))) }
        }
        _ = try trainer.trainStep(sequences) { pass, ids in
            SequenceLoss(total: try loss(pass.model, ids), parts: [:], tokens: ids.count - 1)
        }
        let expected = Dictionary(uniqueKeysWithValues: single.namedParameters().map { ($0.name, $0.tensor) })
        for (name, parameter) in trainer.parameters {
            let got = try XCTUnwrap(parameter.gradient, name).floats, want = try XCTUnwrap(expected[name]?.gradient, name).floats
            let scale = max(want.map(abs).max() ?? 0, 1e-6)
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-4 * scale, name) }
        }
    }
}
