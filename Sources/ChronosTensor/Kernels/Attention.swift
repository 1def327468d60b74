import Foundation

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
        /// Per query head, a learned logit that joins the softmax's denominator only (gpt-oss's
        /// attention sinks); nil for none.
        public let sinks: [Float]?

        /// Describes one call; see `Tensor.attention` for the meaning of each field.
        public init(
            tokens: Int, keys: Int, heads: Int, kvHeads: Int, headDim: Int, valueDim: Int,
            queryOffset: Int, keyOffset: Int, window: Int?, scale: Float, sinks: [Float]? = nil
        ) {
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
            self.sinks = sinks
        }

        /// softmax over `count` scores at `p`, in place, with head `head`'s sink logit z in the
        /// denominator when there are sinks: p_s = exp(x_s) / (Σ_s' exp(x_s') + exp(z)).
        func softmax(_ p: UnsafeMutablePointer<Float>, count: Int, head: Int) {
            guard let sink = sinks?[head] else { return RowKernels.softmax(p, p, rows: 1, cols: count) }
            var largest = sink
            for s in 0..<count { largest = max(largest, p[s]) }
            var total = Foundation.exp(sink - largest)
            for s in 0..<count {
                p[s] = Foundation.exp(p[s] - largest)
                total += p[s]
            }
            for s in 0..<count { p[s] /= total }
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
    /// scale · q[t, h, :] · k[s, g(h), :] (with the head's sink in the denominator, if any). Layouts: q `[T, H, D]`, k `[S, G, D]`, v `[S, G, Dv]`,
    /// out `[T, H, Dv]`. A query that sees no key gets zeros.
    public static func run(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, _ shape: Geometry
    ) {
        let group = shape.heads / shape.kvHeads
        let tasks = shape.tokens * shape.heads
        let attend = { (task: Int) in
            let t = task / shape.heads, h = task % shape.heads, g = h / group
            let o = out + (t * shape.heads + h) * shape.valueDim
            o.update(repeating: 0, count: shape.valueDim)
            guard let visible = shape.visibleKeys(t) else { return }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: visible.count) { scores in
                let p = scores.baseAddress!
                probabilities(q: q, k: k, t: t, h: h, g: g, visible: visible, shape, into: p)
                for s in visible {
                    Elementwise.addScaledSerial(
                        v + (s * shape.kvHeads + g) * shape.valueDim, by: p[s - visible.lowerBound],
                        into: o, count: shape.valueDim)
                }
            }
        }
        // A short context's heads are a microsecond or two each: with less than two of the
        // pool's `minimumTaskWork` in all, handing some to a worker costs more than it saves.
        if tasks * shape.keys * (shape.headDim + shape.valueDim) < 2 * ThreadPool.minimumTaskWork {
            for task in 0..<tasks { attend(task) }
        } else {
            ThreadPool.shared.parallelFor(tasks, attend)
        }
    }

    /// Gradients of `run` given ∂L/∂out, recomputing the probabilities:
    ///
    ///     dv[s] += p[s]·dout,  dp[s] = dout·v[s],  ds = p ⊙ (dp − Σ p·dp),
    ///     dq += scale·Σ_s ds[s]·k[s],  dk[s] += scale·ds[s]·q
    ///
    /// Query heads run in parallel per key/value head group, so each task owns the rows of dk
    /// and dv it writes. dq, dk and dv must start zeroed.
    public static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        dOut: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, _ shape: Geometry
    ) {
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
                            Elementwise.addScaledSerial(
                                dO, by: p[i], into: dv + (s * shape.kvHeads + g) * shape.valueDim,
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
    static func probabilities(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, t: Int, h: Int, g: Int,
        visible: ClosedRange<Int>, _ shape: Geometry, into p: UnsafeMutablePointer<Float>
    ) {
        let qv = q + (t * shape.heads + h) * shape.headDim
        for s in visible {
            p[s - visible.lowerBound] = shape.scale * dot(qv, k + (s * shape.kvHeads + g) * shape.headDim, shape.headDim)
        }
        shape.softmax(p, count: visible.count, head: h)
    }

    /// Σ a[i] · b[i], with the instruction set's kernel where it has one.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        if let kernel = VectorKernels.dot { return kernel(a, b, n) }
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            acc.formMulAdd(
                ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self),
                rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
            i += 8
        }
        var s = acc.sum()
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }
}

