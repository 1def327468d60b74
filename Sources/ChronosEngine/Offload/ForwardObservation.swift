import ChronosModel
import ChronosTensor

/// What one forward pass computed that expert predictors read, beyond the logits.
public struct ForwardObservation: Sendable {
    /// Position of the first token of the pass.
    public let positionOffset: Int
    /// The token ids the pass ran.
    public let ids: [Int]
    /// Next-token logits `[ids.count, vocab]`.
    public let logits: Tensor
    /// The model's lookahead head for the last token, `[K+1, E]` (row k: the distribution over
    /// experts of token t + k), when the model has one.
    public let lookaheadProbabilities: Tensor?
    /// The residual stream for the last token `[1, hidden]` after each decoder layer the pass
    /// was asked to keep (what a trained lookahead head reads), by layer index.
    public let hidden: [Int: Tensor]

    /// An observation with every field given.
    public init(positionOffset: Int, ids: [Int], logits: Tensor, lookaheadProbabilities: Tensor?, hidden: [Int: Tensor]) {
        self.positionOffset = positionOffset
        self.ids = ids
        self.logits = logits
        self.lookaheadProbabilities = lookaheadProbabilities
        self.hidden = hidden
    }

    /// Position of the last token of the pass.
    public var lastPosition: Int { positionOffset + ids.count - 1 }

    /// Runs `model` on `ids` and keeps what predictors read: the last token's hidden state after
    /// each of `keeping`'s decoder layers and the model's lookahead head, when it has one.
    /// `onHidden` is handed each layer's index and the hidden states of all of `ids` in the
    /// middle of the pass, as soon as that layer is done.
    public static func forward(_ model: any LanguageModel, ids: [Int], cache: ModelCache, keeping: Set<Int> = [],
                               onHidden: ((_ layer: Int, _ hidden: Tensor) -> Void)? = nil) throws -> ForwardObservation {
        let offset = cache.offset, last = ids.count - 1
        cache.hiddenObserver = onHidden
        defer { cache.hiddenObserver = nil }
        let output = try model.forward(ids, cache: cache, options: ForwardOptions(predictsLookahead: true, hiddenLayers: keeping))
        let kept = output.hidden.mapValues { $0.slice(last..<(last + 1)).contiguous() }
        return ForwardObservation(positionOffset: offset, ids: ids, logits: output.logits,
                                  lookaheadProbabilities: output.lookahead.map { $0.row(last) }, hidden: kept)
    }
}
