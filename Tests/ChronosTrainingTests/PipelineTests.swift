import ChronosModel
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class PipelineTests: XCTestCase {
    struct Interrupted: Error {}

    /// A six-stage configuration over the fixture's data, a few steps per stage.
    func configuration(_ fixture: FineTuneFixture) throws -> URL {
        let text = (0..<40).map { i in
            let item = FineTuneFixture.items[i % FineTuneFixture.items.count]
            return try! String(
                decoding: JSONSerialization.data(withJSONObject: [
                    "text": "\(FineTuneFixture.question(item.word)) "
                        + FineTuneFixture.answer(item.word, item.pos, item.definition)
                ]), as: UTF8.self)
        }
        try text.joined(separator: "\n").write(to: fixture.url("text.jsonl"), atomically: true, encoding: .utf8)
        try text.prefix(8).joined(separator: "\n").write(to: fixture.url("text_heldout.jsonl"), atomically: true, encoding: .utf8)
        let model = try JSONSerialization.jsonObject(with: JSONEncoder().encode(FineTuneFixture.model))
        let config: [String: Any] = [
            "output": "runs", "tokenizer": "base", "model": model,
            "defaults": [
                "steps": 2, "batch_size": 2, "warmup_steps": 1, "learning_rate": 3e-3, "eval_every": 1, "checkpoint_every": 1,
                "eval_examples": 2, "generation_examples": 2, "max_new_tokens": 4, "eval_sequences": 2
            ],
            "stages": [
                ["stage": "pretrain", "data": "text.jsonl", "heldout": "text_heldout.jsonl", "seq_len": 12],
                ["stage": "sft", "data": "sft.jsonl", "eval_prompts": "grpo.jsonl"],
                ["stage": "dpo", "data": "dpo.jsonl", "beta": 0.2],
                ["stage": "orpo", "data": "dpo.jsonl"],
                ["stage": "grpo", "data": "grpo.jsonl", "group_size": 2, "reward": "definition-f1"],
                ["stage": "distill", "data": "sft.jsonl", "teacher": "sft", "steps": 1]
            ]
        ]
        let url = fixture.url("pipeline.json")
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: url)
        return url
    }

    func testAnInterruptedPipelineContinuesWhereItStoppedAndReports() throws {
        let fixture = try FineTuneFixture()
        let configuration = try PipelineConfiguration(contentsOf: configuration(fixture))
        XCTAssertEqual(configuration.stages.map(\.stage), TrainingStage.allCases)
        XCTAssertEqual(configuration.output, fixture.url("runs"))
        guard case .dpo(let dpo) = configuration.stages[2].objective else { return XCTFail("stage 3 is DPO") }
        XCTAssertEqual(dpo.beta, 0.2)
        XCTAssertEqual(configuration.stages[2].optimization.lambdas.routerKL, 0.1, "the stage's default anchor")
        XCTAssertEqual(configuration.stages[1].optimization.lambdas.routerKL, 0.01)
        guard case .distill(let distill) = configuration.stages[5].objective else { return XCTFail("stage 6 distils") }
        XCTAssertEqual(distill.teacher, configuration.directory(of: .sft))
        let elsewhere = fixture.url("elsewhere")
        guard case .distill(let relocated) = configuration.stages(relocatedTo: elsewhere)[5].objective else {
            return XCTFail("stage 6 still distils")
        }
        XCTAssertEqual(relocated.teacher, elsewhere.appendingPathComponent("2-sft"), "a teacher named by its stage moves with the run")

        // The first run stops at DPO's first snapshot.
        var started: [TrainingStage] = []
        XCTAssertThrowsError(
            try PipelineRun(configuration: configuration).run { event in
                if case .stageStarted(let stage, _) = event { started.append(stage) }
                if case .stage(.checkpoint(1)) = event, started.last == .dpo { throw Interrupted() }
            })
        XCTAssertEqual(started, [.pretrain, .sft, .dpo])
        XCTAssertFalse(try PipelineReport.read(configuration).complete)

        // The second skips the finished stages and resumes DPO at step 1.
        var events: [String] = []
        let report = try PipelineRun(configuration: configuration).run { event in
            switch event {
            case .stageSkipped(let result): events.append("skip \(result.stage.rawValue)")
            case .stageStarted(let stage, let resuming): events.append("\(resuming ? "resume" : "start") \(stage.rawValue)")
            case .stage(.started(_, _, _, _, let resumedAt)) where resumedAt > 0: events.append("at \(resumedAt)")
            default: break
            }
        }
        XCTAssertEqual(events, ["skip pretrain", "skip sft", "resume dpo", "at 1", "start orpo", "start grpo", "start distill"])
        XCTAssertTrue(report.complete)
        XCTAssertEqual(report.stages.map(\.stage), TrainingStage.allCases)
        XCTAssertEqual(report.stages.map(\.steps), [2, 2, 2, 2, 2, 1])
        XCTAssertEqual(report.stages[2].evaluations.map(\.step), [0, 1, 2], "DPO's evaluations span both runs")
        XCTAssertNotNil(report.stages[0].final["heldout_ce"])
        XCTAssertNotNil(report.stages[1].final["definition_f1"])
        XCTAssertNotNil(report.stages[2].final["preference_accuracy"])
        XCTAssertNotNil(report.stages[4].final["mean_reward"])
        for result in report.stages { XCTAssertNotNil(result.final["router_kl_drift"], result.stage.rawValue) }
        XCTAssertEqual(try PipelineReport.read(configuration), report)
        let markdown = try String(contentsOf: fixture.url("runs/report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("| 3. dpo | 2 |"), markdown)
        XCTAssertTrue(markdown.contains("## 5. grpo"))
        // Each stage's directory is a loadable checkpoint, and a third run has nothing left to do.
        for stage in TrainingStage.allCases { XCTAssertNoThrow(try ModelRegistry.load(directory: configuration.directory(of: stage))) }
        var again: [String] = []
        try PipelineRun(configuration: configuration).run { if case .stageSkipped(let result) = $0 { again.append(result.stage.rawValue) } }
        XCTAssertEqual(again, TrainingStage.allCases.map(\.rawValue))
    }

    func testConfigurationErrorsNameTheStageAndKey() throws {
        func error(_ json: String) -> String {
            do {
                _ = try PipelineConfiguration(json: Data(json.utf8), baseDirectory: URL(fileURLWithPath: "/tmp"), file: "p.json")
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(
            error(#"{"output": "o", "stages": [{"stage": "sft", "data": "d", "bta": 1}]}"#), "p.json: stage sft: unknown key \"bta\"")
        XCTAssertEqual(
            error(#"{"output": "o", "stages": [{"stage": "dpo", "data": "d"}, {"stage": "sft", "data": "d"}]}"#),
            "p.json: stage sft comes after dpo; stages run once each, in pipeline order")
        XCTAssertEqual(
            error(#"{"output": "o", "stages": [{"stage": "grpo", "data": "d", "reward": "vibes"}]}"#),
            "p.json: stage grpo: \"reward\" must be one of definition-f1, length-diversity, model-likelihood")
        XCTAssertEqual(
            error(#"{"output": "o", "stages": [{"stage": "distill", "data": "d", "teacher": "sft"}]}"#),
            "p.json: stage distill: teacher stage sft does not run before distill")
        XCTAssertEqual(
            error(#"{"output": "o", "defaults": {"stesp": 3}, "stages": [{"stage": "sft", "data": "d"}]}"#),
            "p.json: defaults: unknown key \"stesp\"")
        XCTAssertEqual(
            error(#"{"output": "o", "stages": [{"stage": "sft", "data": "d", "steps": "ten"}]}"#),
            "p.json: stage sft: \"steps\" is not a number")
        XCTAssertThrowsError(
            try PipelineRun(
                configuration: PipelineConfiguration(
                    json: Data(#"{"output": "/tmp/none", "stages": [{"stage": "sft", "data": "d"}]}"#.utf8),
                    baseDirectory: URL(fileURLWithPath: "/tmp"))
            ).run()
        ) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint to start from"), "\(error)")
        }
    }
}

extension PipelineReport {
    /// The report a configuration's run directory holds.
    static func read(_ configuration: PipelineConfiguration) throws -> PipelineReport {
        try JSONDecoder().decode(PipelineReport.self, from: Data(contentsOf: configuration.output.appendingPathComponent("report.json")))
    }
}

/// The pipeline configuration the repository ships reads and names files that exist.
final class ShippedPipelineConfigurationTests: XCTestCase {
    func testTheWordNetPipelineStartsFromTheShippedModelWithExistingData() throws {
        let root = Fixtures.shippedModel.deletingLastPathComponent().deletingLastPathComponent()
        let configuration = try PipelineConfiguration(contentsOf: root.appendingPathComponent("configs/wordnet-pipeline.json"))
        XCTAssertEqual(configuration.start?.standardizedFileURL, Fixtures.shippedModel.standardizedFileURL)
        XCTAssertEqual(configuration.stages.map(\.stage), [.sft, .dpo, .orpo, .grpo, .distill])
        for stage in configuration.stages {
            for url in [stage.data, stage.heldOut, stage.evaluationPrompts].compactMap({ $0 }) {
                XCTAssertTrue(FileManager.default.fileExists(atPath: url.path), "\(stage.stage): \(url.path)")
            }
        }
    }
}
