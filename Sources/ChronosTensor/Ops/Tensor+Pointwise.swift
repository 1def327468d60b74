import Foundation

/// Elementwise operations on f32 tensors, each returning a new tensor (recorded for autograd).
extension Tensor {
    /// a + b for tensors of equal shape, or b broadcast along the leading axes when its shape
    /// is a suffix of a's (adding a bias to every row).
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcast(a, b, Elementwise.add)
        return Autograd.record(out, inputs: [a, b]) { g in [g, reduceToShape(g, b.shape)] }
    }

    /// a − b, with the same broadcasting as `+`.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        a + b.scaled(by: -1)
    }

    /// a · b elementwise, with the same broadcasting as `+`.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcast(a, b, Elementwise.mul)
        return Autograd.record(out, inputs: [a, b]) { g in
            [broadcast(g, b.detached(), Elementwise.mul), reduceToShape(broadcast(g, a.detached(), Elementwise.mul), b.shape)]
        }
    }

    /// s · x
    public func scaled(by s: Float) -> Tensor {
        let out = map { Elementwise.scale($0, by: s, $1, count: $2) }
        return Autograd.record(out, inputs: [self]) { g in [g.scaled(by: s)] }
    }

    /// SiLU(x) = x · σ(x); ∂/∂x = σ(x)·(1 + x·(1 − σ(x))).
    public func silu() -> Tensor {
        let out = map { Elementwise.silu($0, $1, count: $2) }
        let x = contiguous()
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.contiguous(), dx = Tensor(uninitialized: x.shape)
            Elementwise.siluBackward(x: x.floatPointer, gradient: gs.floatPointer, dx.floatPointer, count: x.count)
            return [dx]
        }
    }

    /// σ(x) = 1 / (1 + e^(−x)); ∂/∂x = σ·(1 − σ).
    public func sigmoid() -> Tensor {
        let out = map { Elementwise.sigmoid($0, $1, count: $2) }
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.contiguous(), dx = Tensor(uninitialized: out.shape)
            Elementwise.sigmoidBackward(y: out.floatPointer, gradient: gs.floatPointer, dx.floatPointer, count: out.count)
            return [dx]
        }
    }

    /// e^x elementwise.
    public func exp() -> Tensor {
        let out = map { x, o, n in
            for i in 0..<n { o[i] = FastMath.exp(x[i]) }
        }
        return Autograd.record(out, inputs: [self]) { g in [g * out] }
    }

    /// Natural logarithm elementwise; ∂/∂x = 1/x.
    public func log() -> Tensor {
        let out = map { x, o, n in
            for i in 0..<n { o[i] = Foundation.log(x[i]) }
        }
        let x = detached()
        return Autograd.record(out, inputs: [self]) { g in
            let xs = x.floats, gs = g.floats
            return [Tensor(shape: x.shape, values: (0..<xs.count).map { gs[$0] / xs[$0] })]
        }
    }

    /// x² elementwise.
    public func squared() -> Tensor {
        self * self
    }

    /// SwiGLU(gate, up) = SiLU(gate) · up, the gated activation of Llama-family MLPs.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
        if Autograd.isRecording && (gate.gradientNode != nil || up.gradientNode != nil) {
            return gate.silu() * up
        }
        let g = gate.contiguous(), u = up.contiguous(), out = Tensor(uninitialized: gate.shape)
        Elementwise.swiglu(gate: g.floatPointer, up: u.floatPointer, out.floatPointer, count: out.count)
        return out
    }

    /// gpt-oss's clamped SwiGLU: with g' = min(gate, limit) and u' = clamp(up, −limit, limit),
    ///
    ///     out = g'·σ(α·g') · (u' + 1)
    ///
    /// ∂/∂gate is 0 where the gate was clamped, ∂/∂up 0 where the up value was.
    public static func clampedSwiglu(gate: Tensor, up: Tensor, alpha: Float, limit: Float) -> Tensor {
        precondition(gate.shape == up.shape, "clampedSwiglu: gate \(gate.shape) and up \(up.shape) differ")
        let g = gate.contiguous().detached(), u = up.contiguous().detached(), out = Tensor(uninitialized: gate.shape)
        let o = out.floatPointer
        for (i, (x, y)) in zip(g.floats, u.floats).enumerated() {
            let clampedGate = min(x, limit), clampedUp = min(max(y, -limit), limit)
            o[i] = clampedGate / (1 + Foundation.exp(-alpha * clampedGate)) * (clampedUp + 1)
        }
        return Autograd.record(out, inputs: [gate, up]) { grad in
            let gs = grad.contiguous(), dGate = Tensor(uninitialized: g.shape), dUp = Tensor(uninitialized: g.shape)
            let dg = dGate.floatPointer, du = dUp.floatPointer, gr = gs.floatPointer, gp = g.floatPointer, up = u.floatPointer
            for i in 0..<g.count {
                let clampedGate = min(gp[i], limit), clampedUp = min(max(up[i], -limit), limit)
                let sigmoid = 1 / (1 + Foundation.exp(-alpha * clampedGate))
                let glu = clampedGate * sigmoid
                let dGlu = sigmoid + alpha * clampedGate * sigmoid * (1 - sigmoid)
                dg[i] = gp[i] > limit ? 0 : gr[i] * dGlu * (clampedUp + 1)
                du[i] = abs(up[i]) > limit ? 0 : gr[i] * glu
            }
            return [dGate, dUp]
        }
    }

    /// A new tensor of this shape filled by `kernel(input, output, count)` on the contiguous values.
    private func map(_ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let x = contiguous(), out = Tensor(uninitialized: shape)
        kernel(x.floatPointer, out.floatPointer, count)
        return out
    }

    private static func broadcast(
        _ a: Tensor, _ b: Tensor,
        _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) -> Tensor {
        precondition(
            b.rank <= a.rank && Array(a.shape.suffix(b.rank)) == b.shape,
            "shapes \(a.shape) and \(b.shape) do not broadcast")
        let a = a.contiguous(), b = b.contiguous(), out = Tensor(uninitialized: a.shape)
        let inner = b.count
        for start in stride(from: 0, to: a.count, by: max(inner, 1)) {
            kernel(a.floatPointer + start, b.floatPointer, out.floatPointer + start, inner)
        }
        return out
    }

    /// Sums a gradient over the leading axes that broadcasting added, back to `shape`.
    private static func reduceToShape(_ g: Tensor, _ shape: [Int]) -> Tensor {
        if g.shape == shape { return g }
        let inner = shape.reduce(1, *)
        return g.contiguous().reshaped([g.count / inner, inner]).sumRows().reshaped(shape)
    }
}
