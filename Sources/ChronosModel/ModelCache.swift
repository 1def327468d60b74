import ChronosTensor

/// The state of one generation: a KV cache per decoder layer, the position of the next token,
/// and who is told what each forward pass does while it runs.
public final class ModelCache {
    /// One cache per decoder layer, in layer order.
    public let layers: [any KVCache]
    /// Position of the next token: how many tokens the model has seen.
    public private(set) var offset: Int
    /// Told, during every forward pass using this cache, its routing decisions, each layer
    /// finished and (when it asks) each next MoE layer's routing previewed. Held weakly: whoever
    /// drives the generation owns it.
    public weak var observer: (any ForwardObserver)?
    /// Where this generation's passes get routed experts, in place of the model's own provider:
    /// a session of an expert store that several generations share. Nil: the model's.
    public var experts: (any ExpertProvider)?

    /// A cache over `layers`, all of which must hold `offset` positions.
    public init(layers: [any KVCache], offset: Int = 0) {
        precondition(layers.allSatisfy { $0.offset == offset }, "every layer cache must hold \(offset) positions")
        self.layers = layers
        self.offset = offset
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

    /// Returns every layer to `position` positions, undoing a pass that failed after some or all
    /// layers appended its tokens; false, changing nothing, when a layer cannot forget that
    /// many positions exactly.
    public func rewind(to position: Int) -> Bool {
        guard position >= 0, layers.allSatisfy({ $0.offset >= position && $0.offset - position <= $0.rewindablePositions }) else {
            return false
        }
        for layer in layers { layer.trim(layer.offset - position) }
        offset = position
        return true
    }

    /// Records that a forward pass appended `count` positions to every layer.
    func advance(by count: Int) {
        offset += count
    }
}
