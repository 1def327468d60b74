import CChronosKernels

/// Matrix-vector products with f32, f16, bf16 or GGML block-format weights and f32 activations
/// — the kernel that bounds decode speed, since every weight byte is read once per token. The
/// instruction set's C kernels run where it has them; the Swift kernels below are the portable
/// ones for float weights, and QuantDot.c's C kernel for block formats.
///
///     y[r] = Σ_c W[r, c] · x[c]        W: [rows × cols] row-major, x: [cols], y: [rows]
public enum MatVec {
    /// Computes `y = W · x` for weights of `dtype` at `weights`, in parallel over row blocks,
    /// with the kernels of `isa`.
    public static func multiply(
        weights: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int,
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared,
        isa: InstructionSet = .current
    ) {
        precondition(dtype.isWeight, "matrix-vector product needs float or block-format weights, got \(dtype)")
        if dtype.isQuantized {
            multiplyQuantized(weights: weights, dtype: dtype, rows: rows, cols: cols, x: x, y: y, pool: pool, isa: isa)
            return
        }
        if let kernels = isa.kernels {
            let code = dtype.kernelCode
            pool.parallelChunks(rows, minChunk: minimumRows(cols: cols)) { range in
                kernels.matvec(code, weights, range.lowerBound, range.upperBound, cols, x, y)
            }
            return
        }
        switch dtype {
        case .f32: run(F32Row.self, weights, rows, cols, x, y, pool)
        case .bf16: run(BF16Row.self, weights, rows, cols, x, y, pool)
        case .f16: run(F16Row.self, weights, rows, cols, x, y, pool)
        default: preconditionFailure("matrix-vector product needs float weights, got \(dtype)")
        }
    }

    /// `y = W · x` for block-format weights: x is quantised once to the weight type's dot
    /// format (8-bit blocks, as llama.cpp does), then each thread takes a run of rows and
    /// multiplies them block by block in integers.
    private static func multiplyQuantized(
        weights: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int,
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, pool: ThreadPool, isa: InstructionSet
    ) {
        precondition(cols % dtype.blockElements == 0, "\(dtype) rows are whole blocks of \(dtype.blockElements), got \(cols) columns")
        let code = Int32(dtype.ggmlType!)
        QuantizedActivations.withQuantized(dtype, rows: 1, cols: cols, x, stride: cols) { xq in
            let kernel = isa.kernels?.quant_matvec ?? chronos_quant_matvec_portable
            pool.parallelChunks(rows, minChunk: minimumRows(cols: cols)) { range in
                kernel(code, weights, range.lowerBound, range.upperBound, cols, xq, y)
            }
        }
    }

    private static func run<W: WeightRow>(
        _: W.Type, _ weights: UnsafeRawPointer, _ rows: Int, _ cols: Int,
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ pool: ThreadPool
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: W.deinterleavesPairs ? cols : 0) { scratch in
            // Weights that load as (even, odd) lanes need x in the same order within each 16-block.
            let xBlocks = W.deinterleavesPairs ? deinterleave(x, cols, into: scratch.baseAddress!) : x
            let minRows = minimumRows(cols: cols)
            if cols <= 2048 {
                // Short rows are read one after another: a single sequential stream, which the
                // hardware prefetcher follows best.
                pool.parallelChunks(rows, minChunk: minRows) { range in
                    for r in range { y[r] = dot1(W.self, weights + r * cols * W.size, cols, xBlocks, x) }
                }
                return
            }
            // Long rows go four at a time, sharing each load of x.
            pool.parallelChunks(rows, minChunk: minRows) { range in
                var r = range.lowerBound
                while r + 4 <= range.upperBound {
                    dot4(W.self, weights, r, cols, xBlocks, x, y)
                    r += 4
                }
                while r < range.upperBound {
                    y[r] = dot1(W.self, weights + r * cols * W.size, cols, xBlocks, x)
                    r += 1
                }
            }
        }
    }

    /// Rows per thread below which splitting is not worth it: the pool's `minimumTaskWork`
    /// weights.
    static func minimumRows(cols: Int) -> Int { max(4, ThreadPool.minimumTaskWork / max(cols, 1)) }

    /// Copies x with each full block of 16 reordered as its 8 even then its 8 odd elements.
    private static func deinterleave(_ x: UnsafePointer<Float>, _ cols: Int, into out: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>
    {
        var c = 0
        while c + 16 <= cols {
            for i in 0..<8 {
                out[c + i] = x[c + 2 * i]
                out[c + 8 + i] = x[c + 2 * i + 1]
            }
            c += 16
        }
        while c < cols {
            out[c] = x[c]
            c += 1
        }
        return UnsafePointer(out)
    }

    /// y[r..<r+4] = W[r..<r+4, :] · x, sharing each load of x across four rows. `xBlocks` is x
    /// in the lane order of `W.load16`; `x` is the original, used for the tail.
    @inline(__always)
    private static func dot4<W: WeightRow>(
        _: W.Type, _ weights: UnsafeRawPointer, _ r: Int, _ cols: Int,
        _ xBlocks: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>
    ) {
        typealias V = SIMD8<Float>
        let stride = cols * W.size
        let w0 = weights + r * stride, w1 = w0 + stride, w2 = w1 + stride, w3 = w2 + stride
        let rawX = UnsafeRawPointer(xBlocks)
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        var b0 = V(), b1 = V(), b2 = V(), b3 = V()
        var c = 0
        while c + 16 <= cols {
            let x0 = rawX.loadUnaligned(fromByteOffset: c * 4, as: V.self)
            let x1 = rawX.loadUnaligned(fromByteOffset: c * 4 + 32, as: V.self)
            let (p0, q0) = W.load16(w0, c), (p1, q1) = W.load16(w1, c)
            let (p2, q2) = W.load16(w2, c), (p3, q3) = W.load16(w3, c)
            a0.formMulAdd(p0, x0)
            b0.formMulAdd(q0, x1)
            a1.formMulAdd(p1, x0)
            b1.formMulAdd(q1, x1)
            a2.formMulAdd(p2, x0)
            b2.formMulAdd(q2, x1)
            a3.formMulAdd(p3, x0)
            b3.formMulAdd(q3, x1)
            c += 16
        }
        var s0 = (a0 + b0).sum(), s1 = (a1 + b1).sum(), s2 = (a2 + b2).sum(), s3 = (a3 + b3).sum()
        while c < cols {
            let xc = x[c]
            s0 += W.load1(w0, c) * xc
            s1 += W.load1(w1, c) * xc
            s2 += W.load1(w2, c) * xc
            s3 += W.load1(w3, c) * xc
            c += 1
        }
        y[r] = s0
        y[r + 1] = s1
        y[r + 2] = s2
        y[r + 3] = s3
    }

    /// Σ_c w[c] · x[c] for one row (`xBlocks` and `x` as in `dot4`).
    @inline(__always)
    static func dot1<W: WeightRow>(
        _: W.Type, _ w: UnsafeRawPointer, _ cols: Int, _ xBlocks: UnsafePointer<Float>,
        _ x: UnsafePointer<Float>
    ) -> Float {
        typealias V = SIMD8<Float>
        let rawX = UnsafeRawPointer(xBlocks)
        var a = V(), b = V()
        var c = 0
        while c + 16 <= cols {
            let (p, q) = W.load16(w, c)
            a.formMulAdd(p, rawX.loadUnaligned(fromByteOffset: c * 4, as: V.self))
            b.formMulAdd(q, rawX.loadUnaligned(fromByteOffset: c * 4 + 32, as: V.self))
            c += 16
        }
        var s = (a + b).sum()
        while c < cols {
            s += W.load1(w, c) * x[c]
            c += 1
        }
        return s
    }
}

