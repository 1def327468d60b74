/// Elementwise operations on f32 tensors, each returning a new tensor.
extension Tensor {
    /// a + b for tensors of equal shape, or b broadcast along the leading axes when its shape
    /// is a suffix of a's (adding a bias to every row).
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        broadcast(a, b, Elementwise.add)
    }

    /// a · b elementwise, with the same broadcasting as `+`.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        broadcast(a, b, Elementwise.mul)
    }

    /// s · x
    public func scaled(by s: Float) -> Tensor {
        let x = contiguous(), out = Tensor(zeros: shape)
        Elementwise.scale(x.floatPointer, by: s, out.floatPointer, count: count)
        return out
    }

    /// SiLU(x) = x · σ(x)
    public func silu() -> Tensor {
        let x = contiguous(), out = Tensor(zeros: shape)
        Elementwise.silu(x.floatPointer, out.floatPointer, count: count)
        return out
    }

    /// σ(x) = 1 / (1 + e^(−x))
    public func sigmoid() -> Tensor {
        let x = contiguous(), out = Tensor(zeros: shape)
        Elementwise.sigmoid(x.floatPointer, out.floatPointer, count: count)
        return out
    }

    /// SwiGLU(gate, up) = SiLU(gate) · up, the gated activation of Llama-family MLPs.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
        let g = gate.contiguous(), u = up.contiguous(), out = Tensor(zeros: gate.shape)
        Elementwise.swiglu(gate: g.floatPointer, up: u.floatPointer, out.floatPointer, count: out.count)
        return out
    }

    private static func broadcast(_ a: Tensor, _ b: Tensor,
                                  _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(b.rank <= a.rank && Array(a.shape.suffix(b.rank)) == b.shape,
                     "shapes \(a.shape) and \(b.shape) do not broadcast")
        let a = a.contiguous(), b = b.contiguous(), out = Tensor(zeros: a.shape)
        let inner = b.count
        for start in stride(from: 0, to: a.count, by: max(inner, 1)) {
            kernel(a.floatPointer + start, b.floatPointer, out.floatPointer + start, inner)
        }
        return out
    }
}
