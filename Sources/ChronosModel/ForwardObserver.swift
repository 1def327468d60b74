import ChronosTensor

/// Told, while a forward pass runs, what it does step by step: what whoever drives a generation
/// (an offload session, a tracer, a test) plugs into the model. Set it on the `ModelCache`.
///
/// Each call comes in the middle of the pass, in order: for every decoder layer, the preview of
/// the next MoE layer's routing (when asked for), the layer's routing decisions, then the layer
/// finished.
public protocol ForwardObserver: AnyObject {
    /// Whether each decoder layer previews the next MoE layer's routing (`previewed`).
    var previewsNextLayer: Bool { get }

    /// In a decoder layer, before its routed experts are asked for (attention and shared
    /// experts done): the experts the router of the next MoE layer `layer` picks for the pass's
    /// last token reading the residual stream as it is then, best first. That layer's routing,
    /// seen one layer early, so its experts can load while this layer's compute.
    func previewed(layer: Int, experts: [Int])

    /// An MoE layer routed one token (one call per token and layer).
    func routed(_ decision: RoutingDecision)

    /// Decoder layer `layer` is done; `hidden` is the residual stream after it, `[tokens, hidden]`.
    func layerFinished(_ layer: Int, hidden: Tensor)
}

extension ForwardObserver {
    /// No previews.
    public var previewsNextLayer: Bool { false }
    /// Ignores the preview.
    public func previewed(layer: Int, experts: [Int]) {}
    /// Ignores the decision.
    public func routed(_ decision: RoutingDecision) {}
    /// Ignores the layer.
    public func layerFinished(_ layer: Int, hidden: Tensor) {}
}
