import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTensor

/// Every kernel variant this processor can run, against the naive reference on odd shapes. A
/// variant the processor lacks is reported as skipped, by name.
final class InstructionSetTests: XCTestCase {
    func testSSE2Kernels() throws { try checkKernels(.sse2) }

    func testNEONKernels() throws { try checkKernels(.neon) }

    func testAVX2Kernels() throws { try checkKernels(.avx2) }

    func testAVX512Kernels() throws { try checkKernels(.avx512) }

    func testAVX512BF16Kernels() throws { try checkKernels(.avx512bf16) }

    func testEnvironmentChoosesOnlySupportedSets() throws {
        XCTAssertNil(try InstructionSet.environmentSet([:]))
        XCTAssertEqual(try InstructionSet.environmentSet(["CHRONOS_ISA": InstructionSet.best.rawValue.uppercased()]), .best)
        XCTAssertThrowsError(try InstructionSet.environmentSet(["CHRONOS_ISA": "avx9000"])) { error in
            XCTAssertTrue("\(error)".contains("CHRONOS_ISA"), "\(error)")
        }
        for set in InstructionSet.allCases where !set.isSupported {
            XCTAssertThrowsError(try InstructionSet.environmentSet(["CHRONOS_ISA": set.rawValue]), "\(set)")
        }
        XCTAssertTrue(InstructionSet.supported.contains(.current))
    }

    func testBF16RoundingMatchesTheScalarConversion() {
        let values: [Float] = [0, -0, 1, -1, 1.00390625, 1.01171875, 3.4e38, -3.4e38, .infinity, -.infinity, .nan, 1e-40, 65504.5]
        var random = TestRandom(seed: 3)
        let all = values + random.values(1000, -1e6, 1e6)
        for value in all {
            let expected = HalfPrecision.bf16(from: value)
            let rounded = Tensor(shape: [1], values: [value], dtype: .bf16).converted(to: .f32).floats[0]
            XCTAssertEqual(rounded.bitPattern, HalfPrecision.float(fromBF16: expected).bitPattern, "\(value)")
        }
    }

    /// Matrix-vector, activations-times-weights and packed GEMM with `isa` against naive sums.
    func checkKernels(_ isa: InstructionSet, file: StaticString = #filePath, line: UInt = #line) throws {
        guard isa.isSupported else { throw XCTSkip("\(isa) is not supported by this processor") }
        var random = TestRandom(seed: 29)
        // Row counts around multiples of four (the kernels read four runs of rows side by side),
        // and rows longer than the kernels' stack copy of x (4096).
        for (rows, cols) in [(1, 1), (3, 15), (5, 16), (9, 17), (4, 33), (7, 2049), (6, 2051), (13, 4099)] {
            let w = random.values(rows * cols), x = random.values(cols)
            for dtype in [DType.f32, .bf16, .f16] {
                let weight = Tensor(shape: [rows, cols], values: w, dtype: dtype)
                let xs =
                    dtype == .bf16 && isa.roundsActivationsToBF16
                    ? x.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) } : x
                let expected = Naive.matvec(weight.floats, rows: rows, cols: cols, xs)
                var y = [Float](repeating: .nan, count: rows)
                x.withUnsafeBufferPointer { xp in
                    MatVec.multiply(
                        weights: weight.rawPointer, dtype: dtype, rows: rows, cols: cols, x: xp.baseAddress!,
                        y: &y, isa: isa)
                }
                assertClose(y, expected, tolerance: 1e-5, "\(isa) matvec \(dtype) \(rows)×\(cols)", file: file, line: line)
            }
        }
        for (m, n, k) in [(1, 1, 1), (3, 5, 15), (5, 6, 16), (7, 7, 17), (13, 33, 31), (4, 12, 32), (9, 13, 100), (2, 3, 65)] {
            let a = random.values(m * k), b = random.values(n * k)
            for dtype in [DType.f32, .bf16, .f16] {
                let weight = Tensor(shape: [n, k], values: b, dtype: dtype)
                let activations =
                    dtype == .bf16 && isa.roundsActivationsToBF16
                    ? a.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) } : a
                let expected = Naive.gemm(
                    transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: activations, lda: k,
                    b: weight.floats, ldb: k, beta: 0, c: [Float](repeating: 0, count: m * n), ldc: n)
                var c = [Float](repeating: .nan, count: m * n)
                a.withUnsafeBufferPointer { ap in
                    SwiftGemm.multiplyTransposed(
                        m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: weight.rawPointer, bType: dtype,
                        ldb: k, c: &c, ldc: n, isa: isa)
                }
                assertClose(c, expected, tolerance: 1e-5, "\(isa) A·Bᵀ \(dtype) \(m)×\(n)×\(k)", file: file, line: line)
            }
        }
        for (m, n, k) in [(1, 1, 1), (7, 9, 5), (13, 33, 17), (17, 70, 300), (40, 65, 3)] {
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = random.values(m * k), b = random.values(k * n), c0 = random.values(m * n)
                let expected = Naive.gemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: transA ? m : k,
                    b: b, ldb: transB ? k : n, beta: 2, c: c0, ldc: n)
                // The set's own tile, even where the GEMM would pick a narrower one here.
                var c = c0
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        SwiftGemm.gemm(
                            transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: ap.baseAddress!,
                            lda: transA ? m : k, b: UnsafeRawPointer(bp.baseAddress!), bType: .f32, ldb: transB ? k : n,
                            beta: 2, c: &c, ldc: n, pool: .shared, tile: .init(isa, narrowerWhereFaster: false))
                    }
                }
                assertClose(c, expected, tolerance: 1e-4, "\(isa) gemm \(transA) \(transB) \(m)×\(n)×\(k)", file: file, line: line)
            }
        }
    }
}
