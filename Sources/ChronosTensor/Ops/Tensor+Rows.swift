/// Operations along the last axis of an f32 tensor (each row of `[…, n]` independently).
extension Tensor {
    /// Number of rows when the last axis is the row.
    var rowCount: Int { count / max(shape.last ?? 1, 1) }

    /// RMSNorm over the last axis with a weight of that length (any float dtype).
    public func rmsNorm(weight: Tensor, eps: Float) -> Tensor {
        let cols = shape.last ?? 1
        precondition(weight.count == cols, "rmsNorm: weight of \(weight.count) for rows of \(cols)")
        let x = contiguous(), w = weight.dtype == .f32 ? weight.contiguous() : weight.converted(to: .f32)
        let out = Tensor(uninitialized: shape), rows = rowCount
        RowKernels.rmsNorm(x.floatPointer, weight: w.floatPointer, out.floatPointer, rows: rows, cols: cols, eps: eps)
        return Autograd.record(out, inputs: [self, weight]) { g in
            // y = x·r·w with r = (mean x² + ε)^(−1/2):
            // ∂x = r·(∂y⊙w) − x·r³/n·Σ(∂y⊙w⊙x),  ∂w = Σ_rows ∂y⊙x·r.
            let gs = g.contiguous(), dx = Tensor(zeros: x.shape), dw = Tensor(zeros: [cols])
            let xp = x.floatPointer, gp = gs.floatPointer, dxp = dx.floatPointer, wp = w.floatPointer, dwp = dw.floatPointer
            for row in 0..<rows {
                let xr = xp + row * cols, gr = gp + row * cols, dxr = dxp + row * cols
                let r = 1 / (RowKernels.sumOfSquares(xr, cols) / Float(cols) + eps).squareRoot()
                var dotProduct: Float = 0
                for c in 0..<cols {
                    dotProduct += gr[c] * wp[c] * xr[c]
                    dwp[c] += gr[c] * xr[c] * r
                }
                let k = r * r * r / Float(cols) * dotProduct
                for c in 0..<cols { dxr[c] = r * gr[c] * wp[c] - xr[c] * k }
            }
            return [dx, dw.reshaped(weight.shape)]
        }
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let x = contiguous(), out = Tensor(uninitialized: shape), rows = rowCount, cols = shape.last ?? 1
        RowKernels.softmax(x.floatPointer, out.floatPointer, rows: rows, cols: cols)
        return Autograd.record(out, inputs: [self]) { g in
            // ∂x = y ⊙ (∂y − Σ ∂y⊙y), row by row.
            let gs = g.contiguous(), dx = Tensor(uninitialized: out.shape)
            for row in 0..<rows {
                let y = out.floatPointer + row * cols, gr = gs.floatPointer + row * cols, d = dx.floatPointer + row * cols
                let s = AttentionKernel.dot(y, gr, cols)
                for c in 0..<cols { d[c] = y[c] * (gr[c] - s) }
            }
            return [dx]
        }
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let x = contiguous(), out = Tensor(uninitialized: shape), rows = rowCount, cols = shape.last ?? 1
        RowKernels.logSoftmax(x.floatPointer, out.floatPointer, rows: rows, cols: cols)
        return Autograd.record(out, inputs: [self]) { g in
            // ∂x = ∂y − softmax(x)·Σ ∂y, row by row.
            let gs = g.contiguous(), dx = Tensor(uninitialized: out.shape)
            for row in 0..<rows {
                let y = out.floatPointer + row * cols, gr = gs.floatPointer + row * cols, d = dx.floatPointer + row * cols
                var s: Float = 0
                for c in 0..<cols { s += gr[c] }
                for c in 0..<cols { d[c] = gr[c] - FastMath.exp(y[c]) * s }
            }
            return [dx]
        }
    }

    /// Row `i` of a tensor `[rows, n]` as values (convenience for sampling and tests).
    public func row(_ i: Int) -> [Float] {
        let cols = shape.last ?? 1
        return Array(contiguous().reshaped([rowCount, cols]).slice(i..<(i + 1)).floats)
    }
}
