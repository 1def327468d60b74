import ChronosTensor
import Foundation
import XCTest

/// Deterministic pseudo-random values for tests (a fixed LCG, so failures reproduce).
public struct TestRandom {
    var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }

    /// A value uniformly in [lo, hi).
    public mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return lo + (hi - lo) * Float(state >> 40) / Float(1 << 24)
    }

    /// `count` values uniformly in [lo, hi).
    public mutating func values(_ count: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(lo, hi) }
    }
}

/// Asserts two float arrays agree elementwise within `tolerance` (absolute plus relative).
public func assertClose(
    _ actual: [Float], _ expected: [Float], tolerance: Float = 1e-5, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
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

/// Gradients from autograd checked against central finite differences.
public enum GradientCheck {
    /// Checks ∂L/∂input for L = Σ f(inputs) ⊙ R, with R a fixed random tensor so that every
    /// output element carries a different weight.
    public static func check(
        _ name: String, inputs: [Tensor], tolerance: Float = 2e-2, step: Float = 1e-2,
        file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor
    ) {
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
                    XCTFail(
                        "\(name): ∂L/∂input\(index)[\(i)] = \(analyticValues[i]), finite difference \(numeric)",
                        file: file, line: line)
                    break
                }
            }
        }
    }
}
