import ChronosTensor
import Foundation

/// `chronos bench kernels`: memory bandwidth, matrix-vector GB/s per weight dtype and GEMM
/// GFLOP/s per backend, each beside the bound it is judged against, all measured in one run.
public struct KernelBench {
    /// Where the measurements go.
    public let report: BenchReport
    /// The threads the multi-threaded figures use.
    public let pool = ThreadPool.shared

    /// Rounds of the interleaved bandwidth measurements; each figure is the best of its rounds.
    public let rounds = 7

    /// The weight types whose matrix-vector products are measured against the streaming read.
    public var matvecTypes: [DType] = KernelBench.defaultMatvecTypes

    /// Whether to stop after the bandwidth and matrix-vector figures (no compute peaks or GEMMs).
    public var matvecOnly = false

    /// The float types and the block formats that matter most for decoding.
    public static let defaultMatvecTypes: [DType] = [.f32, .bf16, .f16, .q8_0, .q4_k, .q6_k]

    /// A kernel benchmark reporting to `report`.
    public init(report: BenchReport) {
        self.report = report
    }

    /// Takes every measurement in turn.
    public func run() {
        report.progress("copy over 2 × 512 MiB")
        let copy = MemoryBandwidth.copy(pool: pool)
        report.add(Measurement(name: "copy (read + write)", value: copy, unit: "GB/s"))

        // The machine's bandwidth varies from moment to moment, so the bound and the kernels are
        // measured in alternation, round after round, and each keeps its best round.
        let dtypes = matvecTypes
        report.progress("filling \(dtypes.count) sets of 4096×4096 matrices (≥ 512 MiB each)")
        let buffer = MemoryBandwidth.ReadBuffer(bytes: 1 << 30)
        let matvecs = dtypes.map { MatVecWorkload(dtype: $0) }
        let best = InterleavedSchedule(rounds: rounds, candidates: 1 + matvecs.count).best { slot in
            guard slot.candidate > 0 else {
                report.progress(
                    "bandwidth round \(slot.round + 1)/\(rounds): streaming read over 1 GiB, then matvec 4096×4096 in \(dtypes.map(\.rawValue).joined(separator: ", "))"
                )
                return buffer.measure(pool: pool)
            }
            return matvecs[slot.candidate - 1].measure(pool: pool)
        }
        let read = best[0], matvec = Array(best.dropFirst())
        report.add(Measurement(name: "streaming read", value: read, unit: "GB/s"))
        for (i, dtype) in dtypes.enumerated() {
            report.add(
                Measurement(
                    name: "matvec \(dtype) 4096x4096", value: matvec[i], unit: "GB/s",
                    bound: read, boundName: "streaming read"))
        }
        if matvecOnly { return }

        let isa = InstructionSet.current
        report.progress("FMA peak on one core and on all \(pool.threadCount) at once (\(isa))")
        let peakOne = fmaPeak(isa, pool: ThreadPool(threadCount: 1))
        let peak = fmaPeak(isa, pool: pool)
        report.add(Measurement(name: "FMA peak, 1 core (\(isa))", value: peakOne, unit: "GFLOP/s"))
        report.add(Measurement(name: "FMA peak, \(pool.threadCount) cores (\(isa))", value: peak, unit: "GFLOP/s"))
        if let dotPeak = bf16DotPeak(isa) {
            report.add(Measurement(name: "bf16 dot peak, 1 core (\(isa))", value: dotPeak, unit: "GFLOP/s"))
        }
        if InstructionSet.runInt8DotPeak(iterations: 1) != nil {
            var operations = 0.0
            let seconds = Stopwatch.best(repeats: 3) { operations = InstructionSet.runInt8DotPeak(iterations: 20_000_000)! }
            report.add(
                Measurement(
                    name: "int8 dot peak, 1 core (avx512-vnni)", value: operations / seconds / 1e9,
                    unit: "GOP/s"))
        }
        if !isa.hasFullWidthFMA {
            report.progress("this processor's 512-bit multiply-adds run no faster than 256-bit ones: the GEMM uses the 256-bit tile")
        }
        for threads in Set([1, pool.threadCount]).sorted() {
            report.progress("GEMM 1024³, swift (\(isa)), \(threads) thread\(threads == 1 ? "" : "s")")
            let threadPool = threads == pool.threadCount ? pool : ThreadPool(threadCount: threads)
            let rate = gemmRate { a, b, c, n in
                SwiftGemm.sgemm(
                    transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n,
                    beta: 0, c: c, ldc: n, pool: threadPool)
            }
            report.add(
                Measurement(
                    name: "gemm 1024³ swift (\(isa)), \(threads) thread\(threads == 1 ? "" : "s")", value: rate,
                    unit: "GFLOP/s", bound: threads == 1 ? peakOne : peak, boundName: "FMA peak, \(threads) core\(threads == 1 ? "" : "s")")
            )
        }
        var direct: Double?
        if let blas = Backends.statuses.first(where: { $0.name == "openblas" })?.backend {
            report.progress("GEMM 1024³, OpenBLAS called directly")
            direct = gemmRate { a, b, c, n in
                blas.sgemm(
                    transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n,
                    beta: 0, c: c, ldc: n)
            }
            report.add(
                Measurement(
                    name: "gemm 1024³ openblas direct", value: direct!, unit: "GFLOP/s",
                    bound: peak, boundName: "FMA peak, all cores"))
        }
        for status in Backends.statuses where status.isAvailable {
            report.progress("GEMM 1024³ through Tensor.matmul, backend \(status.name)")
            let rate = matmulRate(backend: status.backend!)
            let bound = status.name == "swift" ? peak : direct
            let boundName = status.name == "swift" ? "FMA peak, all cores" : "\(status.name) direct"
            report.add(
                Measurement(
                    name: "gemm 1024³ \(status.name) (Tensor.matmul)", value: rate, unit: "GFLOP/s",
                    bound: bound, boundName: boundName))
        }
    }

