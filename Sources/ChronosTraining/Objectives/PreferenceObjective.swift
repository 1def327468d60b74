import ChronosModel
import ChronosTensor
import Foundation

/// A preference pair as token sequences, the loss on the final answer of each.
struct PreferenceSequences {
    var chosen: ChatSequence
    var rejected: ChatSequence
}

/// Stages 3 and 4: DPO (against the frozen starting model) and ORPO (no reference) on
/// preference pairs. Evaluation: preference accuracy (DPO: the implicit reward of the chosen
/// answer is higher; ORPO: its length-normalised likelihood is), the held-out loss, and router drift.
final class PreferenceObjective: StageObjective {
    enum Kind {
        case dpo(DPOSettings)
        case orpo(ORPOSettings)
    }

    let context: StageContext
    let kind: Kind
    let train: [PreferencePair]
    let heldOut: [PreferenceSequences]
    /// Summed log-probabilities of the held-out answers under the reference (chosen, rejected).
    private var heldOutReference: [(chosen: Float, rejected: Float)]?

    init(_ context: StageContext, kind: Kind) throws {
        self.context = context
        self.kind = kind
        let (train, heldOut) = try context.split(ChatData.preferencePairs)
        self.train = train
        self.heldOut = try heldOut.prefix(context.settings.evaluationExamples).map { try Self.sequences($0, context) }
    }

    static func sequences(_ pair: PreferencePair, _ context: StageContext) throws -> PreferenceSequences {
        PreferenceSequences(
            chosen: try context.sequence(pair.prompt + [.init(role: "assistant", content: pair.chosen)], loss: .finalTurn),
            rejected: try context.sequence(pair.prompt + [.init(role: "assistant", content: pair.rejected)], loss: .finalTurn))
    }

    var trainingCount: Int { train.count }
    var heldOutCount: Int { heldOut.count }

    func units(forExamples indices: [Int], trainer: ChronosTrainer) throws -> [PreferenceSequences] {
        try indices.map { try Self.sequences(train[$0], context) }
    }

    func loss(_ pair: PreferenceSequences, pass: TrainingPass, trainer: ChronosTrainer) throws -> SequenceLoss {
        let model = pass.model
        // The reference reads each answer with the policy's fallback mask, so the two differ
        // only by their weights (and agree exactly at the start).
        let chosenOptions = pass.trainingOptions(), rejectedOptions = pass.trainingOptions()
        let chosen = try model.forward(pair.chosen.inputs, cache: model.makeCache(), options: chosenOptions)
        let rejected = try model.forward(pair.rejected.inputs, cache: model.makeCache(), options: rejectedOptions)
        let chronosChosen = trainer.chronosTerms(chosen), chronosRejected = trainer.chronosTerms(rejected)
        var parts = chronosChosen.parts.merging(chronosRejected.parts) { ($0 + $1) / 2 }
        let chronos = (chronosChosen.weighted + chronosRejected.weighted).scaled(by: 0.5)
        let stageLoss: Tensor
        switch kind {
        case .dpo(let dpo):
            let policyChosen = TokenLogProbabilities.sum(logits: chosen.logits, targets: pair.chosen.targets)
            let policyRejected = TokenLogProbabilities.sum(logits: rejected.logits, targets: pair.rejected.targets)
            let referenceChosen = try referenceLogProbability(pair.chosen, options: chosenOptions)
            let referenceRejected = try referenceLogProbability(pair.rejected, options: rejectedOptions)
            stageLoss = DPOLoss.loss(
                policyChosen: policyChosen, policyRejected: policyRejected, referenceChosen: referenceChosen,
                referenceRejected: referenceRejected, beta: dpo.beta)
            let margin = DPOLoss.rewardMargin(
                policyChosen: policyChosen.floats[0], policyRejected: policyRejected.floats[0],
                referenceChosen: referenceChosen, referenceRejected: referenceRejected, beta: dpo.beta)
            parts["dpo"] = stageLoss.floats[0]
            parts["margin"] = margin
            parts["accuracy"] = margin > 0 ? 1 : 0
        case .orpo(let orpo):
            let chosenMean = TokenLogProbabilities.mean(logits: chosen.logits, targets: pair.chosen.targets)
            let rejectedMean = TokenLogProbabilities.mean(logits: rejected.logits, targets: pair.rejected.targets)
            let (total, oddsRatio) = ORPOLoss.loss(
                chosenMeanLogProbability: chosenMean, rejectedMeanLogProbability: rejectedMean,
                lambda: orpo.lambda)
            stageLoss = total
            parts["nll"] = -chosenMean.floats[0]
            parts["odds_ratio"] = oddsRatio.floats[0]
            parts["accuracy"] = chosenMean.floats[0] > rejectedMean.floats[0] ? 1 : 0
        }
        return SequenceLoss(total: stageLoss + chronos, parts: parts, tokens: pair.chosen.targetCount + pair.rejected.targetCount)
    }

