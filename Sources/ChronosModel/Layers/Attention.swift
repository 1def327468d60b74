import ChronosTensor

/// Causal self-attention with grouped-query heads, rotary positions, an optional sliding window
/// and an optional RMSNorm of queries and keys:
///
///     q = RoPE(norm(W_q·x + b_q)),  k = RoPE(norm(W_k·x + b_k)),  v = W_v·x + b_v
///     out = W_o · softmax(q·kᵀ / √d + causal mask) · v
///
/// With sinks (gpt-oss), head h's softmax denominator also holds exp(sinks[h]).
struct Attention: Sendable {
    /// RMSNorm of queries and keys, where the family has one.
    enum QueryKeyNorm: Sendable {
        case none
        /// Weights of `headDim`, applied to each head separately (Qwen3-MoE).
        case perHead(query: Tensor, key: Tensor)
        /// Weights of `heads·headDim` and `kvHeads·headDim`, applied to the whole projection (OLMoE).
        case acrossHeads(query: Tensor, key: Tensor)
    }

    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let query: Linear
    let key: Linear
    let value: Linear
    let output: Linear
    let queryKeyNorm: QueryKeyNorm
    let normEps: Float
    /// The rotary frequencies of the whole head.
    let rope: RoPE.Frequencies
    /// Keys further back than this many positions are masked (nil: none are).
    let window: Int?
    /// One learned logit per query head in the softmax denominator (nil: none).
    var sinks: Tensor? = nil

    /// `[T, hidden]` at positions `cache.offset…` → `[T, hidden]`, appending this call's keys
    /// and values to `cache`. Positions are absolute, so RoPE keeps advancing after a sliding
    /// window fills; a cache that drops positions outside the window says where the keys it
    /// returns start (`firstRetainedPosition`).
    func callAsFunction(_ x: Tensor, cache: any KVCache) -> Tensor {
        let tokens = x.shape[0], offset = cache.offset, keyOffset = cache.firstRetainedPosition
        var q = query(x), k = key(x)
        let v = value(x)
        switch queryKeyNorm {
        case .none:
            break
        case .perHead(let queryWeight, let keyWeight):
            // Qwen3-MoE normalises each head's headDim values on their own.
            q = q.reshaped([tokens, heads, headDim]).rmsNorm(weight: queryWeight, eps: normEps)
            k = k.reshaped([tokens, kvHeads, headDim]).rmsNorm(weight: keyWeight, eps: normEps)
        case .acrossHeads(let queryWeight, let keyWeight):
            // OLMoE normalises the whole projection, all heads together.
            q = q.rmsNorm(weight: queryWeight, eps: normEps)
            k = k.rmsNorm(weight: keyWeight, eps: normEps)
        }
        q = q.rope(heads: heads, headDim: headDim, frequencies: rope, positionOffset: offset)
        k = k.rope(heads: kvHeads, headDim: headDim, frequencies: rope, positionOffset: offset)
        let (keys, values) = cache.update(keys: k, values: v)
        let attended = Tensor.attention(
            query: q, key: keys, value: values, heads: heads, kvHeads: kvHeads,
            queryOffset: offset, keyOffset: keyOffset, window: window,
            scale: 1 / Float(headDim).squareRoot(), sinks: sinks)
        return output(attended)
    }
}
