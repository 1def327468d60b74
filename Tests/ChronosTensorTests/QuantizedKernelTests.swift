import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTensor

/// The block-format kernels against the product of the dequantised weights in f32, for every
/// type, every instruction set this processor runs (the portable C kernel among them) and the
/// matrix-vector, batched and `Tensor.linear` paths.
///
/// The kernels quantise the activations to 8 bits per block (scale d = max |x| / 127), so each
/// activation is off by at most d / 2 plus the rounding of d to a half (127 · d · 2⁻¹¹): the
/// result may differ from the exact product by Σ_c |w_c| · 0.6 · d_c. Q8_1's block sum s is
/// also a half, off by 2⁻¹¹ · Σ_block |x| at most, and q4_1 / q5_1 multiply it by their
/// minimum; float accumulation adds 10⁻⁵ · Σ |w · x|. The tolerance is that bound, per element.
/// Every instruction set's kernel computes the portable kernel's integer sums and scales, so
/// they must agree with it to float rounding alone: 10⁻⁵ · Σ |w · x|.
final class QuantizedKernelTests: XCTestCase {
    static let types: [DType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .mxfp4]

    /// Byte offsets of a block's half-precision scales (d, and m or dmin where the type has it).
    static func scaleOffsets(_ type: DType) -> [Int] {
        switch type {
        case .q4_1, .q5_1, .q4_k, .q5_k: [0, 2]
        case .q2_k: [80, 82]
        case .q3_k: [108]
        case .q6_k: [208]
        case .mxfp4: []
        default: [0]
        }
    }

    /// A `[rows, cols]` weight of random block bytes (every bit pattern of the quants and
    /// sub-block scales) with finite, moderate half-precision scales.
    static func randomWeight(_ type: DType, rows: Int, cols: Int, _ random: inout TestRandom) -> Tensor {
        let weight = Tensor(zeros: [rows, cols], dtype: type)
        let bytes = weight.rawPointer.assumingMemoryBound(to: UInt8.self)
        for i in 0..<weight.byteCount { bytes[i] = UInt8(min(255, Int(random.uniform(0, 256)))) }
        let magnitude: Float = type.blockElements == 256 ? 0.003 : 0.03
        for block in 0..<(weight.byteCount / type.blockBytes) {
            // MXFP4's scale is a power of two, 2^(e − 127): 2^-10 to 2^-6 here.
            if type == .mxfp4 { (weight.rawPointer + block * type.blockBytes).storeBytes(of: UInt8(117 + block % 5), as: UInt8.self) }
            for offset in scaleOffsets(type) {
                let d = random.uniform(0.3, 1) * magnitude * (random.uniform() < 0 ? -1 : 1)
                (weight.rawPointer + block * type.blockBytes + offset).storeBytes(of: HalfPrecision.f16(from: d), as: UInt16.self)
            }
        }
        return weight
    }

    /// The exact products of dequantised weights `w` and activations `x` ([tokens, cols]), and
    /// the bound on each kernel's error the class comment derives.
    static func reference(_ type: DType, w: [Float], rows: Int, cols: Int, x: [Float], tokens: Int) -> (
        y: [Float], bound: [Float], rounding: [Float]
    ) {
        let dotBlock = type.blockElements  // Q8_0 and Q8_1 blocks are 32 values, Q8_K 256, as the weights'
        let hasMinimum = type == .q4_1 || type == .q5_1
        var y = [Float](repeating: 0, count: tokens * rows), bound = y, rounding = y
        for t in 0..<tokens {
            let xt = x[(t * cols)..<((t + 1) * cols)]
            let step = (0..<(cols / dotBlock)).map { b in
                Double(xt[(t * cols + b * dotBlock)..<(t * cols + (b + 1) * dotBlock)].map(abs).max()!) / 127
            }
            let blockSums = (0..<(cols / dotBlock)).map { b in
                Double(xt[(t * cols + b * dotBlock)..<(t * cols + (b + 1) * dotBlock)].map(abs).reduce(0, +))
            }
            for r in 0..<rows {
                var sum = 0.0, error = 0.0, magnitude = 0.0
                for c in 0..<cols {
                    let wc = Double(w[r * cols + c]), xc = Double(xt[t * cols + c])
                    sum += wc * xc
                    magnitude += abs(wc * xc)
                    error += abs(wc) * 0.6 * step[c / dotBlock]
                }
                if hasMinimum {
                    for b in 0..<(cols / dotBlock) {
                        let largest = (0..<dotBlock).map { abs(Double(w[r * cols + b * dotBlock + $0])) }.max()!
                        error += largest * blockSums[b] / 2048
                    }
                }
                y[t * rows + r] = Float(sum)
                bound[t * rows + r] = Float(error + 1e-5 * magnitude + 1e-6)
                rounding[t * rows + r] = Float(1e-5 * magnitude + 1e-6)
            }
        }
        return (y, bound, rounding)
    }

