import ChronosTensor

/// The activation between a gated MLP's gate and up projections.
enum GatedActivation: Sendable, Equatable {
    /// SiLU(g) ⊙ u (Llama, Mixtral, Qwen, OLMoE, DeepSeek, Chronos).
    case swiGLU
    /// gpt-oss: with g' = min(g, limit) and u' = clamp(u, −limit, limit), g'·σ(α·g') ⊙ (u' + 1).
    case clampedSwiGLU(alpha: Float, limit: Float)
}

/// The gated feed-forward of Llama-family models, also the form of every routed and shared
/// expert: `down · (act(gate · x, up · x))`, SwiGLU unless the family says otherwise.
struct GatedMLP: Sendable {
    let gate: Linear
    let up: Linear
    let down: Linear
    var activation = GatedActivation.swiGLU

    init(gate: Linear, up: Linear, down: Linear, activation: GatedActivation = .swiGLU) {
        self.gate = gate
        self.up = up
        self.down = down
        self.activation = activation
    }

    /// An expert's projections, with the biases `biases` when the family has them.
    init(_ expert: ExpertWeights, biases: (gate: Tensor, up: Tensor, down: Tensor)? = nil, activation: GatedActivation = .swiGLU) {
        self.init(
            gate: Linear(weight: expert.gate, bias: biases?.gate), up: Linear(weight: expert.up, bias: biases?.up),
            down: Linear(weight: expert.down, bias: biases?.down), activation: activation)
    }

    /// `[T, hidden]` → `[T, hidden]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        switch activation {
        case .swiGLU: down(Tensor.swiglu(gate: gate(x), up: up(x)))
        case .clampedSwiGLU(let alpha, let limit): down(Tensor.clampedSwiglu(gate: gate(x), up: up(x), alpha: alpha, limit: limit))
        }
    }
}
