import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class FineTuneTests: XCTestCase {
    struct Interrupted: Error {}

    /// Runs a stage, collecting each step's logged values; throws `Interrupted` at a snapshot of `stopAt`.
    func steps(_ run: FineTuneRun, start: RunStart = .new, stopAt: Int? = nil) throws -> (
        parts: [Int: [String: Float]], result: StageResult
    ) {
        var parts: [Int: [String: Float]] = [:]
        let result = try run.run(start: start) { event in
            if case .step(let report, _) = event { parts[report.step] = report.parts }
            if case .checkpoint(let step) = event, step == stopAt { throw Interrupted() }
        }
        return (parts, result)
    }

    /// A Llama-architecture teacher in the Hugging Face layout: the tiny reference checkpoint
    /// with its vocabulary widened to `vocabulary` rows (new rows random).
    func llamaTeacher(vocabulary: Int) throws -> URL {
        let source = Fixtures.url("hf-tiny/llama_dense")
        let directory = try Fixtures.temporaryDirectory()
        let file = try SafetensorsFile(url: source.appendingPathComponent("model.safetensors"))
        var random = TestRandom(seed: 5)
        let tensors = try file.tensorNames.map { name -> (name: String, tensor: Tensor) in
            let tensor = try file.tensor(named: name)
            guard name.hasSuffix("embed_tokens.weight") || name == "lm_head.weight" else { return (name, tensor) }
            let width = tensor.shape[1]
            return (
                name,
                Tensor(shape: [vocabulary, width], values: tensor.floats + random.values((vocabulary - tensor.shape[0]) * width, -0.1, 0.1))
            )
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        var config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        config["vocab_size"] = vocabulary
        try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
        return directory
    }

    func testEveryStageTrainsEvaluatesAndSavesALoadableModel() throws {
        let fixture = try FineTuneFixture()
        var grpo = GRPOSettings()
        grpo.groupSize = 3
        let teacher = try llamaTeacher(vocabulary: fixture.tokenizer.vocabularySize)
        let stages: [(StageObjectiveSettings, String, [String])] = [
            (.sft, "sft.jsonl", ["heldout_ce", "definition_f1", "router_kl_drift"]),
            (
                .dpo(DPOSettings()), "dpo.jsonl",
                ["preference_accuracy", "likelihood_accuracy", "reward_margin", "heldout_dpo_loss", "router_kl_drift"]
            ),
            (
                .orpo(ORPOSettings()), "dpo.jsonl",
                ["preference_accuracy", "likelihood_accuracy", "heldout_orpo_loss", "heldout_nll", "router_kl_drift"]
            ),
            (.grpo(grpo), "grpo.jsonl", ["mean_reward", "definition_f1", "router_kl_drift"]),
            (
                .distill(DistillationSettings(teacher: fixture.base)), "sft.jsonl",
                ["heldout_ce", "heldout_kd", "teacher_heldout_ce", "router_kl_drift"]
            ),
            (
                .distill(DistillationSettings(teacher: teacher)), "sft.jsonl",
                ["heldout_ce", "heldout_kd", "teacher_heldout_ce", "router_kl_drift"]
            )
        ]
        for (objective, data, metrics) in stages {
            let settings = try fixture.settings(objective, data: data)
            let (parts, result) = try steps(FineTuneRun(settings: settings))
            let name = objective.stage.rawValue
            XCTAssertEqual(parts.keys.sorted(), [1, 2, 3], name)
            for (step, values) in parts {
                XCTAssertTrue(values.values.allSatisfy(\.isFinite), "\(name) step \(step): \(values)")
                XCTAssertNotNil(values["router_kl"], name)
            }
            XCTAssertEqual(result.steps, 3)
            XCTAssertEqual(result.evaluations.map(\.step), [0, 2, 3], name)
            for evaluation in result.evaluations { XCTAssertEqual(evaluation.metrics.keys.sorted(), metrics.sorted(), name) }
            XCTAssertEqual(result.initial?["router_kl_drift"] ?? -1, 0, accuracy: 1e-6, "\(name): no drift before training")
            XCTAssertGreaterThan(result.final["router_kl_drift"]!, 0, "\(name): the routers moved")
            XCTAssertEqual(try StageResult.read(from: settings.output), result)
            let model = try ModelRegistry.load(directory: settings.output)
            XCTAssertEqual(model.summary.modelType, "chronos")
            XCTAssertNotNil(try ChatEncoder(directory: settings.output), "the tokenizer travels with the model")
        }
    }

    func testDPOStartsAtLog2BecauseThePolicyIsTheReference() throws {
        let fixture = try FineTuneFixture()
        for probability: Float in [0, 0.1] {
            var settings = try fixture.settings(.dpo(DPOSettings()), data: "dpo.jsonl", steps: 1)
            settings.optimization.fallbackMaskProbability = probability
            settings.evaluateAtStart = false
            let (parts, _) = try steps(FineTuneRun(settings: settings))
            XCTAssertEqual(Double(parts[1]!["dpo"]!), Foundation.log(2.0), accuracy: 1e-5, "fallback mask \(probability)")
            XCTAssertEqual(parts[1]!["margin"]!, 0, accuracy: 1e-5)
        }
    }

    func testAnInterruptedGRPORunResumesOnTheSameCurve() throws {
        let fixture = try FineTuneFixture()
        var grpo = GRPOSettings()
        grpo.groupSize = 2
        let whole = try steps(FineTuneRun(settings: fixture.settings(.grpo(grpo), data: "grpo.jsonl", steps: 4))).parts
        let settings = try fixture.settings(.grpo(grpo), data: "grpo.jsonl", steps: 4)
        XCTAssertThrowsError(try steps(FineTuneRun(settings: settings), stopAt: 2))
        let (resumed, result) = try steps(FineTuneRun(settings: settings), start: .resume)
        XCTAssertEqual(resumed.keys.sorted(), [3, 4])
        for step in [3, 4] { XCTAssertEqual(resumed[step], whole[step], "step \(step): the same samples, rewards and loss") }
        XCTAssertEqual(result.evaluations.map(\.step), [0, 2, 4], "evaluations before the interruption are kept")
    }

    func testAResumeIntoAnotherStagesDirectoryIsRefused() throws {
        let fixture = try FineTuneFixture()
        let settings = try fixture.settings(.sft, data: "sft.jsonl", steps: 2)
        try FineTuneRun(settings: settings).run(start: .new)
        var orpo = try fixture.settings(.orpo(ORPOSettings()), data: "dpo.jsonl", steps: 2)
        orpo.output = settings.output
        XCTAssertThrowsError(try FineTuneRun(settings: orpo).run(start: .resume)) { error in
            XCTAssertTrue("\(error)".contains("holds a sft run, not orpo"), "\(error)")
        }
    }

    func testATeacherWithAnotherVocabularyIsRefused() throws {
        let fixture = try FineTuneFixture()
        let settings = try fixture.settings(.distill(DistillationSettings(teacher: Fixtures.url("hf-tiny/mixtral"))), data: "sft.jsonl")
        XCTAssertThrowsError(try FineTuneRun(settings: settings)) { error in
            XCTAssertTrue("\(error)".contains("256 logits for a vocabulary of \(fixture.tokenizer.vocabularySize)"), "\(error)")
        }
    }
}
