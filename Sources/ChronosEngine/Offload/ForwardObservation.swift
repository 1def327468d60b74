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
    /// The residual stream after decoder layer 0 for the last token `[1, hidden]`, when the
    /// model exposes it (what a lookahead head reads).
    public let blockZeroHidden: Tensor?

    /// An observation with every field given.
    public init(positionOffset: Int, ids: [Int], logits: Tensor, lookaheadProbabilities: Tensor?, blockZeroHidden: Tensor?) {
        self.positionOffset = positionOffset
        self.ids = ids
        self.logits = logits
        self.lookaheadProbabilities = lookaheadProbabilities
        self.blockZeroHidden = blockZeroHidden
    }

    /// Position of the last token of the pass.
    public var lastPosition: Int { positionOffset + ids.count - 1 }

    /// Runs `model` on `ids` and keeps what predictors read: a Chronos-native model's lookahead
    /// head and block-0 hidden state; only the logits for other models.
    public static func forward(_ model: any LanguageModel, ids: [Int], cache: ModelCache) throws -> ForwardObservation {
        let offset = cache.offset
        guard let chronos = model as? ChronosLanguageModel else {
            return ForwardObservation(positionOffset: offset, ids: ids, logits: try model.forward(ids, cache: cache),
                                      lookaheadProbabilities: nil, blockZeroHidden: nil)
        }
        let output = try chronos.forward(ids, cache: cache, options: ChronosForwardOptions())
        let last = ids.count - 1
        let lookahead = output.lookaheadProbabilities
        let rows = lookahead.shape[1], experts = lookahead.shape[2]
        return ForwardObservation(
            positionOffset: offset, ids: ids, logits: output.logits,
            lookaheadProbabilities: lookahead.slice(last..<(last + 1)).contiguous().reshaped([rows, experts]),
            blockZeroHidden: output.blockZeroHidden.slice(last..<(last + 1)).contiguous())
    }
}
