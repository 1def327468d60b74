import ChronosModel
import ChronosTensor

/// A `ForwardObserver` that keeps everything a forward pass tells it, in order.
public final class ForwardLog: ForwardObserver {
    /// Routing decisions, one per token and MoE layer.
    public var decisions: [RoutingDecision] = []
    /// Next-layer previews, with the layer previewed.
    public var previews: [(layer: Int, experts: [Int])] = []
    /// Each finished layer's residual stream, by layer.
    public var hidden: [Int: Tensor] = [:]
    /// Finished layers, in the order they finished.
    public var finished: [Int] = []
    /// Whether passes preview the next MoE layer.
    public let previewsNextLayer: Bool

    /// A log that asks for previews when `previews` is true.
    public init(previews: Bool = false) {
        previewsNextLayer = previews
    }

    /// Keeps the preview.
    public func previewed(layer: Int, experts: [Int]) { previews.append((layer, experts)) }
    /// Keeps the decision.
    public func routed(_ decision: RoutingDecision) { decisions.append(decision) }
    /// Keeps the layer's output.
    public func layerFinished(_ layer: Int, hidden: Tensor) {
        finished.append(layer)
        self.hidden[layer] = hidden
    }
}
