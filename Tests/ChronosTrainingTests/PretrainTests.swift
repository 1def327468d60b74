import ChronosFormats
import ChronosModel
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class PretrainTests: XCTestCase {
    struct Interrupted: Error {}

    /// A tiny corpus, tokenizer and model so a run takes a second in a debug build.
    func makeSettings(output: URL) throws -> PretrainSettings {
        let dir = try Fixtures.temporaryDirectory()
        let lines = (0..<60).map { i in
            "{\"text\": \"It is a truth universally acknowledged, number \(i), that a single man in possession of a good fortune must be in want of a wife.\"}"
        }
        let data = dir.appendingPathComponent("train.jsonl")
        try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        var trainer = TokenizerTrainer(vocabularySize: 300)
        trainer.add(contentsOf: lines)
        let tokenizer = try trainer.train()
        try tokenizer.write(to: dir.appendingPathComponent("tokenizer.json"))
        try TokenizerConfig.chronosChat.write(to: dir.appendingPathComponent("tokenizer_config.json"), addedTokens: tokenizer.addedTokens)
        let model = ChronosConfiguration(hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8,
                                         kvLatentDim: 8, ropeDim: 4, slidingWindow: 8, experts: 4, expertsPerToken: 2,
                                         sharedExperts: 1, moeIntermediateSize: 16, sharedExpertIntermediateSize: 16, lookaheadSteps: 2)
        var optimization = OptimizationSettings()
        optimization.steps = 6
        optimization.batchSize = 2
        optimization.warmupSteps = 2
        optimization.lambdas.routerKL = 0.1
        var settings = PretrainSettings(model: model, optimization: optimization, data: data, heldOut: nil, tokenizer: dir, output: output)
        settings.sequenceLength = 12
        settings.evaluateEvery = 3
        settings.evaluationSequences = 2
        settings.checkpointEvery = 3
        return settings
    }

    func losses(_ run: PretrainRun, resume: Bool, stopAtCheckpoint: Int? = nil) throws -> [Int: Float] {
        var losses: [Int: Float] = [:]
        try run.run(resume: resume) { event in
            if case let .step(report, _, _) = event { losses[report.step] = report.parts["loss"] }
            if case let .checkpoint(step) = event, step == stopAtCheckpoint { throw Interrupted() }
        }
        return losses
    }

    func testAnInterruptedAndResumedRunFollowsTheSameLossCurve() throws {
        let whole = try losses(PretrainRun(settings: makeSettings(output: Fixtures.temporaryDirectory())), resume: false)
        XCTAssertEqual(whole.keys.sorted(), Array(1...6))
        XCTAssertLessThan(whole[6]!, whole[1]!, "the loss goes down")

        let output = try Fixtures.temporaryDirectory()
        let settings = try makeSettings(output: output)
        XCTAssertThrowsError(try losses(PretrainRun(settings: settings), resume: false, stopAtCheckpoint: 3))
        let resumed = try losses(PretrainRun(settings: settings), resume: true)
        XCTAssertEqual(resumed.keys.sorted(), [4, 5, 6])
        for step in 4...6 { XCTAssertEqual(resumed[step], whole[step], "step \(step)") }
        // The run directory holds a loadable model in the Hugging Face layout.
        let model = try ModelRegistry.load(directory: output)
        XCTAssertEqual(model.summary.modelType, "chronos")
    }
}
