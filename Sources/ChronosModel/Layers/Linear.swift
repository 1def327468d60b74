import ChronosTensor

/// y = W·x + b for a weight `[out, in]` in the PyTorch layout (f32, f16 or bf16).
struct Linear: Sendable {
    let weight: Tensor
    let bias: Tensor?

    /// `[T, in]` → `[T, out]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight: weight, bias: bias)
    }
}
