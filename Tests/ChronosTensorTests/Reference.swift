import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Straightforward reference implementations the kernels are checked against.
enum Naive {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
        b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int
    ) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                out[i * ldc + j] = Float(Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])))
            }
        }
        return out
    }

    static func matvec(_ w: [Float], rows: Int, cols: Int, _ x: [Float]) -> [Float] {
        (0..<rows).map { r in Float((0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * Double(x[$1]) }) }
    }

    static func softmax(_ row: [Float]) -> [Float] {
        let m = row.max()!
        if m == -.infinity { return row.map { _ in 0 } }
        let e = row.map { Foundation.exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    static func rope(
        _ x: [Float], tokens: Int, heads: Int, headDim: Int, rotaryDim: Int, offset: Int, base: Float,
        interleaved: Bool
    ) -> [Float] {
        var out = x
        let half = rotaryDim / 2
        for t in 0..<tokens {
            for h in 0..<heads {
                for i in 0..<half {
                    let angle = Double(offset + t) / pow(Double(base), Double(2 * i) / Double(rotaryDim))
                    let (a, b) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                    let base = (t * heads + h) * headDim
                    let xa = Double(x[base + a]), xb = Double(x[base + b])
                    out[base + a] = Float(xa * cos(angle) - xb * sin(angle))
                    out[base + b] = Float(xb * cos(angle) + xa * sin(angle))
                }
            }
        }
        return out
    }
}
