import ChronosModel
import ChronosTensor
import Foundation
import XCTest

@testable import ChronosTraining

final class ParameterMatchTests: XCTestCase {
    /// A tiny Chronos model: 2 layers of 4 routed experts 16 wide, one shared expert 24 wide, a
    /// lookahead head of 2 steps.
    let chronos = ChronosConfiguration(
        vocabSize: 300, hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8, kvLatentDim: 8,
        ropeDim: 4, slidingWindow: 8, experts: 4, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 16,
        sharedExpertIntermediateSize: 24, lookaheadSteps: 2)

    /// The counts are those of the weights a model of the configuration is built with.
    func testCountsAreTheInitialisedWeights() throws {
        for configuration in [chronos, try ParameterMatch(chronos: chronos, matching: .width, tolerance: 0.05).conventional] {
            let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 0)
            XCTAssertEqual(try ParameterMatch.parameters(configuration), weights.values.reduce(0) { $0 + $1.count })
        }
    }

    /// Widening: the same experts, no shared expert or lookahead head, and the width whose count
    /// is nearest the Chronos model's (one unit of width is 2 layers × 4 experts × 3 × 16 = 384
    /// parameters, so the nearest is within 192).
    func testWidthMatchingKeepsTheExpertsAndLandsNearest() throws {
        let match = try ParameterMatch(chronos: chronos, matching: .width, tolerance: 0.05)
        XCTAssertEqual(match.conventional.sharedExperts, 0)
        XCTAssertEqual(match.conventional.lookaheadSteps, 0)
        XCTAssertEqual(match.conventional.experts, 4)
        XCTAssertGreaterThan(match.conventional.moeIntermediateSize, 16)
        XCTAssertLessThanOrEqual(abs(match.conventionalParameters - match.chronosParameters), 192)
        XCTAssertEqual(match.conventionalParameters, try ParameterMatch.parameters(match.conventional))
        XCTAssertLessThanOrEqual(abs(match.relativeDifference), 0.05)
    }

    /// Adding experts: the same width, more experts, within the tolerance.
    func testExpertMatchingKeepsTheWidth() throws {
        let match = try ParameterMatch(chronos: chronos, matching: .experts, tolerance: 0.05)
        XCTAssertEqual(match.conventional.moeIntermediateSize, 16)
        XCTAssertGreaterThan(match.conventional.experts, 4)
        XCTAssertLessThanOrEqual(abs(match.relativeDifference), 0.05)
    }

    /// A tolerance no resized model meets, or one outside 0–0.5, is refused under its name.
    func testToleranceIsChecked() {
        XCTAssertThrowsError(try ParameterMatch(chronos: chronos, matching: .experts, tolerance: 0)) { error in
            XCTAssertEqual((error as? InvalidSetting)?.name, "param_tolerance")
        }
        XCTAssertThrowsError(try ParameterMatch(chronos: chronos, matching: .width, tolerance: 0.9)) { error in
            XCTAssertEqual((error as? InvalidSetting)?.name, "param_tolerance")
            XCTAssertEqual((error as? InvalidSetting)?.value, "0.9")
        }
    }

    func testAChronosModelWithoutSharedExpertsIsRefused() {
        var plain = chronos
        plain.sharedExperts = 0
        XCTAssertThrowsError(try ParameterMatch(chronos: plain, matching: .width, tolerance: 0.05)) { error in
            XCTAssertEqual((error as? InvalidSetting)?.name, "num_shared_experts")
        }
    }

    /// The conventional run keeps data, steps, seed, schedule and λ_bal, and drops every other
    /// Chronos term and the fallback masking.
    func testConventionalSettingsKeepOnlyTheBalanceLoss() throws {
        let match = try ParameterMatch(chronos: chronos, matching: .width, tolerance: 0.05)
        var settings = PretrainSettings(
            model: chronos, optimization: OptimizationSettings(), data: URL(fileURLWithPath: "/data.jsonl"), heldOut: nil,
            tokenizer: URL(fileURLWithPath: "/tokenizer"), output: URL(fileURLWithPath: "/runs/chronos"))
        settings.optimization.steps = 123
        settings.optimization.seed = 7
        settings.optimization.lambdas = ChronosLossWeights(balance: 0.02, temporal: 0.03, lookahead: 0.2, routerKL: 0.01)
        let conventional = match.conventionalSettings(settings, output: URL(fileURLWithPath: "/runs/conventional"))
        XCTAssertEqual(conventional.optimization.lambdas, ChronosLossWeights(balance: 0.02, temporal: 0, lookahead: 0, routerKL: 0))
        XCTAssertEqual(conventional.optimization.fallbackMaskProbability, 0)
        XCTAssertEqual(conventional.optimization.steps, 123)
        XCTAssertEqual(conventional.optimization.seed, 7)
        XCTAssertEqual(conventional.data, settings.data)
        XCTAssertEqual(conventional.model, match.conventional)
        XCTAssertEqual(conventional.output.path, "/runs/conventional")
    }
}
