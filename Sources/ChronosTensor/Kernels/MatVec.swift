/// Matrix-vector products with f32, f16 or bf16 weights and f32 activations — the kernel that
/// bounds decode speed, since every weight byte is read once per token.
///
///     y[r] = Σ_c W[r, c] · x[c]        W: [rows × cols] row-major, x: [cols], y: [rows]
public enum MatVec {
    /// Computes `y = W · x` for weights of `dtype` at `weights`, in parallel over row blocks.
    public static func multiply(weights: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int,
                                x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared) {
        switch dtype {
        case .f32: run(F32Row.self, weights, rows, cols, x, y, pool)
        case .bf16: run(BF16Row.self, weights, rows, cols, x, y, pool)
        case .f16: run(F16Row.self, weights, rows, cols, x, y, pool)
        default: preconditionFailure("matrix-vector product needs float weights, got \(dtype)")
        }
    }

    private static func run<W: WeightRow>(_: W.Type, _ weights: UnsafeRawPointer, _ rows: Int, _ cols: Int,
                                          _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ pool: ThreadPool) {
        // Below ~64K weights the pool's wake-up costs more than the second core gains.
        let minRows = max(4, (1 << 16) / max(cols, 1))
        pool.parallelChunks(rows, minChunk: minRows) { range in
            var r = range.lowerBound
            while r + 4 <= range.upperBound {
                dot4(W.self, weights, r, cols, x, y)
                r += 4
            }
            while r < range.upperBound {
                y[r] = dot1(W.self, weights + r * cols * W.size, cols, x)
                r += 1
            }
        }
    }

    /// y[r..<r+4] = W[r..<r+4, :] · x, sharing each load of x across four rows.
    @inline(__always)
    private static func dot4<W: WeightRow>(_: W.Type, _ weights: UnsafeRawPointer, _ r: Int, _ cols: Int,
                                           _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        let stride = cols * W.size
        let w0 = weights + r * stride, w1 = w0 + stride, w2 = w1 + stride, w3 = w2 + stride
        let rawX = UnsafeRawPointer(x)
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        var b0 = V(), b1 = V(), b2 = V(), b3 = V()
        var c = 0
        while c + 16 <= cols {
            let x0 = rawX.loadUnaligned(fromByteOffset: c * 4, as: V.self)
            let x1 = rawX.loadUnaligned(fromByteOffset: c * 4 + 32, as: V.self)
            a0.addProduct(W.load8(w0, c), x0); b0.addProduct(W.load8(w0, c + 8), x1)
            a1.addProduct(W.load8(w1, c), x0); b1.addProduct(W.load8(w1, c + 8), x1)
            a2.addProduct(W.load8(w2, c), x0); b2.addProduct(W.load8(w2, c + 8), x1)
            a3.addProduct(W.load8(w3, c), x0); b3.addProduct(W.load8(w3, c + 8), x1)
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
        y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3
    }

    /// Σ_c w[c] · x[c] for one row.
    @inline(__always)
    static func dot1<W: WeightRow>(_: W.Type, _ w: UnsafeRawPointer, _ cols: Int, _ x: UnsafePointer<Float>) -> Float {
        typealias V = SIMD8<Float>
        let rawX = UnsafeRawPointer(x)
        var a = V(), b = V()
        var c = 0
        while c + 16 <= cols {
            a.addProduct(W.load8(w, c), rawX.loadUnaligned(fromByteOffset: c * 4, as: V.self))
            b.addProduct(W.load8(w, c + 8), rawX.loadUnaligned(fromByteOffset: c * 4 + 32, as: V.self))
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

/// How to widen a stored weight element (or eight of them) to f32.
protocol WeightRow {
    static var size: Int { get }
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float>
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

enum F32Row: WeightRow {
    static var size: Int { 4 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        p.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
    }
}

/// bf16 is the high half of an f32: widen by shifting into the top 16 bits.
enum BF16Row: WeightRow {
    static var size: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        let bits = p.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
        return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        HalfPrecision.float(fromBF16: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
    }
}

/// IEEE binary16, widened with the hardware conversion (F16C on x86-64).
enum F16Row: WeightRow {
    static var size: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        SIMD8<Float>(p.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<Float16>.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(p.loadUnaligned(fromByteOffset: i * 2, as: Float16.self))
    }
}
