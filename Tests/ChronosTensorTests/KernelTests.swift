import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

final class KernelTests: XCTestCase {
    static let lengths = [1, 7, 8, 9, 31, 100_003]

    func testMatVecEveryDtypeMatchesNaive() {
        var random = TestRandom(seed: 11)
        for (rows, cols) in [(1, 1), (1, 33), (33, 1), (3, 17), (7, 15), (37, 129), (300, 517)] {
            let w = random.values(rows * cols)
            let x = random.values(cols)
            for dtype in [DType.f32, .bf16, .f16] {
                let weight = Tensor(shape: [rows, cols], values: w, dtype: dtype)
                // Reference on the rounded weights (and activations, where the kernel rounds
                // them), so only the kernel's arithmetic is judged.
                let xs =
                    dtype == .bf16 && InstructionSet.current.roundsActivationsToBF16
                    ? x.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) } : x
                let expected = Naive.matvec(weight.floats, rows: rows, cols: cols, xs)
                let y = Tensor.matvec(weight, Tensor(shape: [cols], values: x))
                assertClose(y.floats, expected, tolerance: 1e-5, "\(dtype) \(rows)×\(cols)")
            }
        }
    }

    func testElementwiseMatchesNaive() {
        var random = TestRandom(seed: 5)
        for n in Self.lengths {
            let a = random.values(n, -6, 6), b = random.values(n, -6, 6)
            var out = [Float](repeating: 0, count: n)
            Elementwise.add(a, b, &out, count: n)
            XCTAssertEqual(out, zip(a, b).map { $0 + $1 })
            Elementwise.mul(a, b, &out, count: n)
            XCTAssertEqual(out, zip(a, b).map { $0 * $1 })
            Elementwise.scale(a, by: -0.75, &out, count: n)
            XCTAssertEqual(out, a.map { $0 * -0.75 })
            out = b
            Elementwise.addScaled(a, by: 2, into: &out, count: n)
            assertClose(out, zip(a, b).map { $1 + 2 * $0 }, tolerance: 1e-6)
            Elementwise.silu(a, &out, count: n)
            assertClose(out, a.map { Float(Double($0) / (1 + Foundation.exp(-Double($0)))) }, tolerance: 1e-6, "silu \(n)")
            Elementwise.swiglu(gate: a, up: b, &out, count: n)
            assertClose(
                out, zip(a, b).map { Float(Double($0) / (1 + Foundation.exp(-Double($0))) * Double($1)) },
                tolerance: 1e-6, "swiglu \(n)")
        }
    }

    func testExpIsAccurateAcrossTheRange() {
        var x: [Float] = stride(from: -87.0, through: 88.0, by: 0.37).map { Float($0) }
        x += [0, -0, 1e-30, -1e-30, 88.3]
        let y = x.map { FastMath.exp($0) }
        assertClose(y, x.map { Float(Foundation.exp(Double($0))) }, tolerance: 3e-7)
        XCTAssertEqual(FastMath.exp(-Float.infinity), 0)
        XCTAssertEqual(FastMath.exp(-200), 0)
        XCTAssertEqual(FastMath.exp(Float.infinity), .infinity)
        XCTAssertTrue(FastMath.exp(Float.nan).isNaN)
    }

    func testSoftmaxAndLogSoftmaxAreStable() {
        var random = TestRandom(seed: 9)
        for (rows, cols) in [(1, 1), (1, 9), (5, 7), (3, 1000), (40, 33)] {
            var x = random.values(rows * cols, -30, 30)
            x[0] = 1000  // stability: a huge logit must not overflow
            if cols > 2 { x[1] = -.infinity }
            var out = [Float](repeating: 0, count: x.count)
            RowKernels.softmax(x, &out, rows: rows, cols: cols)
            var logOut = [Float](repeating: 0, count: x.count)
            RowKernels.logSoftmax(x, &logOut, rows: rows, cols: cols)
            for r in 0..<rows {
                let row = Array(x[(r * cols)..<((r + 1) * cols)])
                let expected = Naive.softmax(row)
                assertClose(Array(out[(r * cols)..<((r + 1) * cols)]), expected, tolerance: 1e-6, "softmax \(rows)×\(cols) row \(r)")
                let expectedLog = expected.map { Float(log(Double($0))) }
                for c in 0..<cols where expected[c] > 1e-30 {
                    XCTAssertEqual(logOut[r * cols + c], expectedLog[c], accuracy: 1e-4 * (1 + abs(expectedLog[c])))
                }
            }
        }
        var allMasked = [Float](repeating: -.infinity, count: 5)
        RowKernels.softmax(allMasked, &allMasked, rows: 1, cols: 5)
        XCTAssertEqual(allMasked, [0, 0, 0, 0, 0])
    }

    func testRMSNormMatchesNaive() {
        var random = TestRandom(seed: 13)
        for (rows, cols) in [(1, 1), (1, 9), (4, 7), (3, 64), (65, 33)] {
            let x = random.values(rows * cols, -3, 3), w = random.values(cols, 0.5, 1.5)
            var out = [Float](repeating: 0, count: x.count)
            RowKernels.rmsNorm(x, weight: w, &out, rows: rows, cols: cols, eps: 1e-5)
            var expected = [Float]()
            for r in 0..<rows {
                let row = x[(r * cols)..<((r + 1) * cols)]
                let ms = row.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(cols)
                let inv = 1 / (ms + 1e-5).squareRoot()
                expected += row.enumerated().map { Float(Double($1) * inv * Double(w[$0])) }
            }
            assertClose(out, expected, tolerance: 1e-5, "\(rows)×\(cols)")
        }
    }

    func testRoPEMatchesNaiveForBothStylesAndOffsets() {
        var random = TestRandom(seed: 17)
        for (tokens, heads, headDim, rotary) in [(1, 1, 2, 2), (3, 2, 8, 8), (5, 3, 16, 8), (2, 1, 64, 64)] {
            for offset in [0, 7, 4095] {
                for style in [RoPE.Style.halfSplit, .interleaved] {
                    let x = random.values(tokens * heads * headDim)
                    var out = x
                    RoPE.apply(
                        &out, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotary,
                        positionOffset: offset, base: 10000, style: style)
                    let expected = Naive.rope(
                        x, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotary,
                        offset: offset, base: 10000, interleaved: style == .interleaved)
                    assertClose(out, expected, tolerance: 2e-5, "\(style) offset \(offset) \(tokens)×\(heads)×\(headDim)/\(rotary)")
                }
            }
        }
    }

    func testRoPEOffsetEqualsPositionInSequence() {
        var random = TestRandom(seed: 19)
        let tokens = 6, heads = 2, dim = 8
        let x = random.values(tokens * heads * dim)
        var whole = x
        RoPE.apply(&whole, tokens: tokens, heads: heads, headDim: dim, positionOffset: 0, base: 10000)
        for t in 0..<tokens {
            var one = Array(x[(t * heads * dim)..<((t + 1) * heads * dim)])
            RoPE.apply(&one, tokens: 1, heads: heads, headDim: dim, positionOffset: t, base: 10000)
            XCTAssertEqual(one, Array(whole[(t * heads * dim)..<((t + 1) * heads * dim)]))
        }
    }

    func testGatherWidensEveryDtype() {
        var random = TestRandom(seed: 23)
        let vocab = 11, dim = 13
        let values = random.values(vocab * dim)
        for dtype in [DType.f32, .bf16, .f16] {
            let table = Tensor(shape: [vocab, dim], values: values, dtype: dtype)
            let ids = [3, 0, 10, 3]
            var out = [Float](repeating: 0, count: ids.count * dim)
            Gather.rows(table: table.rawPointer, dtype: dtype, vocab: vocab, dim: dim, ids: ids, out: &out)
            let rounded = table.floats
            XCTAssertEqual(out, ids.flatMap { rounded[($0 * dim)..<(($0 + 1) * dim)] }, "\(dtype)")
        }
    }

    func testArgmaxAndTopK() {
        XCTAssertEqual(Selection.argmax([1, 3, 3, 2], count: 4), 1)
        XCTAssertEqual(Selection.argmax([7], count: 1), 0)
        XCTAssertEqual(Selection.argmax([.nan, -1, .nan, 5, 5], count: 5), 3)
        XCTAssertEqual(Selection.argmax([-.infinity, -.infinity], count: 2), 0)
        let x: [Float] = [0.1, 0.9, 0.3, 0.9, -2, 0.5, .nan]
        let top = Selection.topK(x, count: x.count, k: 3)
        XCTAssertEqual(top.map(\.index), [1, 3, 5])
        XCTAssertEqual(top.map(\.value), [0.9, 0.9, 0.5])
        XCTAssertEqual(Selection.topK(x, count: 2, k: 5).map(\.index), [1, 0])
        XCTAssertEqual(Selection.topK([4], count: 1, k: 1).map(\.index), [0])
        var random = TestRandom(seed: 29)
        let big = random.values(1001)
        let expected = big.enumerated().sorted { $0.element > $1.element }.prefix(8).map(\.offset)
        XCTAssertEqual(Selection.topK(big, count: big.count, k: 8).map(\.index), expected)
    }

    func testCrossEntropyValueAndGradient() {
        var random = TestRandom(seed: 31)
        let rows = 5, vocab = 13
        let logits = random.values(rows * vocab, -4, 4)
        let targets = [3, CrossEntropy.ignoreIndex, 0, 12, 7]
        var gradient = [Float](repeating: .nan, count: logits.count)
        let (loss, counted) = CrossEntropy.loss(logits: logits, rows: rows, vocab: vocab, targets: targets, gradient: &gradient)
        XCTAssertEqual(counted, 4)
        var expected = 0.0
        for r in 0..<rows where targets[r] != CrossEntropy.ignoreIndex {
            let p = Naive.softmax(Array(logits[(r * vocab)..<((r + 1) * vocab)]))
            expected -= log(Double(p[targets[r]]))
        }
        XCTAssertEqual(Double(loss), expected / 4, accuracy: 1e-5)
        // Central finite differences in double-checked float precision.
        let h: Float = 1e-2
        for i in stride(from: 0, to: logits.count, by: 3) {
            var plus = logits, minus = logits
            plus[i] += h
            minus[i] -= h
            let lp = CrossEntropy.loss(logits: plus, rows: rows, vocab: vocab, targets: targets).loss
            let lm = CrossEntropy.loss(logits: minus, rows: rows, vocab: vocab, targets: targets).loss
            XCTAssertEqual(gradient[i], (lp - lm) / (2 * h), accuracy: 2e-3, "d loss / d logit \(i)")
        }
        XCTAssertEqual(Array(gradient[vocab..<(2 * vocab)]), [Float](repeating: 0, count: vocab), "ignored row has no gradient")
    }
}
