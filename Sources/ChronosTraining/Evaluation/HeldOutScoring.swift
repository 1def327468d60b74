import ChronosModel
import ChronosTensor
import Foundation

/// Held-out measurements the stages share: cross-entropy on assistant tokens, answers by
/// greedy generation, and how far the routers drifted from the stage start. All run without
/// recording gradients and without fallback masking.
public enum HeldOutScoring {
    /// Mean cross-entropy (nats per token) over the loss-carrying tokens of `sequences`,
    /// weighted by token, under `model`.
    public static func crossEntropy(_ model: any LanguageModel, sequences: [ChatSequence]) throws -> Double {
        try crossEntropy(sequences: sequences) { try model.forward($0, cache: model.makeCache()) }
    }

    /// The same with the logits of each sequence's inputs computed by `logits`.
    public static func crossEntropy(sequences: [ChatSequence], logits: ([Int]) throws -> Tensor) throws -> Double {
        var total = 0.0, tokens = 0
        try Autograd.recording(false) {
            for sequence in sequences where sequence.targetCount > 0 {
                let targets = sequence.targets
                let counted = targets.lazy.filter { $0 != CrossEntropy.ignoreIndex }.count
                let loss = Tensor.crossEntropy(logits: try logits(sequence.inputs), targets: targets)
                total += Double(loss.floats[0]) * Double(counted)
                tokens += counted
            }
        }
        return total / Double(max(tokens, 1))
    }

    /// Mean cross-entropy (nats per token) of `model` over the first `count` of `sequences`
    /// (all of them when there are fewer), each read from an empty cache: the held-out score of
    /// pretraining and of `chronos eval`. 0 when there is no sequence.
    public static func crossEntropy(_ model: any LanguageModel, sequences: PackedSequences, count: Int) throws -> Double {
        let evaluated = min(count, sequences.count)
        var total = 0.0
        try Autograd.recording(false) {
            for i in 0..<evaluated {
                let logits = try model.forward(sequences.inputs(i), cache: model.makeCache())
                total += Double(Tensor.crossEntropy(logits: logits, targets: sequences.targets(i)).floats[0])
            }
        }
        return total / Double(max(evaluated, 1))
    }

    /// llama.cpp's perplexity protocol over `tokens`: consecutive chunks of `context` tokens,
    /// each read from an empty cache with its first token replaced by `bos` when given, scored on
    /// the second half (each token of positions `context/2 + 1 …` from those before it). Returns
    /// the mean negative log-likelihood in nats and the chunks and tokens scored; at most
    /// `chunks` chunks when given. `progress` hears after each chunk.
    public static func chunkedCrossEntropy(
        _ model: any LanguageModel, tokens: [Int], context: Int, chunks: Int? = nil, bos: Int? = nil,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> (crossEntropy: Double, chunks: Int, tokens: Int) {
        let total = min(tokens.count / max(context, 1), chunks ?? .max)
        let first = context / 2
        var nll = 0.0, scored = 0
        try Autograd.recording(false) {
            for chunk in 0..<total {
                var ids = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
                if let bos { ids[0] = bos }
                let logits = try model.forward(Array(ids.dropLast()), cache: model.makeCache())
                let targets = (0..<(context - 1)).map { $0 >= first ? ids[$0 + 1] : CrossEntropy.ignoreIndex }
                let counted = context - 1 - first
                nll += Double(Tensor.crossEntropy(logits: logits, targets: targets).floats[0]) * Double(counted)
                scored += counted
                progress?(chunk + 1, total)
            }
        }
        return (nll / Double(max(scored, 1)), total, scored)
    }

    /// Mean over `sequences` of the router KL anchor term, KL(P_router ‖ P_reference) averaged
    /// over tokens and MoE layers, with `referenceRouters` (router weights by layer) run on
    /// the same MoE inputs: how far routing has moved from the reference.
    public static func routerDrift(_ model: TransformerLanguageModel, referenceRouters: [Int: Tensor], sequences: [[Int]]) throws -> Double
    {
        var total = 0.0, counted = 0
        try Autograd.recording(false) {
            for ids in sequences where !ids.isEmpty {
                let output = try model.forward(ids, cache: model.makeCache(), options: .recordingAll)
                let reference = output.layers.map { routing in
                    Tensor.linear(routing.input, weight: referenceRouters[routing.layer]!).softmax()
                }
                let signals = RoutingSignals(
                    probabilities: output.layers.map(\.routerProbabilities),
                    selected: output.layers.map(\.selectedExperts), lookaheadLogProbabilities: nil,
                    referenceProbabilities: reference)
                total += Double(ChronosLoss.routerKL(signals).floats[0])
                counted += 1
            }
        }
        return total / Double(max(counted, 1))
    }

    /// Greedy answers of `model` to each prompt (ids): the generated ids, ending with the stop
    /// token when one was drawn, and their text without special tokens.
    public static func greedyAnswers(
        _ model: any LanguageModel, prompts: [[Int]], encoder: ChatEncoder, maxTokens: Int,
        stopTokens: Set<Int>
    ) throws -> [(ids: [Int], text: String)] {
        let generator = Generator(model: model, tokenizer: nil)
        return try Autograd.recording(false) {
            try prompts.map { prompt in
                let result = try generator.generate(
                    GenerationRequest(
                        promptIds: prompt, maxTokens: maxTokens, sampling: .greedy,
                        stopTokens: stopTokens, ignoreEOS: true))
                return (result.idsWithStopToken, try encoder.tokenizer.decode(result.ids, skipSpecialTokens: true))
            }
        }
    }

    /// Mean definition F1 of `answers` against the references of `prompts`.
    public static func definitionF1(answers: [String], prompts: [DefinitionPrompt]) -> Double {
        let scores = zip(answers, prompts).map { DefinitionScoring.definitionF1(answer: $0, reference: $1.reference) }
        return scores.reduce(0, +) / Double(max(scores.count, 1))
    }
}
