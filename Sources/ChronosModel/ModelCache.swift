import ChronosTensor

/// The state of one generation: a KV cache per decoder layer, the position of the next token,
/// and who is told about routing decisions and the hidden states between decoder layers.
public final class ModelCache {
    /// One cache per decoder layer, in layer order.
    public let layers: [any KVCache]
    /// Position of the next token: how many tokens the model has seen.
    public private(set) var offset: Int
    /// Called with every MoE routing decision the forward passes using this cache make.
    public var routingObserver: RoutingObserver?
    /// Called, in the middle of every forward pass using this cache, with each decoder layer's
    /// index and the residual stream after it (`[tokens, hidden]`), as soon as that layer is
    /// done: what lookahead and intent predictors read.
    public var hiddenObserver: ((_ layer: Int, _ hidden: Tensor) -> Void)?
    /// Called during every forward pass using this cache, in each decoder layer before its
    /// routed experts are asked for (attention and shared experts done), with the next MoE
    /// layer and the experts its router picks for the pass's last token reading the residual
    /// stream as it is then: that layer's routing previewed one layer early, so its experts can
    /// load while this layer's routed experts load and compute. Nil: nothing is previewed.
    public var nextLayerObserver: ((_ layer: Int, _ experts: [Int]) -> Void)?

    /// A cache over `layers`, all of which must hold `offset` positions.
    public init(layers: [any KVCache], offset: Int = 0, routingObserver: RoutingObserver? = nil) {
        precondition(layers.allSatisfy { $0.offset == offset }, "every layer cache must hold \(offset) positions")
        self.layers = layers
        self.offset = offset
        self.routingObserver = routingObserver
    }

    /// An empty cache of `layerCount` `StandardKVCache`s.
    public convenience init(layerCount: Int) {
        self.init(layers: (0..<layerCount).map { _ in StandardKVCache() })
    }

    /// Bytes every layer's cache has allocated.
    public var byteCount: Int { layers.reduce(0) { $0 + $1.byteCount } }

    /// Forgets the last `count` positions of every layer (at most `offset`); returns how many.
    @discardableResult
    public func trim(_ count: Int) -> Int {
        let removed = min(max(count, 0), offset)
        for layer in layers { layer.trim(removed) }
        offset -= removed
        return removed
    }

    /// Records that a forward pass appended `count` positions to every layer.
    func advance(by count: Int) {
        offset += count
    }
}
