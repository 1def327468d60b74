import ChronosTensor

/// Multi-head latent attention (MLA, DeepSeek-V2): keys and values of every head are projected
/// up from one small latent per position, which is all the cache keeps, plus one RoPE key
/// shared by all heads.
///
/// For H heads of no-RoPE query/key width d (`headDim`), value width v (`valueDim`), RoPE width
/// r (`ropeDim`) and latent width l:
///
///     q       = W_q · x,  or W_qb · RMSNorm(W_qa · x) with a query latent (DeepSeek's q_lora_rank)
///     q_h     = [q_nope,h (d) ; q_rope,h (r)]        the order of the parts as the checkpoint lays them out
///     c       = RMSNorm(W_dkv · x)                   [l]: the compressed latent
///     k_rope  = RoPE(W_kr · x)                       [r]: one decoupled RoPE key for all heads
///     k_h     = [W_uk,h · c ; k_rope],  v_h = W_uv,h · c
///     out     = W_o · concat_h softmax(s · q_h · k_hᵀ) · v_h,   s = `scale`
///
/// It is computed in the weight-absorbed form, so no per-position key or value is ever
/// materialised: q_nope,h · (W_uk,h c) = (W_uk,hᵀ q_nope,h) · c and Σ_s p_s W_uv,h c_s =
/// W_uv,h Σ_s p_s c_s. Each head attends with the query [RoPE(q_rope,h) ; W_uk,hᵀ q_nope,h]
/// over the cached rows [k_rope ; c] (one key/value head shared by all query heads), and the
/// latent part of its output is projected up by W_uv,h. The scores and outputs equal the
/// expanded form.
struct LatentAttention: Sendable {
    /// How queries are projected from the layer input.
    enum QueryProjection: Sendable {
        /// W_q `[H·(d + r), hidden]`.
        case direct(Linear)
        /// W_qa `[q_l, hidden]`, the RMSNorm weight `[q_l]` of that query latent, and W_qb `[H·(d + r), q_l]`.
        case lowRank(down: Linear, norm: Tensor, up: Linear)
    }

    /// Where each head's RoPE part sits among its d + r query values.
    enum QueryLayout: Sendable {
        /// r RoPE values, then d (Chronos).
        case ropeFirst
        /// d values, then r RoPE values (DeepSeek).
        case ropeLast
    }

    /// W_uk or W_uv: head h's `width` rows start at row h·`stride` + `offset` of `weight`, so one
    /// tensor may hold both (DeepSeek's kv_b_proj, per head its key rows then its value rows).
    struct UpProjection: Sendable {
        let weight: Tensor
        let width: Int
        let stride: Int
        let offset: Int

        /// Head `h`'s rows `[width, l]`.
        func head(_ h: Int) -> Tensor {
            let first = h * stride + offset
            return weight.slice(first..<(first + width))
        }
    }

    let heads: Int
    /// No-RoPE width d of each head's query and key.
    let headDim: Int
    /// Width v of each head's value.
    let valueDim: Int
    /// Width r of the decoupled RoPE part of queries and of the shared RoPE key.
    let ropeDim: Int
    /// Width l of the compressed latent.
    let latentDim: Int
    let query: QueryProjection
    let queryLayout: QueryLayout
    /// W_dkv `[l, hidden]`.
    let latentDown: Linear
    /// RMSNorm weight of the latent `[l]`.
    let latentNorm: Tensor
    /// W_kr `[r, hidden]`.
    let ropeKey: Linear
    /// W_uk, f32 (the absorbed query is a matrix product).
    let keyUp: UpProjection
    /// W_uv.
    let valueUp: UpProjection
    /// W_o `[hidden, H·v]`.
    let output: Linear
    /// ε of the latent RMSNorms.
    let normEps: Float
    /// The rotary frequencies of the RoPE part.
    let rope: RoPE.Frequencies
    /// Which RoPE dimensions pair up (DeepSeek's checkpoints interleave them).
    let ropeStyle: RoPE.Style
    /// s, the factor on every score: 1/√(d + r), times YaRN's correction where the model has one.
    let scale: Float

    /// `[T, hidden]` → `[T, hidden]`, the rows of each of `sequences` at positions
    /// `cache.offset…` of that sequence, appending their latents and RoPE keys to its cache (a
    /// `LatentKVCache`, or any cache, which then holds them as keys and values). The projections
    /// run over all rows at once; RoPE, the cache and the scores per sequence.
    func callAsFunction(_ x: Tensor, sequences: [SequenceRows]) -> Tensor {
        let queryWidth = ropeDim + headDim, rowWidth = ropeDim + latentDim
        let q: Tensor
        switch query {
        case .direct(let projection): q = projection(x)
        case .lowRank(let down, let norm, let up): q = up(down(x).rmsNorm(weight: norm, eps: normEps))
        }
        let latent = latentDown(x).rmsNorm(weight: latentNorm, eps: normEps)  // [T, l]
        let unrotatedKey = ropeKey(x)  // [T, r]
        let (ropeStart, nopeStart) = queryLayout == .ropeFirst ? (0, ropeDim) : (headDim, 0)

        let attended = SequenceRows.map(sequences, over: [q, latent, unrotatedKey]) { parts, cache in
            let (q, latent) = (parts[0], parts[1])
            let tokens = q.shape[0], offset = cache.offset
            // Queries: rotate each head's RoPE part, absorb W_uk into its no-RoPE part.
            let ropeParts = (0..<heads).map { h in
                q.slice((h * queryWidth + ropeStart)..<(h * queryWidth + ropeStart + ropeDim), axis: 1)
            }
            let rotated = (heads == 1 ? ropeParts[0] : Tensor.concatenate(ropeParts, axis: 1))
                .rope(heads: heads, headDim: ropeDim, frequencies: rope, positionOffset: offset, style: ropeStyle)
                .reshaped([tokens, heads * ropeDim])
            var queryParts: [Tensor] = []
            for h in 0..<heads {
                let nope = q.slice((h * queryWidth + nopeStart)..<(h * queryWidth + nopeStart + headDim), axis: 1)
                queryParts.append(rotated.slice((h * ropeDim)..<((h + 1) * ropeDim), axis: 1))
                queryParts.append(Tensor.matmul(nope, keyUp.head(h)))
            }
            let absorbedQuery = Tensor.concatenate(queryParts, axis: 1)  // [T, H·(r + l)]

            // Cached rows [k_rope ; c] of every position so far.
            let key = parts[2].rope(heads: 1, headDim: ropeDim, frequencies: rope, positionOffset: offset, style: ropeStyle)
            let rows: Tensor
            if let latentCache = cache as? LatentKVCache {
                rows = latentCache.append(Tensor.concatenate([key, latent], axis: 1))
            } else {
                let (keys, latents) = cache.update(keys: key, values: latent)
                rows = Tensor.concatenate([keys, latents], axis: 1)
            }
            return Tensor.attention(
                query: absorbedQuery, key: rows, value: rows, heads: heads, kvHeads: 1,
                queryOffset: offset, keyOffset: 0, window: nil, scale: scale)  // [T, H·(r + l)]
        }
        var values: [Tensor] = []
        for h in 0..<heads {
            let base = h * rowWidth + ropeDim
            values.append(Tensor.linear(attended.slice(base..<(base + latentDim), axis: 1), weight: valueUp.head(h)))
        }
        return output(heads == 1 ? values[0] : Tensor.concatenate(values, axis: 1))
    }
}
