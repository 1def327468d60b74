import ChronosTensor

/// One pre-norm decoder layer: `h = x + Attention(RMSNorm(x))`, `out = h + FFN(RMSNorm(h))`,
/// where the attention is grouped-query or multi-head latent, and the feed-forward a dense
/// SwiGLU MLP or a routed mixture of experts.
struct DecoderLayer: Sendable {
    enum Mixer: Sendable {
        case grouped(Attention)
        case latent(LatentAttention)
    }

    enum FeedForward: Sendable {
        case dense(GatedMLP)
        case mixture(MoEBlock)
    }

    /// The layer's output, with its MoE block's input and routing when it has one.
    struct Output {
        let output: Tensor
        let mixtureInput: Tensor?
        let routing: MoEBlock.Routing?
    }

    let inputNorm: Tensor
    let postAttentionNorm: Tensor
    let normEps: Float
    let mixer: Mixer
    let feedForward: FeedForward

    /// One sequence's rows of a pass, with its cache of this layer, who is told what the layer
    /// does with them, and where their routed experts come from (nil: the model's).
    struct Sequence {
        let rows: Range<Int>
        let cache: any KVCache
        let observer: (any ForwardObserver)?
        let provider: (any ExpertProvider)?
    }

    /// `[T, hidden]` → `[T, hidden]`, the rows of each of `sequences` at positions
    /// `cache.offset…` of that sequence. `availability` is handed to the MoE block (see
    /// `MoEBlock.route`); `beforeRouted` the residual stream as it stands before any routed
    /// expert is asked for: attention and any shared expert added (a dense layer: after
    /// attention).
    func callAsFunction(
        _ x: Tensor, sequences: [Sequence], availability: ((_ slot: Int, _ expert: Int) -> Float)? = nil,
        beforeRouted: ((Tensor) -> Void)? = nil
    ) throws(ModelError) -> Output {
        let positionOffsets = sequences.map(\.cache.offset)
        let normed = x.rmsNorm(weight: inputNorm, eps: normEps)
        let rows = sequences.map { SequenceRows(rows: $0.rows, cache: $0.cache) }
        let attended =
            switch mixer {
            case .grouped(let attention): attention(normed, sequences: rows)
            case .latent(let attention): attention(normed, sequences: rows)
            }
        let h = x + attended
        let feedForwardInput = h.rmsNorm(weight: postAttentionNorm, eps: normEps)
        switch feedForward {
        case .dense(let mlp):
            beforeRouted?(h)
            return Output(output: h + mlp(feedForwardInput), mixtureInput: nil, routing: nil)
        case .mixture(let moe):
            let routed = zip(sequences, positionOffsets).map { sequence, offset in
                MoEBlock.Sequence(rows: sequence.rows, positionOffset: offset, observer: sequence.observer, provider: sequence.provider)
            }
            let routing = try moe.route(
                feedForwardInput, sequences: routed, availability: availability,
                beforeRouted: beforeRouted.map { handler in { shared in handler(shared.map { h + $0 } ?? h) } })
            return Output(output: h + routing.output, mixtureInput: feedForwardInput, routing: routing)
        }
    }

    /// The MoE block, nil for a dense layer.
    var mixture: MoEBlock? {
        if case .mixture(let moe) = feedForward { moe } else { nil }
    }

    /// The feed-forward's router preview for the last row of `stream` (see
    /// `ForwardObserver.previewed`); nil for a dense layer.
    func previewExperts(stream: Tensor) -> [Int]? {
        mixture?.previewExperts(stream: stream, norm: postAttentionNorm, eps: normEps)
    }
}
