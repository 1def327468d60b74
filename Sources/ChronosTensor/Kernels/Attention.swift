/// Causal attention for one batch of queries against a run of keys, one (query, head) pair
/// per task on the thread pool.
public enum AttentionKernel {
    /// Sizes, positions and mask of one attention call.
    public struct Geometry: Sendable {
        /// Queries T, keys S, query heads H, key/value heads G, q·k width D and value width Dv.
        public let tokens, keys, heads, kvHeads, headDim, valueDim: Int
        /// Position of the first query and of the first key.
        public let queryOffset, keyOffset: Int
        /// Sliding-window length, if any.
        public let window: Int?
        /// Multiplier of q·k before the softmax.
        public let scale: Float

        /// Describes one call; see `Tensor.attention` for the meaning of each field.
        public init(tokens: Int, keys: Int, heads: Int, kvHeads: Int, headDim: Int, valueDim: Int,
                    queryOffset: Int, keyOffset: Int, window: Int?, scale: Float) {
            self.tokens = tokens
            self.keys = keys
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
            self.valueDim = valueDim
            self.queryOffset = queryOffset
            self.keyOffset = keyOffset
            self.window = window
            self.scale = scale
        }

        /// The range of key indices query `t` may see (empty when none).
        func visibleKeys(_ t: Int) -> ClosedRange<Int>? {
            let position = queryOffset + t
            // Visible key positions: (position − window, position], clipped to the keys held.
            let firstPosition = window.map { position - $0 + 1 } ?? Int.min
            let first = max(0, firstPosition - keyOffset)
            let last = min(keys - 1, position - keyOffset)
            return first <= last ? first...last : nil
        }
    }

    /// out[t, h, :] = Σ_s p[t, h, s] · v[s, g(h), :] with p = softmax over visible keys of
    /// scale · q[t, h, :] · k[s, g(h), :]. Layouts: q `[T, H, D]`, k `[S, G, D]`, v `[S, G, Dv]`,
    /// out `[T, H, Dv]`. A query that sees no key gets zeros.
    public static func run(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                           out: UnsafeMutablePointer<Float>, _ shape: Geometry) {
        let group = shape.heads / shape.kvHeads
        ThreadPool.shared.parallelFor(shape.tokens * shape.heads) { task in
            let t = task / shape.heads, h = task % shape.heads, g = h / group
            let o = out + (t * shape.heads + h) * shape.valueDim
            o.update(repeating: 0, count: shape.valueDim)
            guard let visible = shape.visibleKeys(t) else { return }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: visible.count) { scores in
                let p = scores.baseAddress!
                probabilities(q: q, k: k, t: t, h: h, g: g, visible: visible, shape, into: p)
                for s in visible {
                    Elementwise.addScaledSerial(v + (s * shape.kvHeads + g) * shape.valueDim, by: p[s - visible.lowerBound],
                                                into: o, count: shape.valueDim)
                }
            }
        }
    }

    /// Gradients of `run` given ∂L/∂out, recomputing the probabilities:
    ///
    ///     dv[s] += p[s]·dout,  dp[s] = dout·v[s],  ds = p ⊙ (dp − Σ p·dp),
    ///     dq += scale·Σ_s ds[s]·k[s],  dk[s] += scale·ds[s]·q
    ///
    /// Query heads run in parallel per key/value head group, so each task owns the rows of dk
    /// and dv it writes. dq, dk and dv must start zeroed.
    public static func backward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                dOut: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                                dv: UnsafeMutablePointer<Float>, _ shape: Geometry) {
        let group = shape.heads / shape.kvHeads
        ThreadPool.shared.parallelFor(shape.kvHeads) { g in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * max(shape.keys, 1)) { scratch in
                let p = scratch.baseAddress!, dp = p + shape.keys
                for t in 0..<shape.tokens {
                    guard let visible = shape.visibleKeys(t) else { continue }
                    for h in (g * group)..<((g + 1) * group) {
                        probabilities(q: q, k: k, t: t, h: h, g: g, visible: visible, shape, into: p)
                        let row = (t * shape.heads + h)
                        let dO = dOut + row * shape.valueDim
                        var weighted: Float = 0
                        for s in visible {
                            let i = s - visible.lowerBound
                            dp[i] = dot(dO, v + (s * shape.kvHeads + g) * shape.valueDim, shape.valueDim)
                            weighted += p[i] * dp[i]
                            Elementwise.addScaledSerial(dO, by: p[i], into: dv + (s * shape.kvHeads + g) * shape.valueDim,
                                                        count: shape.valueDim)
                        }
                        let qv = q + row * shape.headDim, dqv = dq + row * shape.headDim
                        for s in visible {
                            let i = s - visible.lowerBound
                            let ds = shape.scale * p[i] * (dp[i] - weighted)
                            let kRow = (s * shape.kvHeads + g) * shape.headDim
                            Elementwise.addScaledSerial(k + kRow, by: ds, into: dqv, count: shape.headDim)
                            Elementwise.addScaledSerial(qv, by: ds, into: dk + kRow, count: shape.headDim)
                        }
                    }
                }
            }
        }
    }

    /// p[s − first] = softmax over visible s of scale · q[t, h] · k[s, g].
    @inline(__always)
    static func probabilities(q: UnsafePointer<Float>, k: UnsafePointer<Float>, t: Int, h: Int, g: Int,
                              visible: ClosedRange<Int>, _ shape: Geometry, into p: UnsafeMutablePointer<Float>) {
        let qv = q + (t * shape.heads + h) * shape.headDim
        for s in visible {
            p[s - visible.lowerBound] = shape.scale * dot(qv, k + (s * shape.kvHeads + g) * shape.headDim, shape.headDim)
        }
        RowKernels.softmax(p, p, rows: 1, cols: visible.count)
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
