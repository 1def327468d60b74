import CChronosKernels

/// Single-precision matrix multiply, the built-in GEMM.
///
///     C[m×n] = α · op(A)[m×k] · op(B)[k×n] + β · C      (row-major, op = identity or transpose)
///
/// Goto-style blocking: B is packed into `kc × nr` column panels, A into `mr × kc` row panels,
/// and an `mr × nr` register tile is updated with fused multiply-adds — the instruction set's
/// C tile (6 × 32 on AVX-512, 6 × 16 on AVX2), or the Swift one (6 × 16) where it has none.
/// Tasks (A row block × slice of B panels) run on the shared thread pool.
///
/// `multiplyTransposed` is the other shape: activations times row-major weights, C = A·Bᵀ,
/// with no packing, for the projections of a batch of tokens.
public enum SwiftGemm {
    static let mc = 96
    static let nc = 4096

    /// Computes `C = alpha * op(A) * op(B) + beta * C` with leading dimensions in elements.
    /// With `beta == 0` the old contents of C are never read.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool = .shared, isa: InstructionSet = .current
    ) {
        gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
            b: UnsafeRawPointer(b), bType: .f32, ldb: ldb, beta: beta, c: c, ldc: ldc, pool: pool, isa: isa)
    }

    /// As `sgemm`, with B stored as f32, f16 or bf16: elements are widened to f32 while B is
    /// packed, so reduced-precision weights multiply a batch of activations without a copy.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafeRawPointer, bType: DType, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool = .shared, isa: InstructionSet = .current
    ) {
        gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, bType: bType, ldb: ldb,
            beta: beta, c: c, ldc: ldc, pool: pool, tile: Tile(isa))
    }

    /// As `gemm` with a given register tile (the tests reach every instruction set's tile so).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafeRawPointer, bType: DType, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool, tile: Tile
    ) {
        switch bType {
        case .f32: blocked(F32Row.self, tile, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        case .bf16: blocked(BF16Row.self, tile, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        case .f16: blocked(F16Row.self, tile, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        default: preconditionFailure("GEMM needs a float B, got \(bType)")
        }
    }

    /// Computes `C[m×n] = A[m×k] · B[n×k]ᵀ` for f32 activations A and row-major weights B of
    /// `bType` (f32, f16, bf16 or a block format): each thread takes a slice of B's rows and
    /// multiplies them against every row of A in register tiles, reading B where it lies. Where
    /// `isa` has no C kernels this is `gemm` with B transposed for float B, and the portable C
    /// kernel for block formats.
    public static func multiplyTransposed(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafeRawPointer, bType: DType, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool = .shared, isa: InstructionSet = .current
    ) {
        precondition(bType.isWeight, "GEMM needs a float or block-format B, got \(bType)")
        if bType.isQuantized {
            multiplyQuantized(m: m, n: n, k: k, a: a, lda: lda, b: b, bType: bType, ldb: ldb, c: c, ldc: ldc, pool: pool, isa: isa)
            return
        }
        guard let kernels = isa.kernels else {
            gemm(
                transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, bType: bType, ldb: ldb,
                beta: 0, c: c, ldc: ldc, pool: pool, isa: isa)
            return
        }
        if m == 0 || n == 0 { return }
        let code = bType.kernelCode
        // Below ~1M multiply-adds per thread the pool's wake-up costs more than it gains.
        let minColumns = max(6, (1 << 20) / max(1, m * k))
        if bType == .bf16, let round = kernels.round_bf16 {
            // The bf16 dot product takes both operands in bf16: round the activations once.
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: m * k) { rounded in
                let a16 = rounded.baseAddress!
                for i in 0..<m { round(a + i * lda, a16 + i * k, k) }
                pool.parallelChunks(n, minChunk: minColumns) { columns in
                    kernels.gemm_nt(code, m, columns.lowerBound, columns.upperBound, k, a16, k, b, ldb, c, ldc)
                }
            }
        } else {
            pool.parallelChunks(n, minChunk: minColumns) { columns in
                kernels.gemm_nt(code, m, columns.lowerBound, columns.upperBound, k, a, lda, b, ldb, c, ldc)
            }
        }
    }

    /// `multiplyTransposed` for block-format weights B (`ldb` = k): each activation row is
    /// quantised once to B's dot format, then each thread takes a slice of B's rows and
    /// multiplies them against every activation row, several rows per unpacked weight block.
    private static func multiplyQuantized(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafeRawPointer, bType: DType, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool, isa: InstructionSet
    ) {
        precondition(ldb == k && k % bType.blockElements == 0, "\(bType) weights are whole rows of blocks: k \(k), ldb \(ldb)")
        if m == 0 || n == 0 { return }
        let code = Int32(bType.ggmlType!)
        let minColumns = max(6, (1 << 20) / max(1, m * k))
        QuantizedActivations.withQuantized(bType, rows: m, cols: k, a, stride: lda) { aq in
            let kernel = isa.kernels?.quant_gemm_nt ?? chronos_quant_gemm_nt_portable
            pool.parallelChunks(n, minChunk: minColumns) { columns in
                kernel(code, m, columns.lowerBound, columns.upperBound, k, aq, b, c, ldc)
            }
        }
    }

    /// The register tile: its shape and the kernel that computes it and merges it into C.
    struct Tile {
        typealias Kernel =
            @convention(c) (
                Int, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int,
                Int32, Int32, Float, Float
            ) -> Void
        let mr: Int, nr: Int
        /// Steps of k per packed block: a `kc × nr` panel of B takes 16 KiB, so it stays in
        /// the L1 cache while the panels of A stream past it.
        var kc: Int { 4096 / nr }
        let kernel: Kernel?

        /// The tile of `isa`; with `narrowerWhereFaster`, the 256-bit tile on processors that
        /// split 512-bit multiply-adds in two, where it runs the GEMM faster.
        init(_ isa: InstructionSet, narrowerWhereFaster: Bool = true) {
            let isa = isa.hasFullWidthFMA || !narrowerWhereFaster ? isa : .avx2
            if let kernels = isa.kernels {
                mr = Int(kernels.mr)
                nr = Int(kernels.nr)
                kernel = kernels.tile
            } else {
                mr = 6
                nr = 16
                kernel = nil
            }
        }

        /// C[rows×cols] = α · Σ_p a[p, 0..<mr]ᵀ · b[p, 0..<nr] + β · C over `kc` packed steps,
        /// reading C only when β ≠ 0; `scratch` holds mr × nr floats for the Swift tile.
        @inline(__always)
        func run(
            kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
            rows: Int, cols: Int, alpha: Float, beta: Float, scratch: UnsafeMutablePointer<Float>
        ) {
            if let kernel {
                kernel(kc, a, b, c, ldc, Int32(rows), Int32(cols), alpha, beta)
            } else {
                SwiftGemm.microKernel(kc: kc, a: a, b: b, tile: scratch)
                SwiftGemm.merge(tile: scratch, nr: nr, rows: rows, cols: cols, alpha: alpha, beta: beta, c: c, ldc: ldc)
            }
        }
    }

    private static func blocked<W: WeightRow>(
        _: W.Type, _ tile: Tile, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafeRawPointer, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ pool: ThreadPool
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 || alpha == 0 {
            scaleC(m: m, n: n, beta: beta, c: c, ldc: ldc)
            return
        }
        let mr = tile.mr, nr = tile.nr, kc = tile.kc
        // Panels start on cache lines, so no vector load of the tile straddles two.
        let packedBytes = UnsafeMutableRawPointer.allocate(byteCount: 4 * kc * (min(n, nc) + nr), alignment: 64)
        defer { packedBytes.deallocate() }
        let packedB = packedBytes.bindMemory(to: Float.self, capacity: kc * (min(n, nc) + nr))
        for jc in stride(from: 0, to: n, by: nc) {
            let ncBlock = min(nc, n - jc)
            let panelsB = (ncBlock + nr - 1) / nr
            for pc in stride(from: 0, to: k, by: kc) {
                let kcBlock = min(kc, k - pc)
                // Each thread packs a run of B's panels.
                pool.parallelChunks(panelsB, minChunk: max(1, 16384 / (nr * kcBlock))) { panels in
                    let col0 = jc + panels.lowerBound * nr
                    let cols = min(ncBlock - panels.lowerBound * nr, panels.count * nr)
                    let out = packedB + panels.lowerBound * nr * kcBlock
                    if W.self == F32Row.self {
                        chronos_pack_b(transB ? 1 : 0, b.assumingMemoryBound(to: Float.self), ldb, pc, kcBlock, col0, cols, Int32(nr), out)
                    } else {
                        packB(
                            W.self, nr: nr, transB: transB, b: b, ldb: ldb, rowStart: pc, rows: kcBlock, colStart: col0, cols: cols,
                            into: out)
                    }
                }
                let blockBeta: Float = pc == 0 ? beta : 1
                // Row blocks of at most mc rows, as many as a multiple of the threads and of even
                // size, so that no thread is left with one block more than another.
                let threads = pool.threadCount
                let fewest = (m + mc - 1) / mc
                let balanced = fewest == 1 ? 1 : (fewest + threads - 1) / threads * threads
                let mc = ((m + balanced - 1) / balanced + mr - 1) / mr * mr
                let rowBlocks = (m + mc - 1) / mc
                // Enough tasks to keep every thread busy even when m is a single block, but none
                // under the pool's `minimumTaskWork` unless the row blocks alone make more (a
                // decoding step's one-row products, such as latent attention's per-head queries,
                // stay on this thread).
                let wanted = max(1, (threads * 2 + rowBlocks - 1) / rowBlocks)
                let affordable = max(1, m * ncBlock * kcBlock / (rowBlocks * ThreadPool.minimumTaskWork))
                let splits = min(panelsB, wanted, affordable)
                let panelsPerSplit = (panelsB + splits - 1) / splits
                pool.parallelFor(rowBlocks * splits) { task in
                    let ic = (task / splits) * mc
                    let mcBlock = min(mc, m - ic)
                    let firstPanel = (task % splits) * panelsPerSplit
                    let lastPanel = min(panelsB, firstPanel + panelsPerSplit)
                    if firstPanel >= lastPanel { return }
                    let panelsA = (mcBlock + mr - 1) / mr
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: panelsA * mr * kcBlock + mr * nr + 16) { scratch in
                        let base = UInt(bitPattern: scratch.baseAddress!)
                        let packedA = UnsafeMutablePointer<Float>(bitPattern: (base + 63) & ~63)!
                        let out = packedA + panelsA * mr * kcBlock
                        chronos_pack_a(transA ? 1 : 0, a, lda, ic, mcBlock, pc, kcBlock, Int32(mr), packedA)
                        for panel in firstPanel..<lastPanel {
                            let j0 = panel * nr
                            let cols = min(nr, ncBlock - j0)
                            for ir in 0..<panelsA {
                                let rows = min(mr, mcBlock - ir * mr)
                                tile.run(
                                    kc: kcBlock, a: packedA + ir * mr * kcBlock, b: packedB + panel * nr * kcBlock,
                                    c: c + (ic + ir * mr) * ldc + jc + j0, ldc: ldc, rows: rows, cols: cols,
                                    alpha: alpha, beta: blockBeta, scratch: out)
                            }
                        }
                    }
                }
            }
        }
    }

    static func scaleC(m: Int, n: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
    }

    /// Packs op(B)[rowStart..<rowStart+rows, colStart..<colStart+cols] of 16-bit floats, widened to f32, into
    /// `nr`-wide panels: panel p holds `rows × nr` floats, row-major, zero-padded past `cols`.
    static func packB<W: WeightRow>(
        _: W.Type, nr: Int, transB: Bool, b: UnsafeRawPointer, ldb: Int, rowStart: Int, rows: Int,
        colStart: Int, cols: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let panels = (cols + nr - 1) / nr
        for panel in 0..<panels {
            let dst = out + panel * nr * rows
            let j0 = colStart + panel * nr
            let width = min(nr, colStart + cols - j0)
            if width < nr { dst.update(repeating: 0, count: nr * rows) }
            if transB {
                // Column j of the panel is row j0 + j of the stored matrix: walk k in the outer
                // loop so the nr rows' cache lines are reused and the panel is written in order.
                let src = b + (j0 * ldb + rowStart) * W.size
                let rowBytes = ldb * W.size
                for p in 0..<rows {
                    let row = dst + p * nr
                    for j in 0..<width { row[j] = W.load1(src + j * rowBytes, p) }
                }
            } else {
                for p in 0..<rows {
                    let src = b + ((rowStart + p) * ldb + j0) * W.size
                    let row = dst + p * nr
                    if width == nr && !W.deinterleavesPairs {
                        let raw = UnsafeMutableRawPointer(row)
                        for j in stride(from: 0, to: nr, by: 16) {
                            let (lo, hi) = W.load16(src, j)
                            raw.storeBytes(of: lo, toByteOffset: j * 4, as: SIMD8<Float>.self)
                            raw.storeBytes(of: hi, toByteOffset: j * 4 + 32, as: SIMD8<Float>.self)
                        }
                    } else {
                        for j in 0..<width { row[j] = W.load1(src, j) }
                    }
                }
            }
        }
    }

    /// tile[6×16] = Σ_p a[p, 0..<6]ᵀ · b[p, 0..<16] over `kc` packed steps: the portable tile.
    @inline(__always)
    static func microKernel(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, tile: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
        var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
        let rawB = UnsafeRawPointer(b)
        var pa = a
        for p in 0..<kc {
            let b0 = rawB.loadUnaligned(fromByteOffset: p * 64, as: V.self)
            let b1 = rawB.loadUnaligned(fromByteOffset: p * 64 + 32, as: V.self)
            var x = V(repeating: pa[0])
            c00.formMulAdd(x, b0)
            c01.formMulAdd(x, b1)
            x = V(repeating: pa[1])
            c10.formMulAdd(x, b0)
            c11.formMulAdd(x, b1)
            x = V(repeating: pa[2])
            c20.formMulAdd(x, b0)
            c21.formMulAdd(x, b1)
            x = V(repeating: pa[3])
            c30.formMulAdd(x, b0)
            c31.formMulAdd(x, b1)
            x = V(repeating: pa[4])
            c40.formMulAdd(x, b0)
            c41.formMulAdd(x, b1)
            x = V(repeating: pa[5])
            c50.formMulAdd(x, b0)
            c51.formMulAdd(x, b1)
            pa += 6
        }
        let out = UnsafeMutableRawPointer(tile)
        out.storeBytes(of: c00, toByteOffset: 0, as: V.self)
        out.storeBytes(of: c01, toByteOffset: 32, as: V.self)
        out.storeBytes(of: c10, toByteOffset: 64, as: V.self)
        out.storeBytes(of: c11, toByteOffset: 96, as: V.self)
        out.storeBytes(of: c20, toByteOffset: 128, as: V.self)
        out.storeBytes(of: c21, toByteOffset: 160, as: V.self)
        out.storeBytes(of: c30, toByteOffset: 192, as: V.self)
        out.storeBytes(of: c31, toByteOffset: 224, as: V.self)
        out.storeBytes(of: c40, toByteOffset: 256, as: V.self)
        out.storeBytes(of: c41, toByteOffset: 288, as: V.self)
        out.storeBytes(of: c50, toByteOffset: 320, as: V.self)
        out.storeBytes(of: c51, toByteOffset: 352, as: V.self)
    }

    /// C[rows×cols] = α · tile + β · C, reading C only when β ≠ 0.
    @inline(__always)
    static func merge(
        tile: UnsafePointer<Float>, nr: Int, rows: Int, cols: Int, alpha: Float, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for r in 0..<rows {
            let dst = c + r * ldc
            let src = tile + r * nr
            if beta == 0 {
                for j in 0..<cols { dst[j] = alpha * src[j] }
            } else if beta == 1 {
                for j in 0..<cols { dst[j] += alpha * src[j] }
            } else {
                for j in 0..<cols { dst[j] = alpha * src[j] + beta * dst[j] }
            }
        }
    }
}