    static func assertWithin(
        _ actual: [Float], _ expected: [Float], _ bound: [Float], _ message: @autoclosure () -> String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(actual.count, expected.count, message(), file: file, line: line)
        for i in 0..<min(actual.count, expected.count) where !(abs(actual[i] - expected[i]) <= bound[i]) {
            XCTFail("element \(i): \(actual[i]) vs \(expected[i]), bound \(bound[i]) — \(message())", file: file, line: line)
            return
        }
    }

    /// Rows and columns per type: odd row counts, several blocks a row, one matrix tall enough
    /// that the rows are split across threads, and for the 32-value formats one row longer than
    /// 256 blocks (the AVX2 Q4_0 kernel keeps its activation table on the heap there).
    static func shapes(_ type: DType) -> [(rows: Int, cols: Int)] {
        type.blockElements == 256
            ? [(1, 512), (5, 768), (37, 512), (261, 512)] : [(1, 96), (5, 160), (37, 800), (261, 512), (9, 8224)]
    }

    func testMatVecAndBatchedProductsMatchDequantisedWeights() {
        var random = TestRandom(seed: 41)
        let tokenCounts = [1, 3, 7, 33]
        for type in Self.types {
            for (rows, cols) in Self.shapes(type) {
                let weight = Self.randomWeight(type, rows: rows, cols: cols, &random)
                let w = weight.floats
                let tokens = rows > 100 ? 3 : tokenCounts.max()!
                var x = random.values(tokens * cols)
                // A block of zeros: the activation quantisers' all-zero case.
                for c in 0..<type.blockElements { x[cols + c] = 0 }
                let (expected, bound, rounding) = Self.reference(type, w: w, rows: rows, cols: cols, x: x, tokens: tokens)
                var portable: [Float]?
                for isa in InstructionSet.supported {
                    var y = [Float](repeating: .nan, count: tokens * rows)
                    for t in 0..<min(tokens, 3) {
                        x.withUnsafeBufferPointer { xs in
                            y.withUnsafeMutableBufferPointer { ys in
                                MatVec.multiply(
                                    weights: weight.rawPointer, dtype: type, rows: rows, cols: cols, x: xs.baseAddress! + t * cols,
                                    y: ys.baseAddress! + t * rows, isa: isa)
                            }
                        }
                    }
                    let n = min(tokens, 3) * rows
                    Self.assertWithin(Array(y[..<n]), Array(expected[..<n]), Array(bound[..<n]), "matvec \(type) \(rows)×\(cols) \(isa)")
                    if let portable {
                        Self.assertWithin(
                            Array(y[..<n]), portable, Array(rounding[..<n]), "matvec \(type) \(rows)×\(cols) \(isa) vs portable")
                    } else {
                        portable = Array(y[..<n])
                    }
                    for m in tokenCounts where m <= tokens {
                        var c = [Float](repeating: .nan, count: m * rows)
                        SwiftGemm.multiplyTransposed(
                            m: m, n: rows, k: cols, a: x, lda: cols, b: weight.rawPointer, bType: type, ldb: cols, c: &c, ldc: rows,
                            isa: isa)
                        Self.assertWithin(
                            c, Array(expected[..<(m * rows)]), Array(bound[..<(m * rows)]), "batched \(type) \(m)×\(rows)×\(cols) \(isa)")
                        let shared = min(m, 3) * rows
                        Self.assertWithin(
                            Array(c[..<shared]), Array(y[..<shared]), Array(rounding[..<shared]),
                            "batched \(type) \(m)×\(rows)×\(cols) \(isa) vs matvec")
                    }
                }
            }
        }
    }

