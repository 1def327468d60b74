import ArgumentParser
import ChronosTraining
import Foundation

/// `chronos pipeline`: the six training stages in order from one configuration file.
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run the training stages 1→6 (pretrain, sft, dpo, orpo, grpo, distill) from a JSON configuration.",
        discussion: """
            Each stage starts from the previous one's checkpoint and writes into OUTPUT/N-STAGE. Running the same \
            configuration again skips finished stages and resumes the interrupted one. After every stage the report \
            is rewritten as OUTPUT/report.md and OUTPUT/report.json. See PipelineConfiguration for the keys.
            """)

    @Option(help: "The pipeline configuration (JSON).") var config: String
    @OptionGroup var backend: BackendOption

    func run() throws {
        try backend.apply()
        let configuration = try PipelineConfiguration(contentsOf: URL(fileURLWithPath: config))
        let display = PipelineProgress(configuration: configuration)
        let report = try PipelineRun(configuration: configuration).run { display.show($0) }
        if !report.complete { print("the pipeline stopped before its last stage; run the same command again to continue") }
    }
}

/// Draws a pipeline's events: a header per stage, a progress line per step, a line per
/// evaluation and snapshot; `label` (a model's name) leads each header when given.
final class PipelineProgress {
    let configuration: PipelineConfiguration
    let label: String?
    private var display: StageProgressDisplay?
    private let pretrainProgress = ProgressLine()

    init(configuration: PipelineConfiguration, label: String? = nil) {
        self.configuration = configuration
        self.label = label
    }

    func show(_ event: PipelineEvent) {
        let lead = label.map { "\($0): " } ?? ""
        switch event {
        case .stageStarted(let stage, let resuming):
            let steps = configuration.stages.first { $0.stage == stage }?.optimization.steps ?? 0
            display = StageProgressDisplay(total: steps)
            print(
                "== \(lead)stage \(stage.number): \(stage.rawValue)\(resuming ? " (resuming)" : "") → \(configuration.directory(of: stage).path)"
            )
        case .stageSkipped(let result):
            print("== \(lead)stage \(result.stage.number): \(result.stage.rawValue) already done (\(result.steps) steps)")
        case .pretrain(let event):
            switch event {
            case .started(let parameters, let trainSequences, let heldOutSequences, let unigram, let resumedAt):
                print(
                    "model: \(InspectCommand.count(parameters)) parameters; \(trainSequences) training and \(heldOutSequences) held-out sequences; unigram baseline \(String(format: "%.4f", unigram)) nats/token"
                )
                if resumedAt > 0 { print("resuming at step \(resumedAt)") }
            case .step(let report, _, _):
                pretrainProgress.update(
                    StageProgressDisplay.line(report, total: display?.total ?? 0),
                    fraction: Double(report.step) / Double(max(display?.total ?? 1, 1)))
            case .evaluated(let step, let crossEntropy):
                pretrainProgress.finish("")
                print(String(format: "step %d: heldout_ce %.4f", step, crossEntropy))
            case .checkpoint(let step):
                print("step \(step): snapshot written")
            }
        case .stage(let event):
            display?.show(event)
        case .stageFinished(let result):
            print("\(lead)stage \(result.stage.number) done: " + StageProgressDisplay.metrics(result.final))
        case .reportWritten(let markdown, _):
            print("report: \(markdown.path)")
        }
        fflush(nil)
    }
}
