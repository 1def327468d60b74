/// Elementwise kernels over contiguous f32 buffers of `count` elements. `out` may alias an
/// input. Large buffers are split across the thread pool.
public enum Elementwise {
    typealias V = SIMD8<Float>
    static let parallelGrain = 1 << 15

    /// out[i] = a[i] + b[i]
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        binary(a, b, out, count, { $0 + $1 }, { $0 + $1 })
    }

    /// out[i] = a[i] · b[i]
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        binary(a, b, out, count, { $0 * $1 }, { $0 * $1 })
    }

    /// out[i] = s · a[i]
    public static func scale(_ a: UnsafePointer<Float>, by s: Float, _ out: UnsafeMutablePointer<Float>, count: Int) {
        let sv = V(repeating: s)
        unary(a, out, count, { $0 * sv }, { $0 * s })
    }

    /// y[i] += s · x[i]  (axpy)
    public static func addScaled(_ x: UnsafePointer<Float>, by s: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
        let sv = V(repeating: s)
        binary(UnsafePointer(y), x, y, count, { $0.mulAdd($1, sv) }, { $0 + s * $1 })
    }

    /// y[i] += s · x[i] on the calling thread only (for use inside parallel regions on short rows).
    @inline(__always)
    public static func addScaledSerial(_ x: UnsafePointer<Float>, by s: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
        if let kernel = VectorKernels.axpy { return kernel(s, x, y, count) }
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y), sv = V(repeating: s)
        var i = 0
        while i + 8 <= count {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: V.self).mulAdd(rx.loadUnaligned(fromByteOffset: i * 4, as: V.self), sv)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < count {
            y[i] += s * x[i]
            i += 1
        }
    }

    /// Σ x[i]² (serial, in eight lanes).
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Float {
        RowKernels.sumOfSquares(x, count)
    }

    /// SiLU: out[i] = x[i] · σ(x[i]) = x[i] / (1 + e^(−x[i]))
    public static func silu(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        unary(x, out, count, { $0 / (1 + FastMath.exp(-$0)) }, { $0 / (1 + FastMath.exp(-$0)) })
    }

    /// Logistic sigmoid: out[i] = σ(x[i]) = 1 / (1 + e^(−x[i]))
    public static func sigmoid(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        unary(x, out, count, { 1 / (1 + FastMath.exp(-$0)) }, { 1 / (1 + FastMath.exp(-$0)) })
    }

    /// ∂SiLU: out[i] = g[i] · σ(x[i]) · (1 + x[i]·(1 − σ(x[i])))
    public static func siluBackward(
        x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        binary(
            x, g, out, count,
            { x, g in
                let s = 1 / (1 + FastMath.exp(-x))
                return g * s * (1 + x * (1 - s))
            },
            { x, g in
                let s = 1 / (1 + FastMath.exp(-x))
                return g * s * (1 + x * (1 - s))
            })
    }

    /// ∂σ given the output y = σ(x): out[i] = g[i] · y[i] · (1 − y[i])
    public static func sigmoidBackward(
        y: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        binary(y, g, out, count, { y, g in g * y * (1 - y) }, { y, g in g * y * (1 - y) })
    }

    /// SwiGLU: out[i] = SiLU(gate[i]) · up[i]
    public static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        binary(gate, up, out, count, { $0 / (1 + FastMath.exp(-$0)) * $1 }, { $0 / (1 + FastMath.exp(-$0)) * $1 })
    }

    @inline(__always)
    static func unary(
        _ a: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int,
        _ vector: (V) -> V, _ scalar: (Float) -> Float
    ) {
        ThreadPool.shared.parallelChunks(count, minChunk: parallelGrain) { range in
            let ra = UnsafeRawPointer(a), ro = UnsafeMutableRawPointer(out)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                ro.storeBytes(of: vector(ra.loadUnaligned(fromByteOffset: i * 4, as: V.self)), toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound {
                out[i] = scalar(a[i])
                i += 1
            }
        }
    }

    @inline(__always)
    static func binary(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int,
        _ vector: (V, V) -> V, _ scalar: (Float, Float) -> Float
    ) {
        ThreadPool.shared.parallelChunks(count, minChunk: parallelGrain) { range in
            let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), ro = UnsafeMutableRawPointer(out)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let v = vector(ra.loadUnaligned(fromByteOffset: i * 4, as: V.self), rb.loadUnaligned(fromByteOffset: i * 4, as: V.self))
                ro.storeBytes(of: v, toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound {
                out[i] = scalar(a[i], b[i])
                i += 1
            }
        }
    }
}

/// Vectorised transcendental functions (the standard library has no SIMD `exp`).
public enum FastMath {
    /// e^x for eight lanes, relative error below 2e-7 for x in [−87.3, 88.3]; 0 below that
    /// range, +∞ above 88.72, NaN propagates.
    ///
    /// x = n·ln2 + r with |r| ≤ ln2/2; e^r by a degree-6 polynomial (Cephes' coefficients);
    /// 2^n through the exponent bits.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var clamped = x
        clamped.replace(with: -87.3, where: clamped .< -87.3)
        clamped.replace(with: 88.3, where: clamped .> 88.3)
        // Adding 1.5·2²³ rounds x·log2(e) to the nearest integer and puts it in the low mantissa
        // bits (|n| ≤ 128), with plain adds on every vector unit.
        let shifted = clamped * 1.442695040888963 + 12_582_912
        let n = shifted - 12_582_912
        var r = clamped.mulAdd(n, SIMD8(repeating: -0.693359375))
        r.formMulAdd(n, SIMD8(repeating: 2.12194440e-4))
        var p = SIMD8<Float>(repeating: 1.3981999507e-3).mulAdd(SIMD8(repeating: 1.9875691500e-4), r)
        p = SIMD8<Float>(repeating: 8.3334519073e-3).mulAdd(p, r)
        p = SIMD8<Float>(repeating: 4.1665795894e-2).mulAdd(p, r)
        p = SIMD8<Float>(repeating: 1.6666665459e-1).mulAdd(p, r)
        p = SIMD8<Float>(repeating: 5.0000001201e-1).mulAdd(p, r)
        let y = (r + 1).mulAdd(p, r * r)
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let bits = (integer &+ 127) &<< 23
        var result = y * unsafeBitCast(bits, to: SIMD8<Float>.self)
        result.replace(with: 0, where: x .< -87.3)
        result.replace(with: .infinity, where: x .> 88.72)
        result.replace(with: x, where: x .!= x)
        return result
    }

    /// e^x for one value, with the same polynomial as the eight-lane version.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(SIMD8(repeating: x))[0]
    }
}

extension SIMD8 where Scalar == Float {
    /// `self + a · b`, fused on arm64, where every processor has the instruction; an x86-64 build
    /// cannot assume FMA (a fused product there would be a library call per lane), so it
    /// multiplies and adds — the instruction-set kernels use FMA where the processor has it.
    @inline(__always)
    public func mulAdd(_ a: Self, _ b: Self) -> Self {
        #if arch(arm64)
            addingProduct(a, b)
        #else
            self + a * b
        #endif
    }

    /// `self += a · b`, as `mulAdd`.
    @inline(__always)
    public mutating func formMulAdd(_ a: Self, _ b: Self) { self = mulAdd(a, b) }
}
