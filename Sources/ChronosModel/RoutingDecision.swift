/// What one MoE layer's router decided for one token.
public struct RoutingDecision: Sendable, Equatable {
    /// Decoder layer index.
    public let layer: Int
    /// Absolute position of the token in the sequence (the cache offset plus its index in the call).
    public let position: Int
    /// The selected experts, in router order (descending router score, plus any selection bias).
    public let experts: [Int]
    /// The combine weight of each selected expert as the architecture defines it, before any
    /// fallback for non-resident experts.
    public let weights: [Float]
    /// The router's scores over all experts of the layer: its softmax, or, where the family
    /// scores each expert with a sigmoid (DeepSeek-V3), those sigmoids.
    public let probabilities: [Float]
    /// The selected experts the provider did not have, whose contribution fell back.
    public let missing: [Int]

    /// A decision with every field given.
    public init(layer: Int, position: Int, experts: [Int], weights: [Float], probabilities: [Float], missing: [Int] = []) {
        self.layer = layer
        self.position = position
        self.experts = experts
        self.weights = weights
        self.probabilities = probabilities
        self.missing = missing
    }
}