/// How to widen stored weight elements to f32: sixteen at a time as two 8-lane vectors, and
/// one at a time for the tail of a row.
protocol WeightRow {
    static var size: Int { get }
    /// Whether `load16` returns (even, odd) elements rather than (first eight, last eight).
    static var deinterleavesPairs: Bool { get }
    static func load16(_ p: UnsafeRawPointer, _ i: Int) -> (SIMD8<Float>, SIMD8<Float>)
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

enum F32Row: WeightRow {
    static var size: Int { 4 }
    static var deinterleavesPairs: Bool { false }
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        (
            p.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self),
            p.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
        )
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
    }
}

/// bf16 is the high half of an f32. Sixteen bf16 values read as eight 32-bit words hold the
/// odd elements in their high halves (mask the low half away) and the even elements in their
/// low halves (shift them up): two cheap integer ops widen sixteen weights.
enum BF16Row: WeightRow {
    static var size: Int { 2 }
    static var deinterleavesPairs: Bool { true }
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        let words = p.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt32>.self)
        return (
            unsafeBitCast(words &<< 16, to: SIMD8<Float>.self),
            unsafeBitCast(words & 0xFFFF_0000, to: SIMD8<Float>.self)
        )
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        HalfPrecision.float(fromBF16: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
    }
}

/// IEEE binary16, widened by Swift's conversion (in hardware where the target has one).
enum F16Row: WeightRow {
    static var size: Int { 2 }
    static var deinterleavesPairs: Bool { false }
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        (
            SIMD8<Float>(p.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<Float16>.self)),
            SIMD8<Float>(p.loadUnaligned(fromByteOffset: i * 2 + 16, as: SIMD8<Float16>.self))
        )
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(p.loadUnaligned(fromByteOffset: i * 2, as: Float16.self))
    }
}

/// Activations quantised to a block-format weight's dot format (Q8_0, Q8_1 or Q8_K), in scratch
/// memory that lives for one call.
enum QuantizedActivations {
    /// Bytes one row of `cols` activations takes in the dot format of `weightType`.
    static func rowBytes(_ weightType: DType, cols: Int) -> Int {
        let dotType = chronos_quant_dot_type(Int32(weightType.ggmlType!))
        return cols / Int(chronos_quant_block_elements(dotType)) * Int(chronos_quant_block_bytes(dotType))
    }

    /// Calls `body` with `rows` rows of x (`stride` floats apart) quantised back to back.
    static func withQuantized<R>(
        _ weightType: DType, rows: Int, cols: Int, _ x: UnsafePointer<Float>, stride: Int, _ body: (UnsafeRawPointer) -> R
    ) -> R {
        let dotType = chronos_quant_dot_type(Int32(weightType.ggmlType!))
        let bytes = rowBytes(weightType, cols: cols)
        return withUnsafeTemporaryAllocation(byteCount: rows * bytes, alignment: 64) { scratch in
            let base = scratch.baseAddress!
            for r in 0..<rows { chronos_quantize_activations(dotType, x + r * stride, base + r * bytes, cols) }
            return body(UnsafeRawPointer(base))
        }
    }
}
