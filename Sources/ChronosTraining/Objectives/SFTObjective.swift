import ChronosModel
import ChronosTensor
import Foundation

/// Stage 2: supervised fine-tuning on conversations, cross-entropy on the assistant tokens.
/// Evaluation: held-out cross-entropy, definition F1 of greedy answers to held-out prompts,
/// router drift.
final class SFTObjective: StageObjective {
    let context: StageContext
    let train: [ChatConversation]
    let heldOut: [ChatSequence]
    let prompts: [DefinitionPrompt]

    init(_ context: StageContext) throws {
        self.context = context
        let settings = context.settings
        let (train, heldOut) = try context.split(ChatData.conversations)
        self.train = train
        self.heldOut = try heldOut.prefix(settings.evaluationExamples).map { try context.sequence($0.messages) }
        let prompts =
            try settings.evaluationPrompts.map(ChatData.definitionPrompts)
            ?? heldOut.compactMap { conversation in
                conversation.promptAndAnswer.map { DefinitionPrompt(prompt: $0.prompt, reference: $0.answer) }
            }
        self.prompts = Array(prompts.prefix(settings.generationExamples))
    }

    var trainingCount: Int { train.count }
    var heldOutCount: Int { heldOut.count }

    func units(forExamples indices: [Int], trainer: ChronosTrainer) throws -> [ChatSequence] {
        try indices.map { try context.sequence(train[$0].messages) }
    }

    func loss(_ sequence: ChatSequence, pass: TrainingPass, trainer: ChronosTrainer) throws -> SequenceLoss {
        let output = try pass.model.forward(sequence.inputs, cache: pass.model.makeCache(), options: pass.trainingOptions())
        let crossEntropy = SFTLoss.loss(logits: output.logits, targets: sequence.targets)
        let (chronos, parts) = trainer.chronosTerms(output)
        return SequenceLoss(
            total: crossEntropy + chronos, parts: parts.merging(["ce": crossEntropy.floats[0]]) { a, _ in a },
            tokens: sequence.targetCount)
    }

    func evaluate(_ trainer: ChronosTrainer) throws -> [String: Double] {
        let answers = try context.greedyAnswers(trainer.model, prompts)
        return [
            "heldout_ce": try HeldOutScoring.crossEntropy(trainer.model, sequences: heldOut),
            "definition_f1": HeldOutScoring.definitionF1(answers: answers, prompts: prompts),
            "router_kl_drift": try trainer.routerDrift(on: heldOut.map(\.inputs))
        ]
    }
}

extension ChronosTrainer {
    /// How far the routers moved from the stage start on `sequences`: the mean router KL
    /// against the anchor's reference routers (`HeldOutScoring.routerDrift`).
    public func routerDrift(on sequences: [[Int]]) throws -> Double {
        try HeldOutScoring.routerDrift(model, referenceRouters: referenceRouters, sequences: sequences)
    }
}
