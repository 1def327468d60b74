import ChronosTensor

/// The SwiGLU feed-forward of Llama-family models, also the form of every routed and shared
/// expert: `down · (SiLU(gate · x) ⊙ (up · x))`.
struct GatedMLP: Sendable {
    let gate: Linear
    let up: Linear
    let down: Linear

    init(gate: Linear, up: Linear, down: Linear) {
        self.gate = gate
        self.up = up
        self.down = down
    }

    /// An expert's projections, without biases.
    init(_ expert: ExpertWeights) {
        self.init(
            gate: Linear(weight: expert.gate, bias: nil), up: Linear(weight: expert.up, bias: nil),
            down: Linear(weight: expert.down, bias: nil))
    }

    /// `[T, hidden]` → `[T, hidden]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        down(Tensor.swiglu(gate: gate(x), up: up(x)))
    }
}
