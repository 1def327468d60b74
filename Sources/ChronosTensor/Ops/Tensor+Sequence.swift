/// Operations that know about token positions: embedding lookup, rotary embedding, attention.
extension Tensor {
    /// Rows `ids` of an embedding table `[vocab, dim]` (any float dtype) as f32 `[ids.count, dim]`.
    public static func embedding(_ table: Tensor, ids: [Int]) -> Tensor {
        precondition(table.rank == 2 && table.isContiguous, "embedding needs a contiguous 2-D table, got \(table.shape)")
        let out = Tensor(zeros: [ids.count, table.shape[1]])
        Gather.rows(table: table.rawPointer, dtype: table.dtype, vocab: table.shape[0], dim: table.shape[1], ids: ids,
                    out: out.floatPointer)
        return out
    }

    /// Rotary embedding of `[T, heads, headDim]` (or `[T, heads·headDim]`) activations whose
    /// token t sits at position `positionOffset + t`; the first `rotaryDim` dims of each head rotate.
    public func rope(heads: Int, headDim: Int, rotaryDim: Int? = nil, positionOffset: Int, base: Float,
                     style: RoPE.Style = .halfSplit) -> Tensor {
        precondition(count % (heads * headDim) == 0, "rope: \(shape) is not a whole number of \(heads)×\(headDim) heads")
        let out = copy()
        RoPE.apply(out.floatPointer, tokens: count / (heads * headDim), heads: heads, headDim: headDim,
                   rotaryDim: rotaryDim, positionOffset: positionOffset, base: base, style: style)
        return out
    }

    /// Scaled dot-product attention with grouped-query heads and a causal (optionally
    /// sliding-window) mask:
    ///
    ///     out[t, h] = Σ_s softmax_s(scale · q[t, h] · k[s, g(h)]) · v[s, g(h)],   g(h) = h / (H / G)
    ///
    /// `query` is `[T, H, Dk]`, `key` `[S, G, Dk]`, `value` `[S, G, Dv]` (any shapes with those
    /// element counts). Query t sits at position `queryOffset + t`, key s at `keyOffset + s`;
    /// key s is visible to query t when its position is ≤ the query's and, with a `window`,
    /// when the query's position minus its own is < window. Returns `[T, H·Dv]`.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, kvHeads: Int,
                                 queryOffset: Int, keyOffset: Int = 0, window: Int? = nil, scale: Float) -> Tensor {
        precondition(heads % kvHeads == 0, "attention: \(heads) query heads are not a multiple of \(kvHeads) KV heads")
        let q = query.contiguous(), k = key.contiguous(), v = value.contiguous()
        let headDim = q.count / max(1, q.shape[0] * heads)
        let tokens = q.count / (heads * headDim)
        let keys = headDim == 0 ? 0 : k.count / (kvHeads * headDim)
        let valueDim = keys == 0 ? 0 : v.count / (keys * kvHeads)
        precondition(k.count == keys * kvHeads * headDim && v.count == keys * kvHeads * valueDim,
                     "attention: key \(key.shape) / value \(value.shape) do not fit \(kvHeads) heads of \(headDim)")
        let out = Tensor(zeros: [tokens, heads * valueDim])
        AttentionKernel.run(q: q.floatPointer, k: k.floatPointer, v: v.floatPointer, out: out.floatPointer,
                            tokens: tokens, keys: keys, heads: heads, kvHeads: kvHeads, headDim: headDim, valueDim: valueDim,
                            queryOffset: queryOffset, keyOffset: keyOffset, window: window, scale: scale)
        return out
    }
}
