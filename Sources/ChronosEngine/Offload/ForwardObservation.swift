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
    /// each of `keeping`'s decoder layers (every architecture) and a Chronos-native model's
    /// lookahead head. `onHidden` is handed each layer's index and the hidden states of all of
    /// `ids` in the middle of the pass, as soon as that layer is done.
    public static func forward(_ model: any LanguageModel, ids: [Int], cache: ModelCache, keeping: Set<Int> = [],
                               onHidden: ((_ layer: Int, _ hidden: Tensor) -> Void)? = nil) throws -> ForwardObservation {
        let offset = cache.offset, last = ids.count - 1
        var kept: [Int: Tensor] = [:]
        if onHidden != nil || !keeping.isEmpty {
            cache.hiddenObserver = { layer, hidden in
                onHidden?(layer, hidden)
                if keeping.contains(layer) { kept[layer] = hidden.slice(last..<(last + 1)).contiguous() }
            }
        }
        defer { cache.hiddenObserver = nil }
        guard let chronos = model as? ChronosLanguageModel else {
            let logits = try model.forward(ids, cache: cache)
            return ForwardObservation(positionOffset: offset, ids: ids, logits: logits, lookaheadProbabilities: nil, hidden: kept)
        }
        let output = try chronos.forward(ids, cache: cache, options: ChronosForwardOptions())
        let lookahead = output.lookaheadProbabilities
        let rows = lookahead.shape[1], experts = lookahead.shape[2]
        return ForwardObservation(
            positionOffset: offset, ids: ids, logits: output.logits,
            lookaheadProbabilities: lookahead.slice(last..<(last + 1)).contiguous().reshaped([rows, experts]),
            hidden: kept)
    }
}
