import Foundation

/// Row-wise kernels over a contiguous `[rows × cols]` f32 matrix: RMSNorm, softmax and
/// log-softmax. `out` may alias `x`. Rows are split across the pool when there is enough work.
public enum RowKernels {
    typealias V = SIMD8<Float>

    /// RMSNorm: out[r, c] = x[r, c] / √(mean_c x[r, c]² + ε) · w[c]
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        rows: Int, cols: Int, eps: Float
    ) {
        forEachRow(rows: rows, cols: cols) { r in
            let xr = x + r * cols, orow = out + r * cols
            let inv = 1 / (sumOfSquares(xr, cols) / Float(cols) + eps).squareRoot()
            let rx = UnsafeRawPointer(xr), rw = UnsafeRawPointer(weight), ro = UnsafeMutableRawPointer(orow)
            var c = 0
            while c + 8 <= cols {
                let v = rx.loadUnaligned(fromByteOffset: c * 4, as: V.self) * inv * rw.loadUnaligned(fromByteOffset: c * 4, as: V.self)
                ro.storeBytes(of: v, toByteOffset: c * 4, as: V.self)
                c += 8
            }
            while c < cols {
                orow[c] = xr[c] * inv * weight[c]
                c += 1
            }
        }
    }

    /// Softmax per row, stabilised by the row maximum: out[r, c] = e^(x[r,c] − m_r) / Σ_c' e^(x[r,c'] − m_r).
    /// A row of all −∞ becomes all zeros.
    public static func softmax(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        forEachRow(rows: rows, cols: cols) { r in
            let xr = x + r * cols, orow = out + r * cols
            let m = maximum(xr, cols)
            if m == -.infinity {
                orow.update(repeating: 0, count: cols)
                return
            }
            let total = expShifted(xr, orow, cols, shift: m)
            let inv = 1 / total
            scaleInPlace(orow, cols, inv)
        }
    }

    /// Log-softmax per row: out[r, c] = x[r, c] − m_r − log Σ_c' e^(x[r,c'] − m_r).
    public static func logSoftmax(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        forEachRow(rows: rows, cols: cols) { r in
            let xr = x + r * cols, orow = out + r * cols
            let m = maximum(xr, cols)
            let shift = m + logSumExpShifted(xr, cols, shift: m)
            for c in 0..<cols { orow[c] = xr[c] - shift }
        }
    }

    /// log Σ_c e^(x[c] − shift) for one row, without writing anything.
    static func logSumExpShifted(_ x: UnsafePointer<Float>, _ cols: Int, shift: Float) -> Float {
        let rx = UnsafeRawPointer(x)
        let s = V(repeating: shift)
        var acc = V()
        var c = 0
        while c + 8 <= cols {
            acc += FastMath.exp(rx.loadUnaligned(fromByteOffset: c * 4, as: V.self) - s)
            c += 8
        }
        var total = acc.sum()
        while c < cols {
            total += FastMath.exp(x[c] - shift)
            c += 1
        }
        return log(total)
    }

    /// out[c] = e^(x[c] − shift); returns Σ out.
    static func expShifted(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ cols: Int, shift: Float) -> Float {
        let rx = UnsafeRawPointer(x), ro = UnsafeMutableRawPointer(out)
        let s = V(repeating: shift)
        var acc = V()
        var c = 0
        while c + 8 <= cols {
            let e = FastMath.exp(rx.loadUnaligned(fromByteOffset: c * 4, as: V.self) - s)
            ro.storeBytes(of: e, toByteOffset: c * 4, as: V.self)
            acc += e
            c += 8
        }
        var total = acc.sum()
        while c < cols {
            out[c] = FastMath.exp(x[c] - shift)
            total += out[c]
            c += 1
        }
        return total
    }

    /// The largest of `count` values (−∞ for none).
    static func maximum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        let rx = UnsafeRawPointer(x)
        var acc = V(repeating: -.infinity)
        var c = 0
        while c + 8 <= count {
            let v = rx.loadUnaligned(fromByteOffset: c * 4, as: V.self)
            acc.replace(with: v, where: v .> acc)  // a compare and a blend on every vector unit
            c += 8
        }
        var m = acc.max()
        while c < count {
            m = max(m, x[c])
            c += 1
        }
        return m
    }

    static func sumOfSquares(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        let rx = UnsafeRawPointer(x)
        var acc = V()
        var c = 0
        while c + 8 <= count {
            let v = rx.loadUnaligned(fromByteOffset: c * 4, as: V.self)
            acc.formMulAdd(v, v)
            c += 8
        }
        var s = acc.sum()
        while c < count {
            s += x[c] * x[c]
            c += 1
        }
        return s
    }

    static func scaleInPlace(_ x: UnsafeMutablePointer<Float>, _ count: Int, _ s: Float) {
        let rx = UnsafeMutableRawPointer(x)
        var c = 0
        while c + 8 <= count {
            rx.storeBytes(of: rx.loadUnaligned(fromByteOffset: c * 4, as: V.self) * s, toByteOffset: c * 4, as: V.self)
            c += 8
        }
        while c < count {
            x[c] *= s
            c += 1
        }
    }

    /// Runs `body(row)` for every row, in parallel when rows × cols is large enough to pay.
    static func forEachRow(rows: Int, cols: Int, _ body: (Int) -> Void) {
        let minRows = max(1, (1 << 14) / max(cols, 1))
        ThreadPool.shared.parallelChunks(rows, minChunk: minRows) { range in
            for r in range { body(r) }
        }
    }
}
