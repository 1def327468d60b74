import ChronosModel
import ChronosTensor
import Foundation

/// One sampled completion with its group-normalised advantage.
struct GRPOCompletion {
    /// Prompt and completion ids, the loss on the completion.
    var sequence: ChatSequence
    var reward: Double
    var advantage: Float
}

/// Stage 5: group relative policy optimisation. For each prompt of a step, G completions are
/// sampled from the current policy (with the trainer's generator, so a resumed run samples the
/// same), scored by the reward, and their rewards normalised within the group; each
/// completion's loss is `GRPOLoss` with a k3 KL penalty to the frozen starting model.
///
/// One optimiser step is taken per sampled batch, so π_old is the policy that sampled and the
/// ratio ρ is 1 in value (its gradient is that of log π); the clip matters only to callers
/// that reuse samples. Evaluation: mean reward and definition F1 of greedy answers to
/// held-out prompts, router drift.
final class GRPOObjective: StageObjective {
    let context: StageContext
    let settings: GRPOSettings
    let reward: any RewardFunction
    let train: [DefinitionPrompt]
    let heldOut: [DefinitionPrompt]

    init(_ context: StageContext, settings: GRPOSettings, reward: (any RewardFunction)?) throws {
        self.context = context
        self.settings = settings
        self.reward = try reward ?? Rewards.make(settings.reward, rewardModel: settings.rewardModel)
        let (train, heldOut) = try context.split(ChatData.definitionPrompts)
        self.train = train
        self.heldOut = Array(heldOut.prefix(max(context.settings.generationExamples, 1)))
    }

    var trainingCount: Int { train.count }
    var heldOutCount: Int { heldOut.count }

    /// A request for one rollout of `promptIds`: sampled at the stage's temperature and top-k
    /// with a seed drawn from the trainer's generator (so a resumed run samples the same), ending
    /// on the stage's stop tokens only.
    func rolloutRequest(_ promptIds: [Int], random: inout SplitMix64) -> GenerationRequest {
        GenerationRequest(
            promptIds: promptIds, maxTokens: context.settings.maxNewTokens,
            sampling: SamplingParameters(temperature: settings.temperature, topK: settings.topK, seed: random.next()),
            stopTokens: context.stopTokens, ignoreEOS: true)
    }

    func units(forExamples indices: [Int], trainer: ChronosTrainer) throws -> [GRPOCompletion] {
        let generator = Generator(model: trainer.model, tokenizer: nil)
        var units: [GRPOCompletion] = []
        for index in indices {
            let prompt = train[index]
            let promptIds = try context.encoder.encodePrompt(prompt.prompt)
            let completions = try Autograd.recording(false) {
                try (0..<settings.groupSize).map { _ in try generator.generate(rolloutRequest(promptIds, random: &trainer.random)) }
            }
            let rewards = try completions.map { completion in
                try reward.reward(context.encoder.tokenizer.decode(completion.ids, skipSpecialTokens: true), for: prompt)
            }
            let advantages = GRPOLoss.advantages(rewards)
            for (i, completion) in completions.enumerated() {
                units.append(
                    GRPOCompletion(
                        sequence: ChatEncoder.completion(prompt: promptIds, completion: completion.idsWithStopToken),
                        reward: rewards[i], advantage: advantages[i]))
            }
        }
        return units
    }

    func loss(_ unit: GRPOCompletion, pass: TrainingPass, trainer: ChronosTrainer) throws -> SequenceLoss {
        let model = pass.model, sequence = unit.sequence
        let options = pass.trainingOptions()
        let output = try model.forward(sequence.inputs, cache: model.makeCache(), options: options)
        let logProbabilities = TokenLogProbabilities.of(logits: output.logits, targets: sequence.targets)
        let referenceLogProbabilities = try Autograd.recording(false) {
            let reference = context.start
            let logits = try reference.forward(sequence.inputs, cache: reference.makeCache(), options: options).logits
            return TokenLogProbabilities.of(logits: logits, targets: sequence.targets).floats
        }
        let (grpo, kl) = GRPOLoss.loss(
            logProbabilities: logProbabilities, oldLogProbabilities: logProbabilities.floats,
            referenceLogProbabilities: referenceLogProbabilities, advantage: unit.advantage,
            epsilon: settings.clipEpsilon, beta: settings.klBeta)
        let (chronos, parts) = trainer.chronosTerms(output)
        return SequenceLoss(
            total: grpo + chronos,
            parts: parts.merging(
                [
                    "grpo": grpo.floats[0], "reward": Float(unit.reward), "kl": kl,
                    "completion_tokens": Float(sequence.targetCount)
                ]) { a, _ in a }, tokens: sequence.targetCount)
    }

    func evaluate(_ trainer: ChronosTrainer) throws -> [String: Double] {
        let prompts = try heldOut.map { try context.encoder.encodePrompt($0.prompt) }
        let answers = try HeldOutScoring.greedyAnswers(
            trainer.model, prompts: prompts, encoder: context.encoder,
            maxTokens: context.settings.maxNewTokens, stopTokens: context.stopTokens)
        let rewards = try zip(answers, heldOut).map { try reward.reward($0.text, for: $1) }
        return [
            "mean_reward": rewards.reduce(0, +) / Double(max(rewards.count, 1)),
            "definition_f1": HeldOutScoring.definitionF1(answers: answers.map(\.text), prompts: heldOut),
            "router_kl_drift": try trainer.routerDrift(on: zip(prompts, answers).map { $0 + $1.ids })
        ]
    }
}