    /// Σ log π_ref of a sequence's answer tokens, with the given forward options.
    func referenceLogProbability(_ sequence: ChatSequence, options: ForwardOptions = ForwardOptions()) throws -> Float {
        try Autograd.recording(false) {
            let reference = context.start
            let output = try reference.forward(sequence.inputs, cache: reference.makeCache(), options: options)
            return TokenLogProbabilities.sum(logits: output.logits, targets: sequence.targets).floats[0]
        }
    }

    func evaluate(_ trainer: ChronosTrainer) throws -> [String: Double] {
        let model = trainer.model
        var sums: [String: Double] = [:]
        try Autograd.recording(false) {
            for (index, pair) in heldOut.enumerated() {
                let chosen = try model.forward(pair.chosen.inputs, cache: model.makeCache())
                let rejected = try model.forward(pair.rejected.inputs, cache: model.makeCache())
                let chosenMean = TokenLogProbabilities.mean(logits: chosen, targets: pair.chosen.targets)
                let rejectedMean = TokenLogProbabilities.mean(logits: rejected, targets: pair.rejected.targets)
                sums["likelihood_accuracy", default: 0] += chosenMean.floats[0] > rejectedMean.floats[0] ? 1 : 0
                switch kind {
                case .dpo(let dpo):
                    let reference = try heldOutReferenceLogProbabilities()[index]
                    let policyChosen = TokenLogProbabilities.sum(logits: chosen, targets: pair.chosen.targets)
                    let policyRejected = TokenLogProbabilities.sum(logits: rejected, targets: pair.rejected.targets)
                    let margin = DPOLoss.rewardMargin(
                        policyChosen: policyChosen.floats[0], policyRejected: policyRejected.floats[0],
                        referenceChosen: reference.chosen, referenceRejected: reference.rejected,
                        beta: dpo.beta)
                    let loss = DPOLoss.loss(
                        policyChosen: policyChosen, policyRejected: policyRejected,
                        referenceChosen: reference.chosen, referenceRejected: reference.rejected, beta: dpo.beta)
                    sums["preference_accuracy", default: 0] += margin > 0 ? 1 : 0
                    sums["reward_margin", default: 0] += Double(margin)
                    sums["heldout_dpo_loss", default: 0] += Double(loss.floats[0])
                case .orpo(let orpo):
                    let loss = ORPOLoss.loss(
                        chosenMeanLogProbability: chosenMean, rejectedMeanLogProbability: rejectedMean,
                        lambda: orpo.lambda)
                    sums["preference_accuracy", default: 0] += chosenMean.floats[0] > rejectedMean.floats[0] ? 1 : 0
                    sums["heldout_orpo_loss", default: 0] += Double(loss.total.floats[0])
                    sums["heldout_nll", default: 0] += Double(-chosenMean.floats[0])
                }
            }
        }
        var metrics = sums.mapValues { $0 / Double(max(heldOut.count, 1)) }
        metrics["router_kl_drift"] = try trainer.routerDrift(on: heldOut.map(\.chosen.inputs))
        return metrics
    }

    /// The reference's log-probabilities of the held-out answers, computed once.
    private func heldOutReferenceLogProbabilities() throws -> [(chosen: Float, rejected: Float)] {
        if let heldOutReference { return heldOutReference }
        let values = try heldOut.map { (try referenceLogProbability($0.chosen), try referenceLogProbability($0.rejected)) }
        heldOutReference = values
        return values
    }
}