    func testLinearTakesBlockFormatWeights() {
        var random = TestRandom(seed: 43)
        for type in Self.types {
            let rows = 5, cols = Self.shapes(type)[1].cols
            let weight = Self.randomWeight(type, rows: rows, cols: cols, &random)
            let bias = Tensor(shape: [rows], values: random.values(rows))
            for tokens in [1, 3, 7, 33] {
                let x = random.values(tokens * cols)
                var (expected, bound, _) = Self.reference(type, w: weight.floats, rows: rows, cols: cols, x: x, tokens: tokens)
                for i in expected.indices { expected[i] += bias.floats[i % rows] }
                let y = Tensor.linear(Tensor(shape: [tokens, cols], values: x), weight: weight, bias: bias)
                XCTAssertEqual(y.shape, [tokens, rows])
                Self.assertWithin(y.floats, expected, bound, "linear \(type) \(tokens) tokens")
            }
        }
    }

    func testLinearBackwardThroughBlockFormatWeightWidensIt() {
        var random = TestRandom(seed: 47)
        let rows = 3, cols = 256, tokens = 5
        let weight = Self.randomWeight(.q4_k, rows: rows, cols: cols, &random)
        let x = Tensor(shape: [tokens, cols], values: random.values(tokens * cols)).requiringGradient()
        Autograd.recording { Autograd.backward(Tensor.linear(x, weight: weight).sum()) }
        let dx = x.gradient!.floats
        let w = weight.floats
        // ∂Σy/∂x[t, c] = Σ_r W[r, c] for every token.
        let columnSums = (0..<cols).map { c in (0..<rows).reduce(Float(0)) { $0 + w[$1 * cols + c] } }
        assertClose(dx, (0..<tokens).flatMap { _ in columnSums }, tolerance: 1e-5)
    }

    /// Activations round as llama.cpp's reference quantisers do: Q8_0 (and Q8_1) halves away
    /// from zero as `roundf`, Q8_K halves to even as `nearbyintf`, with values just below a
    /// half rounded down. Scales of 1 make each value its own quant.
    func testActivationQuantisersRoundHalvesAsLlamaCpp() {
        let values: [Float] = [2.5, -0.5, 63.5, -1.5, 0.5, 1.5, 0.49999997, -0.49999997, 1.4999999, 126.5]
        func quants(_ weightType: DType, _ x: [Float], offset: Int) -> [Int8] {
            x.withUnsafeBufferPointer { xs in
                QuantizedActivations.withQuantized(weightType, rows: 1, cols: x.count, xs.baseAddress!, stride: x.count) { q in
                    (0..<values.count).map { Int8(bitPattern: q.load(fromByteOffset: offset + 1 + $0, as: UInt8.self)) }
                }
            }
        }
        // Q8_0: 127 sets d = 1; its quants follow the two-byte scale.
        let awayFromZero = quants(.q4_0, [127] + values + [Float](repeating: 0, count: 32 - 1 - values.count), offset: 2)
        XCTAssertEqual(awayFromZero, [3, -1, 64, -2, 1, 2, 0, 0, 1, 127])
        // Q8_K: −127, the value of largest magnitude, sets the scale to 1; quants follow the float scale.
        let toEven = quants(.q4_k, [-127] + values + [Float](repeating: 0, count: 256 - 1 - values.count), offset: 4)
        XCTAssertEqual(toEven, [2, 0, 64, -2, 0, 2, 0, 0, 1, 126])
    }
}
