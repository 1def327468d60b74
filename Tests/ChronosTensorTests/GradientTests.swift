import ChronosTensor
import XCTest

/// Every differentiable op's gradient against central finite differences.
final class GradientTests: XCTestCase {
    /// Checks ∂L/∂input for L = Σ f(inputs) ⊙ R, with R a fixed random tensor so that every
    /// output element carries a different weight.
    func checkGradients(_ name: String, inputs: [Tensor], tolerance: Float = 2e-2, step: Float = 1e-2,
                        file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
        var random = TestRandom(seed: 99)
        let probe = Autograd.recording(false) { f(inputs) }
        let weights = Tensor(shape: probe.shape, values: random.values(probe.count))
        func loss(_ xs: [Tensor]) -> Float { Autograd.recording(false) { (f(xs) * weights).sum().floats[0] } }

        let leaves = inputs.map { $0.copy().requiringGradient() }
        Autograd.recording {
            let out = (f(leaves) * weights).sum()
            Autograd.backward(out)
        }
        for (index, input) in inputs.enumerated() {
            guard let analytic = leaves[index].gradient else {
                XCTFail("\(name): no gradient reached input \(index)", file: file, line: line)
                continue
            }
            XCTAssertEqual(analytic.shape, input.shape, "\(name): gradient shape of input \(index)", file: file, line: line)
            let values = input.floats
            let analyticValues = analytic.floats
            for i in 0..<values.count {
                var plus = values, minus = values
                plus[i] += step
                minus[i] -= step
                var xsPlus = inputs, xsMinus = inputs
                xsPlus[index] = Tensor(shape: input.shape, values: plus)
                xsMinus[index] = Tensor(shape: input.shape, values: minus)
                let numeric = (loss(xsPlus) - loss(xsMinus)) / (2 * step)
                let limit = tolerance * max(1, abs(numeric))
                if abs(analyticValues[i] - numeric) > limit {
                    XCTFail("\(name): ∂L/∂input\(index)[\(i)] = \(analyticValues[i]), finite difference \(numeric)",
                            file: file, line: line)
                    break
                }
            }
        }
    }

    var random = TestRandom(seed: 1)

    func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor(shape: shape, values: random.values(shape.reduce(1, *), lo, hi))
    }

    func testLinearAndMatmul() {
        checkGradients("linear", inputs: [tensor([5, 7]), tensor([3, 7]), tensor([3])]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients("linear, one token", inputs: [tensor([1, 7]), tensor([3, 7])]) { Tensor.linear($0[0], weight: $0[1]) }
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                checkGradients("matmul \(transposeA) \(transposeB)",
                               inputs: [tensor(transposeA ? [4, 3] : [3, 4]), tensor(transposeB ? [5, 4] : [4, 5])]) {
                    Tensor.matmul($0[0], $0[1], transposeA: transposeA, transposeB: transposeB)
                }
            }
        }
    }

    func testPointwise() {
        checkGradients("add broadcast", inputs: [tensor([3, 4]), tensor([4])]) { $0[0] + $0[1] }
        checkGradients("sub", inputs: [tensor([3, 4]), tensor([3, 4])]) { $0[0] - $0[1] }
        checkGradients("mul broadcast", inputs: [tensor([3, 4]), tensor([4])]) { $0[0] * $0[1] }
        checkGradients("scaled", inputs: [tensor([6])]) { $0[0].scaled(by: -1.7) }
        checkGradients("silu", inputs: [tensor([9], -4, 4)]) { $0[0].silu() }
        checkGradients("sigmoid", inputs: [tensor([9], -4, 4)]) { $0[0].sigmoid() }
        checkGradients("exp", inputs: [tensor([9], -2, 2)]) { $0[0].exp() }
        checkGradients("log", inputs: [tensor([9], 0.5, 3)]) { $0[0].log() }
        checkGradients("squared", inputs: [tensor([9])]) { $0[0].squared() }
        checkGradients("swiglu", inputs: [tensor([2, 5], -3, 3), tensor([2, 5])]) { Tensor.swiglu(gate: $0[0], up: $0[1]) }
    }

    func testRowOps() {
        checkGradients("rmsNorm", inputs: [tensor([3, 6]), tensor([6], 0.5, 1.5)]) { $0[0].rmsNorm(weight: $0[1], eps: 1e-5) }
        checkGradients("softmax", inputs: [tensor([3, 5], -2, 2)]) { $0[0].softmax() }
        checkGradients("logSoftmax", inputs: [tensor([3, 5], -2, 2)]) { $0[0].logSoftmax() }
        checkGradients("crossEntropy", inputs: [tensor([4, 6], -2, 2)]) {
            Tensor.crossEntropy(logits: $0[0], targets: [1, CrossEntropy.ignoreIndex, 5, 0])
        }
    }

    func testSequenceOps() {
        checkGradients("embedding", inputs: [tensor([5, 3])]) { Tensor.embedding($0[0], ids: [4, 1, 4]) }
        for style in [RoPE.Style.halfSplit, .interleaved] {
            checkGradients("rope \(style)", inputs: [tensor([3, 2, 8])]) {
                $0[0].rope(heads: 2, headDim: 8, rotaryDim: 6, positionOffset: 5, base: 100, style: style)
            }
        }
        for (window, heads, kvHeads) in [(nil, 4, 2), (2, 2, 2), (3, 3, 1)] as [(Int?, Int, Int)] {
            checkGradients("attention window \(String(describing: window)) \(heads)/\(kvHeads)",
                           inputs: [tensor([4, heads, 5]), tensor([6, kvHeads, 5]), tensor([6, kvHeads, 3])]) {
                Tensor.attention(query: $0[0], key: $0[1], value: $0[2], heads: heads, kvHeads: kvHeads,
                                 queryOffset: 2, keyOffset: 0, window: window, scale: 0.6)
            }
        }
    }

    func testShapeAndIndexOps() {
        checkGradients("reshape", inputs: [tensor([2, 6])]) { $0[0].reshaped([3, 4]) }
        checkGradients("transpose", inputs: [tensor([2, 3])]) { $0[0].transposed().contiguous() }
        checkGradients("slice", inputs: [tensor([4, 3])]) { $0[0].slice(1..<3, axis: 0).contiguous() }
        checkGradients("sum", inputs: [tensor([2, 3])]) { $0[0].sum() }
        checkGradients("mean", inputs: [tensor([2, 3])]) { $0[0].mean() }
        checkGradients("sumRows", inputs: [tensor([3, 4])]) { $0[0].sumRows() }
        checkGradients("sumColumns", inputs: [tensor([3, 4])]) { $0[0].sumColumns() }
        checkGradients("concatenate", inputs: [tensor([2, 3]), tensor([2, 2])]) { Tensor.concatenate([$0[0], $0[1]], axis: 1) }
        checkGradients("gatherRows", inputs: [tensor([4, 3])]) { $0[0].gatherRows([3, 0, 3]) }
        checkGradients("scatterAddRows", inputs: [tensor([3, 2])]) { Tensor.scatterAddRows($0[0], indices: [1, 1, 0], rows: 4) }
        checkGradients("scaleRows", inputs: [tensor([3, 4]), tensor([3])]) { Tensor.scaleRows($0[0], by: $0[1]) }
        checkGradients("pick", inputs: [tensor([3, 4])]) { $0[0].pick([3, 0, 1]) }
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
