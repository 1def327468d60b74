import ChronosTensor
import ChronosTestSupport
import XCTest

/// Every differentiable op's gradient against central finite differences.
final class GradientTests: XCTestCase {
    var random = TestRandom(seed: 1)

    func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor(shape: shape, values: random.values(shape.reduce(1, *), lo, hi))
    }

    func testLinearAndMatmul() {
        GradientCheck.check("linear", inputs: [tensor([5, 7]), tensor([3, 7]), tensor([3])]) {
            Tensor.linear($0[0], weight: $0[1], bias: $0[2])
        }
        GradientCheck.check("linear, one token", inputs: [tensor([1, 7]), tensor([3, 7])]) { Tensor.linear($0[0], weight: $0[1]) }
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                GradientCheck.check(
                    "matmul \(transposeA) \(transposeB)",
                    inputs: [tensor(transposeA ? [4, 3] : [3, 4]), tensor(transposeB ? [5, 4] : [4, 5])]
                ) {
                    Tensor.matmul($0[0], $0[1], transposeA: transposeA, transposeB: transposeB)
                }
            }
        }
    }

    func testPointwise() {
        GradientCheck.check("add broadcast", inputs: [tensor([3, 4]), tensor([4])]) { $0[0] + $0[1] }
        GradientCheck.check("sub", inputs: [tensor([3, 4]), tensor([3, 4])]) { $0[0] - $0[1] }
        GradientCheck.check("mul broadcast", inputs: [tensor([3, 4]), tensor([4])]) { $0[0] * $0[1] }
        GradientCheck.check("scaled", inputs: [tensor([6])]) { $0[0].scaled(by: -1.7) }
        GradientCheck.check("silu", inputs: [tensor([9], -4, 4)]) { $0[0].silu() }
        GradientCheck.check("sigmoid", inputs: [tensor([9], -4, 4)]) { $0[0].sigmoid() }
        GradientCheck.check("exp", inputs: [tensor([9], -2, 2)]) { $0[0].exp() }
        GradientCheck.check("log", inputs: [tensor([9], 0.5, 3)]) { $0[0].log() }
        GradientCheck.check("squared", inputs: [tensor([9])]) { $0[0].squared() }
        GradientCheck.check("swiglu", inputs: [tensor([2, 5], -3, 3), tensor([2, 5])]) { Tensor.swiglu(gate: $0[0], up: $0[1]) }
        // Gates and up values on both sides of the limit 1.5, none within a finite-difference step of it.
        let gate = Tensor(shape: [2, 5], values: [-2.5, -1, -0.3, 0.4, 1.1, 2, 2.7, -1.9, 0.8, 1.3])
        let up = Tensor(shape: [2, 5], values: [-2.2, -1.2, 0.5, 1.7, -0.1, 2.4, 0.9, -1.6, 1.2, -0.7])
        GradientCheck.check("clampedSwiglu", inputs: [gate, up]) {
            Tensor.clampedSwiglu(gate: $0[0], up: $0[1], alpha: 1.702, limit: 1.5)
        }
    }

    func testRowOps() {
        GradientCheck.check("rmsNorm", inputs: [tensor([3, 6]), tensor([6], 0.5, 1.5)]) { $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
        GradientCheck.check("softmax", inputs: [tensor([3, 5], -2, 2)]) { $0[0].softmax() }
        GradientCheck.check("logSoftmax", inputs: [tensor([3, 5], -2, 2)]) { $0[0].logSoftmax() }
        GradientCheck.check("crossEntropy", inputs: [tensor([4, 6], -2, 2)]) {
            Tensor.crossEntropy(logits: $0[0], targets: [1, CrossEntropy.ignoreIndex, 5, 0])
        }
    }

    func testSequenceOps() {
        GradientCheck.check("embedding", inputs: [tensor([5, 3])]) { Tensor.embedding($0[0], ids: [4, 1, 4]) }
        for style in [RoPE.Style.halfSplit, .interleaved] {
            GradientCheck.check("rope \(style)", inputs: [tensor([3, 2, 8])]) {
                $0[0].rope(heads: 2, headDim: 8, rotaryDim: 6, positionOffset: 5, base: 100, style: style)
            }
        }
        // 4 queries use the per-key kernel, 9 the matrix-product path.
        for (queries, window, heads, kvHeads) in [(4, nil, 4, 2), (4, 2, 2, 2), (4, 3, 3, 1), (9, nil, 2, 1), (9, 3, 2, 2)]
            as [(Int, Int?, Int, Int)]
        {
            GradientCheck.check(
                "attention \(queries) queries, window \(String(describing: window)) \(heads)/\(kvHeads)",
                inputs: [tensor([queries, heads, 5]), tensor([queries + 2, kvHeads, 5]), tensor([queries + 2, kvHeads, 3])]
            ) {
                Tensor.attention(
                    query: $0[0], key: $0[1], value: $0[2], heads: heads, kvHeads: kvHeads,
                    queryOffset: 2, keyOffset: 0, window: window, scale: 0.6)
            }
        }
        // Sinks (constants) on both paths.
        for queries in [4, 9] {
            let sinks = Tensor(shape: [2], values: [0.5, -1])
            GradientCheck.check(
                "attention with sinks, \(queries) queries",
                inputs: [tensor([queries, 2, 5]), tensor([queries + 2, 1, 5]), tensor([queries + 2, 1, 3])]
            ) {
                Tensor.attention(
                    query: $0[0], key: $0[1], value: $0[2], heads: 2, kvHeads: 1, queryOffset: 2, keyOffset: 0, window: 3,
                    scale: 0.6, sinks: sinks)
            }
        }
    }

    func testShapeAndIndexOps() {
        GradientCheck.check("reshape", inputs: [tensor([2, 6])]) { $0[0].reshaped([3, 4]) }
        GradientCheck.check("transpose", inputs: [tensor([2, 3])]) { $0[0].transposed().contiguous() }
        GradientCheck.check("slice", inputs: [tensor([4, 3])]) { $0[0].slice(1..<3, axis: 0).contiguous() }
        GradientCheck.check("sum", inputs: [tensor([2, 3])]) { $0[0].sum() }
        GradientCheck.check("mean", inputs: [tensor([2, 3])]) { $0[0].mean() }
        GradientCheck.check("sumRows", inputs: [tensor([3, 4])]) { $0[0].sumRows() }
        GradientCheck.check("sumColumns", inputs: [tensor([3, 4])]) { $0[0].sumColumns() }
        GradientCheck.check("concatenate", inputs: [tensor([2, 3]), tensor([2, 2])]) { Tensor.concatenate([$0[0], $0[1]], axis: 1) }
        GradientCheck.check("gatherRows", inputs: [tensor([4, 3])]) { $0[0].gatherRows([3, 0, 3]) }
        GradientCheck.check("scatterAddRows", inputs: [tensor([3, 2])]) { Tensor.scatterAddRows($0[0], indices: [1, 1, 0], rows: 4) }
        GradientCheck.check("scaleRows", inputs: [tensor([3, 4]), tensor([3])]) { Tensor.scaleRows($0[0], by: $0[1]) }
        GradientCheck.check("pick", inputs: [tensor([3, 4])]) { $0[0].pick([3, 0, 1]) }
    }

    func testGradientsAccumulateAndOnlyWhileRecording() {
        let w = Tensor(shape: [2], values: [1, 2]).requiringGradient()
        let unrecorded = (w * w).sum()
        XCTAssertNil(unrecorded.gradientNode, "nothing is recorded unless recording is on")
        for _ in 0..<2 {
            Autograd.recording { Autograd.backward((w * w).sum()) }
        }
        XCTAssertEqual(w.gradient?.floats, [4, 8], "two backward passes add up")
        w.zeroGradient()
        XCTAssertNil(w.gradient)
    }
}
