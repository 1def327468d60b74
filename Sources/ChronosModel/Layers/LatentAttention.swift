import ChronosTensor

/// Multi-head latent attention (MLA, DeepSeek-V2) without query compression: keys and values
/// of every head are projected up from one small latent per position, which is all the cache
/// keeps, plus one RoPE key shared by all heads.
///
/// For H heads of no-RoPE width d (`headDim`), RoPE width r (`ropeDim`) and latent width l:
///
///     [q_rope,h ; q_nope,h] = W_q · x           per head h: r then d values; q_rope rotated
///     c      = RMSNorm(W_dkv · x)               [l]: the compressed latent
///     k_rope = RoPE(W_kr · x)                   [r]: one decoupled RoPE key for all heads
///     k_h    = [k_rope ; W_uk,h · c],  v_h = W_uv,h · c
///     out    = W_o · concat_h softmax(q_h · k_hᵀ / √(d + r)) · v_h
///
/// It is computed in the weight-absorbed form, so no per-position key or value is ever
/// materialised: q_nope,h · (W_uk,h c) = (W_uk,hᵀ q_nope,h) · c and Σ_s p_s W_uv,h c_s =
/// W_uv,h Σ_s p_s c_s. Each head attends with the query [q_rope,h ; W_uk,hᵀ q_nope,h] over the
/// cached rows [k_rope ; c] (one key/value head shared by all query heads), and the latent part
/// of its output is projected up by W_uv,h. The scores and outputs equal the expanded form.
struct LatentAttention: Sendable {
    let heads: Int
    /// No-RoPE width d of each head's query and key, and width of each head's value.
    let headDim: Int
    /// Width r of the decoupled RoPE part of queries and of the shared RoPE key.
    let ropeDim: Int
    /// Width l of the compressed latent.
    let latentDim: Int
    /// W_q `[H·(r + d), hidden]`, per head the RoPE rows first.
    let query: Linear
    /// W_dkv `[l, hidden]`.
    let latentDown: Linear
    /// RMSNorm weight of the latent `[l]`.
    let latentNorm: Tensor
    /// W_kr `[r, hidden]`.
    let ropeKey: Linear
    /// W_uk `[H·d, l]`: head h's rows h·d ..< (h+1)·d.
    let keyUp: Tensor
    /// W_uv `[H·d, l]`: head h's rows h·d ..< (h+1)·d.
    let valueUp: Tensor
    /// W_o `[hidden, H·d]`.
    let output: Linear
    let normEps: Float
    let ropeTheta: Float

    /// `[T, hidden]` at positions `cache.offset…` → `[T, hidden]`, appending this call's latents
    /// and RoPE keys to `cache` (a `LatentKVCache`, or any cache, which then holds them as keys
    /// and values).
    func callAsFunction(_ x: Tensor, cache: any KVCache) -> Tensor {
        let tokens = x.shape[0], offset = cache.offset
        let queryWidth = ropeDim + headDim, rowWidth = ropeDim + latentDim

        // Queries: rotate each head's RoPE part, absorb W_uk into its no-RoPE part.
        let q = query(x).rope(heads: heads, headDim: queryWidth, rotaryDim: ropeDim, positionOffset: offset, base: ropeTheta)
            .reshaped([tokens, heads * queryWidth])
        var parts: [Tensor] = []
        for h in 0..<heads {
            let base = h * queryWidth
            let keyUpHead = keyUp.slice((h * headDim)..<((h + 1) * headDim))  // [d, l]
            parts.append(q.slice(base..<(base + ropeDim), axis: 1))
            parts.append(Tensor.matmul(q.slice((base + ropeDim)..<(base + queryWidth), axis: 1), keyUpHead))
        }
        let absorbedQuery = Tensor.concatenate(parts, axis: 1)  // [T, H·(r + l)]

        // Cached rows [k_rope ; c] of every position so far.
        let latent = latentDown(x).rmsNorm(weight: latentNorm, eps: normEps)  // [T, l]
        let key = ropeKey(x).rope(heads: 1, headDim: ropeDim, positionOffset: offset, base: ropeTheta)  // [T, r]
        let rows: Tensor
        if let latentCache = cache as? LatentKVCache {
            rows = latentCache.append(Tensor.concatenate([key, latent], axis: 1))
        } else {
            let (keys, latents) = cache.update(keys: key, values: latent)
            rows = Tensor.concatenate([keys, latents], axis: 1)
        }

        let attended = Tensor.attention(
            query: absorbedQuery, key: rows, value: rows, heads: heads, kvHeads: 1,
            queryOffset: offset, keyOffset: 0, window: nil,
            scale: 1 / Float(queryWidth).squareRoot())  // [T, H·(r + l)]
        var values: [Tensor] = []
        for h in 0..<heads {
            let base = h * rowWidth + ropeDim
            let valueUpHead = valueUp.slice((h * headDim)..<((h + 1) * headDim))  // [d, l]
            values.append(Tensor.linear(attended.slice(base..<(base + latentDim), axis: 1), weight: valueUpHead))
        }
        return output(heads == 1 ? values[0] : Tensor.concatenate(values, axis: 1))
    }
}
