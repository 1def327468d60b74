import ChronosTensor
import Foundation
import XCTest

/// Deterministic pseudo-random values for tests (a fixed LCG, so failures reproduce).
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }

    /// A value uniformly in [lo, hi).
    mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return lo + (hi - lo) * Float(state >> 40) / Float(1 << 24)
    }

    /// `count` values uniformly in [lo, hi).
    mutating func values(_ count: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(lo, hi) }
    }
}

/// Asserts two float arrays agree elementwise within `tolerance` (absolute plus relative).
func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-5, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "length differs \(message)", file: file, line: line)
    for i in 0..<min(actual.count, expected.count) {
        let a = actual[i], e = expected[i]
        if a.isNaN && e.isNaN { continue }
        if a == e { continue }
        let limit = tolerance * (1 + abs(e))
        if !(abs(a - e) <= limit) {
            XCTFail("element \(i): \(a) vs expected \(e) (tolerance \(limit)) \(message)", file: file, line: line)
            return
        }
    }
}

/// Straightforward reference implementations the kernels are checked against.
enum Naive {
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                     b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
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

    static func rope(_ x: [Float], tokens: Int, heads: Int, headDim: Int, rotaryDim: Int, offset: Int, base: Float,
                     interleaved: Bool) -> [Float] {
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
