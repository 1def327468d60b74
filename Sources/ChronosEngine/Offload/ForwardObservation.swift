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

    /// What predictors read of `output`, a pass over `ids`: the logits, the lookahead head's
    /// distributions for the last token and the last token's row of each hidden state kept.
    public init(output: ForwardOutput, ids: [Int]) {
        let last = ids.count - 1
        self.init(
            positionOffset: output.positionOffset, ids: ids, logits: output.logits,
            lookaheadProbabilities: output.lookahead.map { $0.row(last) },
            hidden: output.hidden.mapValues { $0.slice(last..<(last + 1)).contiguous() })
    }
}
