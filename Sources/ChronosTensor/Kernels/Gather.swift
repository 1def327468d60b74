/// Embedding lookup: copies rows of a table, widening them to f32.
public enum Gather {
    /// out[t, :] = table[ids[t], :] for a `[vocab × dim]` table of any float or quantised dtype.
    public static func rows(
        table: UnsafeRawPointer, dtype: DType, vocab: Int, dim: Int, ids: [Int],
        out: UnsafeMutablePointer<Float>
    ) {
        for (t, id) in ids.enumerated() {
            precondition(id >= 0 && id < vocab, "token id \(id) outside the vocabulary of \(vocab)")
            let dst = out + t * dim
            switch dtype {
            case .f32:
                dst.update(from: (table + id * dim * 4).assumingMemoryBound(to: Float.self), count: dim)
            case .bf16:
                let src = (table + id * dim * 2).assumingMemoryBound(to: UInt16.self)
                for c in 0..<dim { dst[c] = HalfPrecision.float(fromBF16: src[c]) }
            case .f16:
                let src = (table + id * dim * 2).assumingMemoryBound(to: UInt16.self)
                for c in 0..<dim { dst[c] = HalfPrecision.float(fromF16: src[c]) }
            default:
                precondition(dtype.isQuantized, "embedding table must be a float or quantised type, got \(dtype)")
                Quantization.dequantize(dtype, blocks: table + id * dtype.byteCount(dim), into: dst, count: dim)
            }
        }
    }
}
