/// Causal attention for one batch of queries against a run of keys, one (query, head) pair
/// per task on the thread pool.
public enum AttentionKernel {
    /// out[t, h, :] = Σ_s p[t, h, s] · v[s, g(h), :] with p = softmax over visible keys of
    /// scale · q[t, h, :] · k[s, g(h), :]. Layouts: q `[T, H, D]`, k `[S, G, D]`, v `[S, G, Dv]`,
    /// out `[T, H, Dv]`. Visibility as in `Tensor.attention`. A query that sees no key gets zeros.
    public static func run(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                           out: UnsafeMutablePointer<Float>, tokens: Int, keys: Int, heads: Int, kvHeads: Int,
                           headDim: Int, valueDim: Int, queryOffset: Int, keyOffset: Int, window: Int?, scale: Float) {
        let group = heads / kvHeads
        ThreadPool.shared.parallelFor(tokens * heads) { task in
            let t = task / heads, h = task % heads, g = h / group
            let position = queryOffset + t
            // Visible key positions: (position − window, position], clipped to the keys held.
            let firstPosition = window.map { position - $0 + 1 } ?? Int.min
            let first = max(0, firstPosition - keyOffset)
            let last = min(keys - 1, position - keyOffset)
            let o = out + (t * heads + h) * valueDim
            o.update(repeating: 0, count: valueDim)
            if first > last { return }
            let qv = q + (t * heads + h) * headDim
            withUnsafeTemporaryAllocation(of: Float.self, capacity: last - first + 1) { scores in
                for s in first...last {
                    scores[s - first] = scale * dot(qv, k + (s * kvHeads + g) * headDim, headDim)
                }
                let p = scores.baseAddress!
                RowKernels.softmax(p, p, rows: 1, cols: scores.count)
                for s in first...last {
                    Elementwise.addScaledSerial(v + (s * kvHeads + g) * valueDim, by: p[s - first], into: o, count: valueDim)
                }
            }
        }
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            acc.addProduct(ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self),
                           rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
            i += 8
        }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }
}
