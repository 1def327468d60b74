import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

final class OpsTests: XCTestCase {
    func testLinearMatchesNaiveForEveryPathAndDtype() {
        var random = TestRandom(seed: 41)
        let inF = 37, outF = 19
        let w = random.values(outF * inF), b = random.values(outF)
        for tokens in [1, 3, 5, 12] {
            let x = random.values(tokens * inF)
            for dtype in [DType.f32, .bf16, .f16] {
                let weight = Tensor(shape: [outF, inF], values: w, dtype: dtype)
                let y = Tensor.linear(Tensor(shape: [tokens, inF], values: x), weight: weight, bias: Tensor(shape: [outF], values: b))
                let rounded = weight.floats
                // bf16 weights may multiply bf16-rounded activations (see InstructionSet).
                let roundX = dtype == .bf16 && InstructionSet.current.roundsActivationsToBF16
                let xs = roundX ? x.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) } : x
                var expected = [Float]()
                for t in 0..<tokens {
                    let row = Naive.matvec(rounded, rows: outF, cols: inF, Array(xs[(t * inF)..<((t + 1) * inF)]))
                    expected += zip(row, b).map { $0 + $1 }
                }
                XCTAssertEqual(y.shape, [tokens, outF])
                assertClose(y.floats, expected, tolerance: 1e-5, "\(dtype) tokens \(tokens)")
            }
        }
    }

    func testBroadcastingAddAndMultiply() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3], values: [10, 20, 30])
        XCTAssertEqual((a + b).floats, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual((a * b).floats, [10, 40, 90, 40, 100, 180])
        XCTAssertEqual((a + a).floats, [2, 4, 6, 8, 10, 12])
        XCTAssertEqual(a.scaled(by: 0.5).floats, [0.5, 1, 1.5, 2, 2.5, 3])
    }

    /// Attention written the obvious way: scores for every (query, key), masked, softmaxed with
    /// the head's sink as one more score that is then dropped.
    func naiveAttention(
        q: [Float], k: [Float], v: [Float], tokens: Int, keys: Int, heads: Int, kvHeads: Int, dim: Int,
        valueDim: Int, queryOffset: Int, keyOffset: Int, window: Int?, scale: Float, sinks: [Float]? = nil
    ) -> [Float] {
        var out = [Float](repeating: 0, count: tokens * heads * valueDim)
        for t in 0..<tokens {
            for h in 0..<heads {
                let g = h / (heads / kvHeads)
                var scores = [Float](repeating: -.infinity, count: keys)
                for s in 0..<keys {
                    let qp = queryOffset + t, kp = keyOffset + s
                    guard kp <= qp, window.map({ qp - kp < $0 }) ?? true else { continue }
                    var d: Double = 0
                    for i in 0..<dim { d += Double(q[(t * heads + h) * dim + i]) * Double(k[(s * kvHeads + g) * dim + i]) }
                    scores[s] = Float(d) * scale
                }
                let p = Naive.softmax(scores + (sinks.map { [$0[h]] } ?? []))
                for s in 0..<keys where p[s] > 0 {
                    for i in 0..<valueDim { out[(t * heads + h) * valueDim + i] += p[s] * v[(s * kvHeads + g) * valueDim + i] }
                }
            }
        }
        return out
    }

    func testAttentionMatchesNaiveWithGroupsWindowsAndOffsets() {
        var random = TestRandom(seed: 43)
        let cases: [(tokens: Int, keys: Int, heads: Int, kvHeads: Int, dim: Int, valueDim: Int, qOff: Int, kOff: Int, window: Int?)] = [
            (1, 1, 1, 1, 1, 1, 0, 0, nil), (5, 5, 4, 2, 16, 16, 0, 0, nil), (3, 9, 4, 1, 9, 5, 6, 0, nil),
            (7, 7, 2, 2, 8, 8, 0, 0, 3), (2, 6, 4, 2, 8, 12, 10, 6, 4), (4, 4, 2, 1, 3, 3, 0, 0, 1),
            // Enough queries for the matrix-product path.
            (9, 9, 4, 2, 16, 16, 0, 0, nil), (12, 20, 3, 1, 9, 5, 8, 0, 6), (10, 10, 2, 2, 8, 8, 0, 0, 1),
            (8, 14, 4, 4, 4, 6, 30, 24, 5),
            // Enough work for the per-key path to spread its heads over the pool.
            (2, 300, 8, 2, 64, 64, 298, 0, nil), (3, 260, 8, 2, 48, 40, 257, 0, 200)
        ]
        for c in cases {
            let sinks = random.values(c.heads, -2, 2)
            let q = random.values(c.tokens * c.heads * c.dim, -2, 2)
            let k = random.values(c.keys * c.kvHeads * c.dim, -2, 2)
            let v = random.values(c.keys * c.kvHeads * c.valueDim)
            let scale = 1 / Float(c.dim).squareRoot()
            for sinks in [nil, sinks] {
                let out = Tensor.attention(
                    query: Tensor(shape: [c.tokens, c.heads, c.dim], values: q),
                    key: Tensor(shape: [c.keys, c.kvHeads, c.dim], values: k),
                    value: Tensor(shape: [c.keys, c.kvHeads, c.valueDim], values: v),
                    heads: c.heads, kvHeads: c.kvHeads, queryOffset: c.qOff, keyOffset: c.kOff, window: c.window, scale: scale,
                    sinks: sinks.map { Tensor(shape: [c.heads], values: $0) })
                XCTAssertEqual(out.shape, [c.tokens, c.heads * c.valueDim])
                let expected = naiveAttention(
                    q: q, k: k, v: v, tokens: c.tokens, keys: c.keys, heads: c.heads, kvHeads: c.kvHeads,
                    dim: c.dim, valueDim: c.valueDim, queryOffset: c.qOff, keyOffset: c.kOff,
                    window: c.window, scale: scale, sinks: sinks)
                assertClose(out.floats, expected, tolerance: 1e-5, "\(c) sinks \(String(describing: sinks))")
            }
        }
    }

    func testEmbeddingAndRowOps() {
        let table = Tensor(shape: [3, 2], values: [1, 2, 3, 4, 5, 6], dtype: .bf16)
        XCTAssertEqual(Tensor.embedding(table, ids: [2, 0]).floats, [5, 6, 1, 2])
        let x = Tensor(shape: [2, 2], values: [0, 0, 1, 1])
        XCTAssertEqual(x.softmax().floats, [0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(x.rmsNorm(weight: Tensor(shape: [2], values: [2, 2]), eps: 0).row(1), [2, 2])
    }
}
