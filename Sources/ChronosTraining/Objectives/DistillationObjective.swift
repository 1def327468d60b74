import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// Stage 6: distillation from a teacher (any loadable model, Hugging Face architectures
/// included, whose tokenizer is the student's) on conversations, the loss on assistant tokens.
/// Evaluation: held-out cross-entropy, the soft KL term, the teacher's own held-out
/// cross-entropy for comparison, router drift.
final class DistillationObjective: StageObjective {
    let context: StageContext
    let settings: DistillationSettings
    let teacher: any LanguageModel
    let train: [ChatConversation]
    let heldOut: [ChatSequence]
    private var teacherCrossEntropy: Double?

    init(_ context: StageContext, settings: DistillationSettings) throws {
        self.context = context
        self.settings = settings
        teacher = try ModelLoader.load(directory: settings.teacher)
        try Self.checkVocabulary(teacher: teacher, directory: settings.teacher, student: context)
        let (train, heldOut) = try context.split(ChatData.conversations)
        self.train = train
        self.heldOut = try heldOut.prefix(context.settings.evaluationExamples).map { try context.sequence($0.messages) }
    }

    /// The teacher must score the student's token ids: at least as many rows of logits, and,
    /// when it ships a tokenizer, the same token for every id of the student's vocabulary.
    static func checkVocabulary(teacher: any LanguageModel, directory: URL, student: StageContext) throws {
        let vocabulary = student.start.summary.vocabSize
        guard teacher.summary.vocabSize >= vocabulary else {
            throw FineTuneError.teacherVocabulary(
                directory, reason: "\(teacher.summary.vocabSize) logits for a vocabulary of \(vocabulary)")
        }
        let url = ModelDirectory(directory).tokenizer
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let tokenizer = try Tokenizer(contentsOf: url), own = student.encoder.tokenizer
        for id in 0..<min(vocabulary, own.vocabularySize) where tokenizer.token(forId: id) != own.token(forId: id) {
            throw FineTuneError.teacherVocabulary(
                directory,
                reason: "id \(id) is \(tokenizer.token(forId: id)?.debugDescription ?? "absent") for the teacher, "
                    + "\(own.token(forId: id)?.debugDescription ?? "absent") for the student")
        }
    }

    var trainingCount: Int { train.count }
    var heldOutCount: Int { heldOut.count }

    func units(forExamples indices: [Int], trainer: ChronosTrainer) throws -> [ChatSequence] {
        try indices.map { try context.sequence(train[$0].messages) }
    }

    /// The teacher's logits for `inputs`, cut to the student's vocabulary.
    func teacherLogits(_ inputs: [Int]) throws -> Tensor {
        try Autograd.recording(false) {
            let logits = try teacher.forward(inputs, cache: teacher.makeCache())
            let vocabulary = context.start.summary.vocabSize
            return logits.shape[1] == vocabulary ? logits : logits.slice(0..<vocabulary, axis: 1).contiguous()
        }
    }

    func loss(_ sequence: ChatSequence, pass: TrainingPass, trainer: ChronosTrainer) throws -> SequenceLoss {
        let teacher = try teacherLogits(sequence.inputs)
        let output = try pass.model.forward(sequence.inputs, cache: pass.model.makeCache(), options: pass.trainingOptions())
        let distilled = DistillationLoss.loss(
            studentLogits: output.logits, teacherLogits: teacher, targets: sequence.targets,
            alpha: settings.alpha, temperature: settings.temperature)
        let (chronos, parts) = trainer.chronosTerms(output)
        return SequenceLoss(
            total: distilled.total + chronos,
            parts: parts.merging(["kd": distilled.kl, "ce": distilled.crossEntropy]) { a, _ in a },
            tokens: sequence.targetCount)
    }

    func evaluate(_ trainer: ChronosTrainer) throws -> [String: Double] {
        var kl = 0.0, counted = 0
        try Autograd.recording(false) {
            for sequence in heldOut where sequence.targetCount > 0 {
                let student = try trainer.model.forward(sequence.inputs, cache: trainer.model.makeCache())
                let result = DistillationLoss.loss(
                    studentLogits: student, teacherLogits: try teacherLogits(sequence.inputs),
                    targets: sequence.targets, alpha: settings.alpha, temperature: settings.temperature)
                kl += Double(result.kl)
                counted += 1
            }
        }
        if teacherCrossEntropy == nil {
            teacherCrossEntropy = try HeldOutScoring.crossEntropy(sequences: heldOut, logits: teacherLogits)
        }
        return [
            "heldout_ce": try HeldOutScoring.crossEntropy(trainer.model, sequences: heldOut),
            "heldout_kd": kl / Double(max(counted, 1)),
            "teacher_heldout_ce": teacherCrossEntropy ?? 0,
            "router_kl_drift": try trainer.routerDrift(on: heldOut.map(\.inputs))
        ]
    }
}
