/// Operations that know about token positions: embedding lookup, rotary embedding, attention.
extension Tensor {
    /// Rows `ids` of an embedding table `[vocab, dim]` (any float dtype) as f32 `[ids.count, dim]`.
    public static func embedding(_ table: Tensor, ids: [Int]) -> Tensor {
        precondition(table.rank == 2 && table.isContiguous, "embedding needs a contiguous 2-D table, got \(table.shape)")
        let vocab = table.shape[0], dim = table.shape[1]
        let out = Tensor(uninitialized: [ids.count, dim])
        Gather.rows(table: table.rawPointer, dtype: table.dtype, vocab: vocab, dim: dim, ids: ids, out: out.floatPointer)
        return Autograd.record(out, inputs: [table]) { g in
            // ∂L/∂table[id] = Σ over the tokens t with ids[t] = id of ∂L/∂out[t].
            let g = g.contiguous(), grad = Tensor(zeros: [vocab, dim])
            for (t, id) in ids.enumerated() {
                Elementwise.addScaledSerial(g.floatPointer + t * dim, by: 1, into: grad.floatPointer + id * dim, count: dim)
            }
            return [grad]
        }
    }

    /// Rotary embedding of `[T, heads, headDim]` (or `[T, heads·headDim]`) activations whose
    /// token t sits at position `positionOffset + t`; the first `frequencies.rotaryDim` dims of
    /// each head rotate (see `RoPE.apply`).
    public func rope(
        heads: Int, headDim: Int, frequencies: RoPE.Frequencies, positionOffset: Int, style: RoPE.Style = .halfSplit
    ) -> Tensor {
        precondition(count % (heads * headDim) == 0, "rope: \(shape) is not a whole number of \(heads)×\(headDim) heads")
        let out = detached().converted(to: .f32)
        let tokens = count / (heads * headDim)
        RoPE.apply(
            out.floatPointer, tokens: tokens, heads: heads, headDim: headDim, frequencies: frequencies,
            positionOffset: positionOffset, style: style)
        let shape = self.shape
        return Autograd.record(out, inputs: [self]) { g in
            let grad = g.converted(to: .f32).reshaped(shape)
            RoPE.apply(
                grad.floatPointer, tokens: tokens, heads: heads, headDim: headDim, frequencies: frequencies,
                positionOffset: positionOffset, style: style, inverse: true)
            return [grad]
        }
    }

    /// `rope` with plain frequencies base^(−2i/d) over the first `rotaryDim` (even) dims of each
    /// head, all of them when nil.
    public func rope(
        heads: Int, headDim: Int, rotaryDim: Int? = nil, positionOffset: Int, base: Float,
        style: RoPE.Style = .halfSplit
    ) -> Tensor {
        let d = rotaryDim ?? headDim
        precondition(d % 2 == 0 && d <= headDim, "rotary dimension \(d) must be even and ≤ head dimension \(headDim)")
        return rope(
            heads: heads, headDim: headDim, frequencies: RoPE.Frequencies(base: base, rotaryDim: d), positionOffset: positionOffset,
            style: style)
    }

    /// Scaled dot-product attention with grouped-query heads and a causal (optionally
    /// sliding-window) mask:
    ///
    ///     out[t, h] = Σ_s softmax_s(scale · q[t, h] · k[s, g(h)]) · v[s, g(h)],   g(h) = h / (H / G)
    ///
    /// `query` is `[T, H, Dk]`, `key` `[S, G, Dk]`, `value` `[S, G, Dv]`; trailing axes may be
    /// merged (`[T, H·Dk]`), but the first axis of `query` must be T. Query t sits at position `queryOffset + t`, key s at `keyOffset + s`;
    /// key s is visible to query t when its position is ≤ the query's and, with a `window`,
    /// when the query's position minus its own is < window. Returns `[T, H·Dv]`.
    ///
    /// `sinks` `[H]`, when given, adds exp(sinks[h]) to head h's softmax denominator, so a head
    /// can attend to nothing (gpt-oss's attention sinks); the sinks are constants for gradients.
    public static func attention(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, kvHeads: Int,
        queryOffset: Int, keyOffset: Int = 0, window: Int? = nil, scale: Float, sinks: Tensor? = nil
    ) -> Tensor {
        precondition(heads % kvHeads == 0, "attention: \(heads) query heads are not a multiple of \(kvHeads) KV heads")
        let q = query.contiguous(), k = key.contiguous(), v = value.contiguous()
        let headDim = q.count / max(1, q.shape[0] * heads)
        let tokens = q.count / (heads * headDim)
        let keys = headDim == 0 ? 0 : k.count / (kvHeads * headDim)
        let valueDim = keys == 0 ? 0 : v.count / (keys * kvHeads)
        precondition(
            k.count == keys * kvHeads * headDim && v.count == keys * kvHeads * valueDim,
            "attention: key \(key.shape) / value \(value.shape) do not fit \(kvHeads) heads of \(headDim)")
        let out = Tensor(uninitialized: [tokens, heads * valueDim])
        let geometry = AttentionKernel.Geometry(
            tokens: tokens, keys: keys, heads: heads, kvHeads: kvHeads, headDim: headDim,
            valueDim: valueDim, queryOffset: queryOffset, keyOffset: keyOffset,
            window: window, scale: scale, sinks: sinks?.floats)
        precondition(sinks.map { $0.count == heads } ?? true, "attention: \(sinks?.count ?? 0) sinks for \(heads) heads")
        let shapes = (query.shape, key.shape, value.shape)
        // Few queries (decoding): one dot product per visible key. Many: matrix products per head.
        if tokens < BatchedAttention.minimumQueries {
            AttentionKernel.run(q: q.floatPointer, k: k.floatPointer, v: v.floatPointer, out: out.floatPointer, geometry)
            return Autograd.record(out, inputs: [query, key, value]) { g in
                let dq = Tensor(zeros: shapes.0), dk = Tensor(zeros: shapes.1), dv = Tensor(zeros: shapes.2)
                AttentionKernel.backward(
                    q: q.floatPointer, k: k.floatPointer, v: v.floatPointer, dOut: g.contiguous().floatPointer,
                    dq: dq.floatPointer, dk: dk.floatPointer, dv: dv.floatPointer, geometry)
                return [dq, dk, dv]
            }
        }
        let probabilities = BatchedAttention.forward(
            q: q.floatPointer, k: k.floatPointer, v: v.floatPointer, out: out.floatPointer, geometry)
        return Autograd.record(out, inputs: [query, key, value]) { g in
            let dq = Tensor(zeros: shapes.0), dk = Tensor(zeros: shapes.1), dv = Tensor(zeros: shapes.2)
            BatchedAttention.backward(
                q: q.floatPointer, k: k.floatPointer, v: v.floatPointer, probabilities: probabilities,
                dOut: g.contiguous().floatPointer, dq: dq.floatPointer, dk: dk.floatPointer,
                dv: dv.floatPointer, geometry)
            return [dq, dk, dv]
        }
    }
}
