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

    /// `[T, hidden]` at positions `cache.offset…` → `[T, hidden]`. `provider` and
    /// `availability` are handed to the MoE block (see `MoEBlock.route`); `beforeRouted` the residual stream as it stands
    /// before any routed expert is asked for: attention and any shared expert added (a dense
    /// layer: after attention).
    func callAsFunction(
        _ x: Tensor, cache: any KVCache, observer: (any ForwardObserver)?, provider: (any ExpertProvider)? = nil,
        availability: ((_ slot: Int, _ expert: Int) -> Float)? = nil,
        beforeRouted: ((Tensor) -> Void)? = nil
    ) throws(ModelError) -> Output {
        let positionOffset = cache.offset
        let normed = x.rmsNorm(weight: inputNorm, eps: normEps)
        let attended =
            switch mixer {
            case .grouped(let attention): attention(normed, cache: cache)
            case .latent(let attention): attention(normed, cache: cache)
            }
        let h = x + attended
        let feedForwardInput = h.rmsNorm(weight: postAttentionNorm, eps: normEps)
        switch feedForward {
        case .dense(let mlp):
            beforeRouted?(h)
            return Output(output: h + mlp(feedForwardInput), mixtureInput: nil, routing: nil)
        case .mixture(let moe):
            let routing = try moe.route(
                feedForwardInput, positionOffset: positionOffset, observer: observer, provider: provider,
                availability: availability,
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
