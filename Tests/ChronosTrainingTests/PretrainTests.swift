import ChronosFormats
import ChronosModel
import ChronosTensor
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
        let model = ChronosConfiguration(
            hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8,
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

    func losses(_ run: PretrainRun, start: RunStart, stopAtCheckpoint: Int? = nil) throws -> [Int: Float] {
        var losses: [Int: Float] = [:]
        try run.run(start: start) { event in
            if case .step(let report, _, _) = event { losses[report.step] = report.parts["loss"] }
            if case .checkpoint(let step) = event, step == stopAtCheckpoint { throw Interrupted() }
        }
        return losses
    }

    func testAnInterruptedAndResumedRunFollowsTheSameLossCurve() throws {
        let whole = try losses(PretrainRun(settings: makeSettings(output: Fixtures.temporaryDirectory())), start: .new)
        XCTAssertEqual(whole.keys.sorted(), Array(1...6))
        XCTAssertLessThan(whole[6]!, whole[1]!, "the loss goes down")

        let output = try Fixtures.temporaryDirectory()
        let settings = try makeSettings(output: output)
        XCTAssertThrowsError(try losses(PretrainRun(settings: settings), start: .new, stopAtCheckpoint: 3))
        let resumed = try losses(PretrainRun(settings: settings), start: .resume)
        XCTAssertEqual(resumed.keys.sorted(), [4, 5, 6])
        for step in 4...6 { XCTAssertEqual(resumed[step], whole[step], "step \(step)") }
        let chart = try String(contentsOf: output.appendingPathComponent("loss.svg"), encoding: .utf8)
        XCTAssertTrue(
            chart.contains(">training loss</text>") && chart.contains(">held-out cross-entropy</text>"), "the curve beside the log")
        // The run directory holds a loadable model in the Hugging Face layout.
        let model = try ModelRegistry.load(directory: output)
        XCTAssertEqual(model.summary.modelType, "chronos")
    }

    func testARunNeverDestroysEarlierWorkAndResumesFromTheNewestValidSnapshot() throws {
        let output = try Fixtures.temporaryDirectory()
        let settings = try makeSettings(output: output)
        let whole = try losses(PretrainRun(settings: settings), start: .new)
        let checkpoints = output.appendingPathComponent("checkpoints")
        func snapshots() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.sorted()
        }
        XCTAssertEqual(try snapshots(), ["step-0000003", "step-0000006"])

        // A new run into it is refused, and the earlier run is untouched.
        XCTAssertThrowsError(try losses(PretrainRun(settings: settings), start: .new)) { error in
            XCTAssertTrue("\(error)".contains("--resume") && "\(error)".contains("--overwrite"), "\(error)")
        }
        XCTAssertEqual(try snapshots(), ["step-0000003", "step-0000006"])

        // `latest` gone, pointing out of the run, and the newest snapshot truncated: the resume
        // continues from step 3 on the same curve; the temporary files of killed writes go.
        try FileManager.default.removeItem(at: checkpoints.appendingPathComponent("latest"))
        try FileManager.default.createSymbolicLink(
            at: checkpoints.appendingPathComponent("latest"),
            withDestinationURL: URL(fileURLWithPath: "/etc"))
        let state = checkpoints.appendingPathComponent("step-0000006/\(Checkpoint.stateFileName)")
        let handle = try FileHandle(forWritingTo: state)
        try handle.truncate(atOffset: 100)
        try handle.close()
        let stale = [
            output.appendingPathComponent(".config.json.\(UUID().uuidString).tmp"),
            checkpoints.appendingPathComponent(".step-0000009.\(UUID().uuidString).tmp")
        ]
        for url in stale { try Data("partial".utf8).write(to: url) }
        let resumed = try losses(PretrainRun(settings: settings), start: .resume)
        XCTAssertEqual(resumed.keys.sorted(), [4, 5, 6])
        for step in 4...6 { XCTAssertEqual(resumed[step], whole[step], "step \(step)") }
        let chart = try String(contentsOf: output.appendingPathComponent("loss.svg"), encoding: .utf8)
        XCTAssertTrue(
            chart.contains(">training loss</text>") && chart.contains(">held-out cross-entropy</text>"), "the curve beside the log")
        for url in stale { XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), url.lastPathComponent) }

        // Overwriting starts again from step 1; resuming a directory without snapshots is refused.
        XCTAssertEqual(try losses(PretrainRun(settings: settings), start: .overwrite).keys.sorted(), Array(1...6))
        let empty = try makeSettings(output: Fixtures.temporaryDirectory())
        XCTAssertThrowsError(try losses(PretrainRun(settings: empty), start: .resume)) { error in
            XCTAssertTrue("\(error)".contains("no snapshot to resume from"), "\(error)")
        }

        // An output path that cannot be a directory is named with the operating system's reason.
        let file = output.appendingPathComponent("config.json")
        XCTAssertThrowsError(try Checkpoint.prepare(runDirectory: file, start: .new)) { error in
            XCTAssertTrue("\(error)".contains(file.path) && "\(error)".contains("File exists") && "\(error)".contains("--out"), "\(error)")
        }
    }

    func testAResumePublishesItsSnapshotOverAModelLeftHalfCopied() throws {
        let output = try Fixtures.temporaryDirectory()
        let settings = try makeSettings(output: output)
        _ = try losses(PretrainRun(settings: settings), start: .new)
        // A kill while the last snapshot was copied to the top leaves older or partial files there.
        let top = output.appendingPathComponent("model.safetensors")
        let snapshot = output.appendingPathComponent("checkpoints/step-0000006/model.safetensors")
        try Data("partial".utf8).write(to: top)
        XCTAssertEqual(try losses(PretrainRun(settings: settings), start: .resume), [:], "nothing is left to train")
        XCTAssertEqual(try Data(contentsOf: top), try Data(contentsOf: snapshot))
    }

    func testSettingsOutOfRangeAreRefusedByName() throws {
        var settings = try makeSettings(output: Fixtures.temporaryDirectory())
        settings.sequenceLength = 0
        XCTAssertThrowsError(try PretrainRun(settings: settings)) { XCTAssertEqual(($0 as? InvalidSetting)?.name, "seq_len") }
        settings.sequenceLength = 12
        settings.optimization.learningRate = .nan
        XCTAssertThrowsError(try PretrainRun(settings: settings)) { XCTAssertEqual(($0 as? InvalidSetting)?.name, "learning_rate") }
        settings.optimization.learningRate = 1e-3
        settings.model.hiddenSize = 1 << 17
        settings.model.moeIntermediateSize = 1 << 17
        XCTAssertThrowsError(try PretrainRun(settings: settings)) { XCTAssertEqual(($0 as? InvalidSetting)?.name, "model size") }
    }
}