    /// Matrix-vector products over enough 4096×4096 matrices (≥ 512 MiB) that every read
    /// comes from DRAM. Block-format matrices are one quantised matrix copied, since the
    /// K formats' quantisers are slow and the values do not change the time.
    final class MatVecWorkload {
        let dtype: DType
        let weights: [Tensor]
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 4096)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: 4096)

        init(dtype: DType) {
            self.dtype = dtype
            let matrices = max(2, (512 << 20) / dtype.byteCount(4096 * 4096))
            var first: Tensor?
            weights = (0..<matrices).map { i in
                let t = Tensor(zeros: [4096, 4096], dtype: dtype)
                if let first, dtype.isQuantized {
                    t.rawPointer.copyMemory(from: first.rawPointer, byteCount: t.byteCount)
                } else {
                    KernelBench.fill(t, seed: i)
                }
                first = first ?? t
                return t
            }
            for i in 0..<4096 { x[i] = Float(i % 7) * 0.1 }
        }

        deinit {
            x.deallocate()
            y.deallocate()
        }

        /// GB/s of weight bytes (blocks, scales included, for the block formats) read in one
        /// pass over every matrix.
        func measure(pool: ThreadPool) -> Double {
            let seconds = Stopwatch.time {
                for w in weights {
                    MatVec.multiply(weights: w.rawPointer, dtype: dtype, rows: 4096, cols: 4096, x: x, y: y, pool: pool)
                }
            }
            return Double(weights.count * dtype.byteCount(4096 * 4096)) / seconds / 1e9
        }
    }

    /// GFLOP/s of `body` multiplying two 1024×1024 matrices, best of 5.
    func gemmRate(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Double {
        let n = 1024
        let a = Tensor(zeros: [n, n]), b = Tensor(zeros: [n, n]), c = Tensor(zeros: [n, n])
        Self.fill(a, seed: 1)
        Self.fill(b, seed: 2)
        let seconds = Stopwatch.best(repeats: 5) { body(a.floatPointer, b.floatPointer, c.floatPointer, n) }
        return 2 * Double(n * n * n) / seconds / 1e9
    }

    /// GFLOP/s of `Tensor.matmul` on 1024×1024 operands with `backend`, best of 5.
    func matmulRate(backend: any ComputeBackend) -> Double {
        let n = 1024
        let a = Tensor(zeros: [n, n]), b = Tensor(zeros: [n, n])
        Self.fill(a, seed: 1)
        Self.fill(b, seed: 2)
        var sink: Float = 0
        let seconds = Stopwatch.best(repeats: 5) { sink += Tensor.matmul(a, b, backend: backend).floatPointer[0] }
        precondition(sink.isFinite, "the product of finite matrices must be finite")
        return 2 * Double(n * n * n) / seconds / 1e9
    }

    /// GFLOP/s of independent multiply-add chains held in registers at the width of `isa`, run
    /// on every thread of `pool` at once: the compute peak of that many cores, best of 3.
    func fmaPeak(_ isa: InstructionSet, pool: ThreadPool) -> Double {
        let iterations = 20_000_000
        let threads = pool.threadCount
        let seconds = Stopwatch.best(repeats: 3) {
            pool.parallelFor(threads) { _ in
                if isa.runFMAPeak(iterations: iterations) == nil { Self.swiftFMAChains(iterations: iterations) }
            }
        }
        // Operations of one iteration: the C loop says; the Swift one is 12 chains × 8 lanes × 2.
        let perIteration = isa.runFMAPeak(iterations: 1) ?? 12 * 8 * 2
        return perIteration * Double(iterations * threads) / seconds / 1e9
    }

    /// The portable sets' peak loop: twelve chains of 8-lane multiply-adds in Swift SIMD.
    static func swiftFMAChains(iterations: Int) {
        typealias V = SIMD8<Float>
        var c0 = V(repeating: 0), c1 = V(repeating: 1), c2 = V(repeating: 2), c3 = V(repeating: 3)
        var c4 = V(repeating: 4), c5 = V(repeating: 5), c6 = V(repeating: 6), c7 = V(repeating: 7)
        var c8 = V(repeating: 8), c9 = V(repeating: 9), c10 = V(repeating: 10), c11 = V(repeating: 11)
        let m = V(repeating: 0.999999)
        for _ in 0..<iterations {
            c0 = c0.mulAdd(c0, m)
            c1 = c1.mulAdd(c1, m)
            c2 = c2.mulAdd(c2, m)
            c3 = c3.mulAdd(c3, m)
            c4 = c4.mulAdd(c4, m)
            c5 = c5.mulAdd(c5, m)
            c6 = c6.mulAdd(c6, m)
            c7 = c7.mulAdd(c7, m)
            c8 = c8.mulAdd(c8, m)
            c9 = c9.mulAdd(c9, m)
            c10 = c10.mulAdd(c10, m)
            c11 = c11.mulAdd(c11, m)
        }
        let total = [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11].reduce(V(), +).sum()
        if total.isNaN { print("", terminator: "") }  // keeps the chains from being optimised away
    }

    /// GFLOP/s of independent bf16 dot-product chains on one core, where `isa` has them.
    func bf16DotPeak(_ isa: InstructionSet) -> Double? {
        guard isa.runBF16DotPeak(iterations: 1) != nil else { return nil }
        var operations = 0.0
        let seconds = Stopwatch.best(repeats: 3) { operations = isa.runBF16DotPeak(iterations: 20_000_000)! }
        return operations / seconds / 1e9
    }

    /// Fills a tensor with a cheap deterministic pattern in [-0.5, 0.5).
    static func fill(_ t: Tensor, seed: Int) {
        var state = UInt32(truncatingIfNeeded: seed &* 2_654_435_761 &+ 1)
        let values = (0..<t.count).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 24) - 0.5
        }
        values.withUnsafeBufferPointer { t.store($0) }
    }
}