/// Attention over many queries at once (prefill and training) as matrix products per head:
///
///     S_h = scale · Q_h·K_gᵀ (masked),  P_h = softmax(S_h),  O_h = P_h·V_g
///
/// Heads run in parallel; the GEMMs inside a head run serially (nested parallel regions do). The probabilities are kept for the backward
/// pass, which is again matrix products:
///
///     dV_g += P_hᵀ·dO_h,  dP = dO_h·V_gᵀ,  dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)),
///     dQ_h = dS·K_g,  dK_g += dSᵀ·Q_h
public enum BatchedAttention {
    /// Below this many queries the per-key kernel is used instead.
    public static let minimumQueries = 8

    /// Computes `out` `[T, H·Dv]` and returns the probabilities `[H, T, S]`.
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, _ shape: AttentionKernel.Geometry
    ) -> Tensor {
        let t = shape.tokens, s = shape.keys, d = shape.headDim, dv = shape.valueDim
        let h = shape.heads, g = shape.kvHeads, group = h / g
        let probabilities = Tensor(uninitialized: [h, t, max(s, 1)])
        let p0 = probabilities.floatPointer
        ThreadPool.shared.parallelFor(h) { head in
            let kv = head / group
            let p = p0 + head * t * s
            SwiftGemm.sgemm(
                transA: false, transB: true, m: t, n: s, k: d, alpha: shape.scale, a: q + head * d, lda: h * d,
                b: k + kv * d, ldb: g * d, beta: 0, c: p, ldc: s)
            for row in 0..<t {
                let r = p + row * s
                guard let visible = shape.visibleKeys(row) else {
                    r.update(repeating: 0, count: s)
                    continue
                }
                for c in 0..<visible.lowerBound { r[c] = 0 }
                for c in (visible.upperBound + 1)..<max(s, visible.upperBound + 1) { r[c] = 0 }
                shape.softmax(r + visible.lowerBound, count: visible.count, head: head)
            }
            SwiftGemm.sgemm(
                transA: false, transB: false, m: t, n: dv, k: s, alpha: 1, a: p, lda: s,
                b: v + kv * dv, ldb: g * dv, beta: 0, c: out + head * dv, ldc: h * dv)
        }
        return probabilities
    }

    /// Gradients of `forward` given ∂L/∂out and its probabilities; dq, dk, dv start zeroed.
    public static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        probabilities: Tensor, dOut: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
        dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>, _ shape: AttentionKernel.Geometry
    ) {
        let t = shape.tokens, s = shape.keys, d = shape.headDim, vd = shape.valueDim
        let h = shape.heads, g = shape.kvHeads, group = h / g
        // Each head writes its own dK/dV; they are summed per key/value head afterwards.
        let perHeadK = Tensor(uninitialized: [h, s, d]), perHeadV = Tensor(uninitialized: [h, s, vd])
        let scratch = Tensor(uninitialized: [h, t, max(s, 1)])
        let p0 = probabilities.floatPointer, hk = perHeadK.floatPointer, hv = perHeadV.floatPointer, ds0 = scratch.floatPointer
        ThreadPool.shared.parallelFor(h) { head in
            let kv = head / group
            let p = p0 + head * t * s, ds = ds0 + head * t * s, dO = dOut + head * vd
            SwiftGemm.sgemm(
                transA: true, transB: false, m: s, n: vd, k: t, alpha: 1, a: p, lda: s, b: dO, ldb: h * vd,
                beta: 0, c: hv + head * s * vd, ldc: vd)
            SwiftGemm.sgemm(
                transA: false, transB: true, m: t, n: s, k: vd, alpha: 1, a: dO, lda: h * vd, b: v + kv * vd,
                ldb: g * vd, beta: 0, c: ds, ldc: s)
            for row in 0..<t {
                let pr = p + row * s, dr = ds + row * s
                let weighted = AttentionKernel.dot(pr, dr, s)
                for c in 0..<s { dr[c] = shape.scale * pr[c] * (dr[c] - weighted) }
            }
            SwiftGemm.sgemm(
                transA: false, transB: false, m: t, n: d, k: s, alpha: 1, a: ds, lda: s, b: k + kv * d, ldb: g * d,
                beta: 0, c: dq + head * d, ldc: h * d)
            SwiftGemm.sgemm(
                transA: true, transB: false, m: s, n: d, k: t, alpha: 1, a: ds, lda: s, b: q + head * d, ldb: h * d,
                beta: 0, c: hk + head * s * d, ldc: d)
        }
        for head in 0..<h {
            let kv = head / group
            for row in 0..<s {
                Elementwise.addScaledSerial(hk + (head * s + row) * d, by: 1, into: dk + (row * g + kv) * d, count: d)
                Elementwise.addScaledSerial(hv + (head * s + row) * vd, by: 1, into: dv + (row * g + kv) * vd, count: vd)
            }
        }
    }
}
