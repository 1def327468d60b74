import ChronosTensor

/// One pre-norm decoder layer: `h = x + Attention(RMSNorm(x))`, `out = h + FFN(RMSNorm(h))`,
/// where the feed-forward is a dense SwiGLU MLP or a routed mixture of experts.
struct DecoderLayer: Sendable {
    enum FeedForward: Sendable {
        case dense(GatedMLP)
        case mixture(MoEBlock)
    }

    let inputNorm: Tensor
    let postAttentionNorm: Tensor
    let normEps: Float
    let attention: Attention
    let feedForward: FeedForward

    /// `[T, hidden]` at positions `cache.offset…` → `[T, hidden]`; `beforeRouted` is handed the
    /// residual stream as it stands before any routed expert is asked for: attention and any
    /// shared expert added (a dense layer: after attention).
    func callAsFunction(_ x: Tensor, cache: any KVCache, observer: RoutingObserver?,
                        beforeRouted: ((Tensor) -> Void)? = nil) -> Tensor {
        let positionOffset = cache.offset
        let h = x + attention(x.rmsNorm(weight: inputNorm, eps: normEps), cache: cache)
        let normed = h.rmsNorm(weight: postAttentionNorm, eps: normEps)
        switch feedForward {
        case let .dense(mlp):
            beforeRouted?(h)
            return h + mlp(normed)
        case let .mixture(moe):
            return h + moe(normed, positionOffset: positionOffset, observer: observer,
                           beforeRouted: beforeRouted.map { handler in { shared in handler(shared.map { h + $0 } ?? h) } })
        }
    }

    /// Whether the feed-forward is a routed mixture.
    var isMixture: Bool {
        if case .mixture = feedForward { true } else { false }
    }

    /// The feed-forward's router preview for the last row of `stream` (see
    /// `ModelCache.nextLayerObserver`); nil for a dense layer.
    func previewExperts(stream: Tensor) -> [Int]? {
        guard case let .mixture(moe) = feedForward else { return nil }
        return moe.previewExperts(stream: stream, norm: postAttentionNorm, eps: normEps)
    }
}
