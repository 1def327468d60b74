import ChronosTensor
import ChronosTestSupport
import XCTest

final class GemmTests: XCTestCase {
    /// Shapes that cross every blocking boundary (6-row and 16-column tiles, 96-row blocks,
    /// 256-deep panels) and degenerate ones (one row, one column, one inner element).
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (1, 17, 5), (17, 1, 5), (5, 3, 1), (7, 33, 19), (13, 16, 8), (100, 35, 300), (97, 130, 257)
    ]

    func check(backend: any ComputeBackend, tolerance: Float = 1e-4) {
        var random = TestRandom(seed: 7)
        for (m, n, k) in Self.shapes {
            for transA in [false, true] {
                for transB in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-1.5, 0.25)] {
                        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 1
                        let a = random.values((transA ? k : m) * lda)
                        let b = random.values((transB ? n : k) * ldb)
                        var c = random.values(m * ldc)
                        let expected = Naive.gemm(
                            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                        if beta == 0 { for i in c.indices { c[i] = .nan } }  // β = 0 must not read C
                        c.withUnsafeMutableBufferPointer { cp in
                            backend.sgemm(
                                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                        }
                        for i in 0..<m {
                            assertClose(
                                Array(c[(i * ldc)..<(i * ldc + n)]), Array(expected[(i * ldc)..<(i * ldc + n)]),
                                tolerance: tolerance,
                                "\(backend.name) m\(m) n\(n) k\(k) tA \(transA) tB \(transB) α \(alpha) β \(beta) row \(i)")
                        }
                    }
                }
            }
        }
    }

    func testSwiftGemmMatchesNaive() {
        check(backend: SwiftBackend())
    }

    func testSwiftGemmSingleThreadMatchesNaive() {
        check(backend: SwiftBackend(pool: ThreadPool(threadCount: 1)))
    }

    func testOpenBLASMatchesSwift() throws {
        guard let blas = Backends.statuses.first(where: { $0.name == "openblas" })?.backend else {
            throw XCTSkip("OpenBLAS is not installed on this machine")
        }
        check(backend: blas)
    }

    func testReducedPrecisionBIsWidenedWhilePacking() {
        var random = TestRandom(seed: 5)
        for (m, n, k) in [(1, 1, 1), (7, 33, 19), (100, 35, 300)] {
            for transB in [false, true] {
                let a = random.values(m * k)
                for dtype in [DType.bf16, .f16] {
                    let b = Tensor(shape: transB ? [n, k] : [k, n], values: random.values(n * k), dtype: dtype)
                    let expected = Naive.gemm(
                        transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                        b: b.floats, ldb: transB ? k : n, beta: 0, c: [Float](repeating: 0, count: m * n), ldc: n)
                    var c = [Float](repeating: .nan, count: m * n)
                    SwiftGemm.gemm(
                        transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                        b: b.rawPointer, bType: dtype, ldb: transB ? k : n, beta: 0, c: &c, ldc: n)
                    assertClose(c, expected, tolerance: 1e-4, "\(dtype) m\(m) n\(n) k\(k) transB \(transB)")
                }
            }
        }
    }

    func testMatmulOnTensorsWithTransposedViews() {
        var random = TestRandom(seed: 3)
        let a = Tensor(shape: [5, 7], values: random.values(35))
        let b = Tensor(shape: [9, 7], values: random.values(63))
        let viaFlag = Tensor.matmul(a, b, transposeB: true, backend: SwiftBackend())
        let viaView = Tensor.matmul(a, b.transposed(), backend: SwiftBackend())
        let expected = Naive.gemm(
            transA: false, transB: true, m: 5, n: 9, k: 7, alpha: 1, a: a.floats, lda: 7,
            b: b.floats, ldb: 7, beta: 0, c: [Float](repeating: 0, count: 45), ldc: 9)
        XCTAssertEqual(viaFlag.shape, [5, 9])
        assertClose(viaFlag.floats, expected, tolerance: 1e-5)
        assertClose(viaView.floats, expected, tolerance: 1e-5)
    }
}
