import ChronosTensor

/// The cache of a multi-head latent attention (MLA) layer: per position, one row
/// `[k_rope ; c]` of the rotated decoupled RoPE key (`ropeDim`) and the compressed latent
/// (`latentDim`) that every head's key and value are projected up from.
///
/// That is `(ropeDim + latentDim)` floats a position for all heads together, against
/// `2 · heads · headDim` for a standard cache; `byteCount` reports what is allocated.
public final class LatentKVCache: KVCache {
    /// Width of the compressed latent c.
    public let latentDim: Int
    /// Width of the shared RoPE key.
    public let ropeDim: Int
    /// Rows added to the buffer each time it fills up.
    public let step: Int
    public private(set) var offset = 0
    /// `[capacity, ropeDim + latentDim]`.
    private var buffer: Tensor?

    /// An empty cache for latents of `latentDim` and RoPE keys of `ropeDim`.
    public init(latentDim: Int, ropeDim: Int, step: Int = 256) {
        precondition(latentDim > 0 && ropeDim >= 0 && step > 0, "latent cache: invalid sizes")
        self.latentDim = latentDim
        self.ropeDim = ropeDim
        self.step = step
    }

    /// Floats one position occupies.
    public var rowWidth: Int { ropeDim + latentDim }

    /// Bytes one position occupies (f32).
    public var bytesPerPosition: Int { rowWidth * 4 }

    /// Bytes of the buffer, including room reserved for positions not yet written.
    public var byteCount: Int { buffer?.byteCount ?? 0 }

    /// Appends rows `[k_rope ; c]` `[T, ropeDim + latentDim]` and returns every row held,
    /// `[offset, ropeDim + latentDim]` from position 0.
    ///
    /// The first call returns `rows` itself (a full-sequence forward keeps it in the gradient
    /// graph); while recording gradients, later calls return a copy that keeps the new rows in
    /// the graph.
    public func append(_ rows: Tensor) -> Tensor {
        let tokens = rows.shape.first ?? 0
        precondition(rows.count == tokens * rowWidth, "latent cache: rows \(rows.shape) are not \(rowWidth) wide")
        guard tokens > 0 else { return held(offset) }
        let earlier = offset
        reserve(earlier + tokens)
        StandardKVCache.write(rows, into: buffer!, at: earlier)
        offset += tokens
        if earlier == 0 { return rows }
        if Autograd.isRecording && rows.gradientNode != nil {
            return Tensor.concatenate([buffer!.slice(0..<earlier), rows.contiguous().reshaped([tokens, rowWidth])], axis: 0)
        }
        return held(offset)
    }

    /// `KVCache` form of `append`: `keys` are the rotated RoPE keys `[T, ropeDim]` and `values`
    /// the latents `[T, latentDim]`; returns views of every held RoPE key and latent.
    public func update(keys: Tensor, values: Tensor) -> (keys: Tensor, values: Tensor) {
        let tokens = keys.shape.first ?? 0
        precondition(values.shape.first == tokens, "cache update: keys \(keys.shape) and values \(values.shape) differ in tokens")
        if tokens > 0 {
            _ = append(
                Tensor.concatenate(
                    [
                        keys.contiguous().reshaped([tokens, ropeDim]),
                        values.contiguous().reshaped([tokens, latentDim])
                    ], axis: 1))
        }
        let rows = held(offset)
        return (rows.slice(0..<ropeDim, axis: 1), rows.slice(ropeDim..<rowWidth, axis: 1))
    }

    @discardableResult
    public func trim(_ count: Int) -> Int {
        let removed = min(max(count, 0), offset)
        offset -= removed
        return removed
    }

    /// A view of the first `count` rows.
    private func held(_ count: Int) -> Tensor {
        guard let buffer else { return Tensor(zeros: [0, rowWidth]) }
        return buffer.slice(0..<count)
    }

    /// Grows the buffer to at least `rows` rows, keeping what it holds.
    private func reserve(_ rows: Int) {
        if let buffer, rows <= buffer.shape[0] { return }
        let capacity = (rows + step - 1) / step * step
        let grown = Tensor(zeros: [capacity, rowWidth])
        if let buffer, offset > 0 {
            grown.rawPointer.copyMemory(from: buffer.rawPointer, byteCount: offset * rowWidth * 4)
        }
        buffer = grown
    }
}
