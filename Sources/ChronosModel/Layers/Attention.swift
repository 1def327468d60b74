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
    /// The rotary frequencies of each head's leading `rope.rotaryDim` dimensions, the whole head
    /// or (GLM-4.5) part of it, paired half-split within that part; the rest pass unrotated.
    let rope: RoPE.Frequencies
    /// Keys further back than this many positions are masked (nil: none are).
    let window: Int?
    /// One learned logit per query head in the softmax denominator (nil: none).
    var sinks: Tensor? = nil

    /// `[T, hidden]` → `[T, hidden]`, the rows of each of `sequences` at positions
    /// `cache.offset…` of that sequence, appending its keys and values to its cache. The
    /// projections run over all rows at once; RoPE, the cache and the scores per sequence.
    /// Positions are absolute, so RoPE keeps advancing after a sliding window fills; a cache that
    /// drops positions outside the window says where the keys it returns start
    /// (`firstRetainedPosition`).
    func callAsFunction(_ x: Tensor, sequences: [SequenceRows]) -> Tensor {
        let tokens = x.shape[0]
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
        let attended = SequenceRows.map(sequences, over: [q, k, v]) { parts, cache in
            let offset = cache.offset, keyOffset = cache.firstRetainedPosition
            let q = parts[0].rope(heads: heads, headDim: headDim, frequencies: rope, positionOffset: offset)
            let k = parts[1].rope(heads: kvHeads, headDim: headDim, frequencies: rope, positionOffset: offset)
            let (keys, values) = cache.update(keys: k, values: parts[2])
            return Tensor.attention(
                query: q, key: keys, value: values, heads: heads, kvHeads: kvHeads,
                queryOffset: offset, keyOffset: keyOffset, window: window,
                scale: 1 / Float(headDim).squareRoot(), sinks: sinks)
        }
        return output(attended)
    }
}

/// The rows of a forward pass that belong to one sequence, and that sequence's cache of the
/// layer: a pass may run several sequences, each at its own positions.
struct SequenceRows {
    /// Rows of the pass's `[T, …]` tensors.
    let rows: Range<Int>
    /// The sequence's cache of this layer.
    let cache: any KVCache

    /// The results of `body` for each sequence (given its rows of each of `tensors`, and its
    /// cache) stacked into one `[T, …]` tensor. One sequence is handed the tensors as they are,
    /// so a single sequence's pass (training among them) runs exactly the unbatched ops.
    static func map(_ sequences: [SequenceRows], over tensors: [Tensor], _ body: ([Tensor], any KVCache) -> Tensor) -> Tensor {
        if sequences.count == 1 { return body(tensors, sequences[0].cache) }
        return Tensor.concatenate(sequences.map { s in body(tensors.map { $0.slice(s.rows) }, s.cache) }, axis: 0)
    }
}
