/// Single-precision matrix multiply in Swift, the always-available GEMM.
///
///     C[m×n] = α · op(A)[m×k] · op(B)[k×n] + β · C      (row-major, op = identity or transpose)
///
/// Goto-style blocking: B is packed into `kc × 16` column panels, A into `6 × kc` row panels,
/// and a 6×16 register tile (twelve 8-lane accumulators) is updated with fused multiply-adds.
/// Tasks (A row block × slice of B panels) run on the shared thread pool.
public enum SwiftGemm {
    static let mr = 6
    static let nr = 16
    static let kc = 256
    static let mc = 96
    static let nc = 4096

    /// Computes `C = alpha * op(A) * op(B) + beta * C` with leading dimensions in elements.
    /// With `beta == 0` the old contents of C are never read.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool = .shared
    ) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
             b: UnsafeRawPointer(b), bType: .f32, ldb: ldb, beta: beta, c: c, ldc: ldc, pool: pool)
    }

    /// As `sgemm`, with B stored as f32, f16 or bf16: elements are widened to f32 while B is
    /// packed, so reduced-precision weights multiply a batch of activations without a copy.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafeRawPointer, bType: DType, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool = .shared
    ) {
        switch bType {
        case .f32: blocked(F32Row.self, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        case .bf16: blocked(BF16Row.self, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        case .f16: blocked(F16Row.self, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, pool)
        default: preconditionFailure("GEMM needs a float B, got \(bType)")
        }
    }

    private static func blocked<W: WeightRow>(
        _: W.Type, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafeRawPointer, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ pool: ThreadPool
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 || alpha == 0 {
            scaleC(m: m, n: n, beta: beta, c: c, ldc: ldc)
            return
        }
        let packedB = UnsafeMutablePointer<Float>.allocate(capacity: kc * (min(n, nc) + nr))
        defer { packedB.deallocate() }
        for jc in stride(from: 0, to: n, by: nc) {
            let ncBlock = min(nc, n - jc)
            let panelsB = (ncBlock + nr - 1) / nr
            for pc in stride(from: 0, to: k, by: kc) {
                let kcBlock = min(kc, k - pc)
                packB(W.self, transB: transB, b: b, ldb: ldb, rowStart: pc, rows: kcBlock, colStart: jc, cols: ncBlock, into: packedB)
                let blockBeta: Float = pc == 0 ? beta : 1
                let rowBlocks = (m + mc - 1) / mc
                // Enough tasks to keep every thread busy even when m is a single block.
                let splits = min(panelsB, max(1, (pool.threadCount * 2 + rowBlocks - 1) / rowBlocks))
                let panelsPerSplit = (panelsB + splits - 1) / splits
                pool.parallelFor(rowBlocks * splits) { task in
                    let ic = (task / splits) * mc
                    let mcBlock = min(mc, m - ic)
                    let firstPanel = (task % splits) * panelsPerSplit
                    let lastPanel = min(panelsB, firstPanel + panelsPerSplit)
                    if firstPanel >= lastPanel { return }
                    let panelsA = (mcBlock + mr - 1) / mr
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: panelsA * mr * kcBlock + mr * nr) { scratch in
                        let packedA = scratch.baseAddress!
                        let tile = packedA + panelsA * mr * kcBlock
                        packA(transA: transA, a: a, lda: lda, rowStart: ic, rows: mcBlock, colStart: pc, cols: kcBlock, into: packedA)
                        for panel in firstPanel..<lastPanel {
                            let j0 = panel * nr
                            let cols = min(nr, ncBlock - j0)
                            for ir in 0..<panelsA {
                                let rows = min(mr, mcBlock - ir * mr)
                                microKernel(kc: kcBlock, a: packedA + ir * mr * kcBlock, b: packedB + panel * nr * kcBlock, tile: tile)
                                merge(tile: tile, rows: rows, cols: cols, alpha: alpha, beta: blockBeta,
                                      c: c + (ic + ir * mr) * ldc + jc + j0, ldc: ldc)
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

    /// Packs op(B)[rowStart..<rowStart+rows, colStart..<colStart+cols], widened to f32, into
    /// 16-wide panels: panel p holds `rows × 16` floats, row-major, zero-padded past `cols`.
    static func packB<W: WeightRow>(_: W.Type, transB: Bool, b: UnsafeRawPointer, ldb: Int, rowStart: Int, rows: Int,
                                    colStart: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let panels = (cols + nr - 1) / nr
        for panel in 0..<panels {
            let dst = out + panel * nr * rows
            let j0 = colStart + panel * nr
            let width = min(nr, colStart + cols - j0)
            if width < nr { dst.update(repeating: 0, count: nr * rows) }
            if transB {
                // Column j of the panel is row j0 + j of the stored matrix: walk k in the outer
                // loop so the 16 rows' cache lines are reused and the panel is written in order.
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
                        let (lo, hi) = W.load16(src, 0)
                        let raw = UnsafeMutableRawPointer(row)
                        raw.storeBytes(of: lo, as: SIMD8<Float>.self)
                        raw.storeBytes(of: hi, toByteOffset: 32, as: SIMD8<Float>.self)
                    } else {
                        for j in 0..<width { row[j] = W.load1(src, j) }
                    }
                }
            }
        }
    }

    /// Packs op(A)[rowStart..<rowStart+rows, colStart..<colStart+cols] into 6-row panels:
    /// panel q holds `cols × 6` floats (for each k, the 6 rows), zero-padded past `rows`.
    static func packA(transA: Bool, a: UnsafePointer<Float>, lda: Int, rowStart: Int, rows: Int,
                      colStart: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let panels = (rows + mr - 1) / mr
        for panel in 0..<panels {
            let dst = out + panel * mr * cols
            let i0 = rowStart + panel * mr
            let height = min(mr, rowStart + rows - i0)
            if transA {
                for p in 0..<cols {
                    let src = a + (colStart + p) * lda + i0
                    for r in 0..<mr { dst[p * mr + r] = r < height ? src[r] : 0 }
                }
            } else {
                for r in 0..<mr {
                    if r < height {
                        let src = a + (i0 + r) * lda + colStart
                        for p in 0..<cols { dst[p * mr + r] = src[p] }
                    } else {
                        for p in 0..<cols { dst[p * mr + r] = 0 }
                    }
                }
            }
        }
    }

    /// tile[6×16] = Σ_p a[p, 0..<6]ᵀ · b[p, 0..<16] over `kc` packed steps.
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
            c00.addProduct(x, b0); c01.addProduct(x, b1)
            x = V(repeating: pa[1])
            c10.addProduct(x, b0); c11.addProduct(x, b1)
            x = V(repeating: pa[2])
            c20.addProduct(x, b0); c21.addProduct(x, b1)
            x = V(repeating: pa[3])
            c30.addProduct(x, b0); c31.addProduct(x, b1)
            x = V(repeating: pa[4])
            c40.addProduct(x, b0); c41.addProduct(x, b1)
            x = V(repeating: pa[5])
            c50.addProduct(x, b0); c51.addProduct(x, b1)
            pa += 6
        }
        let out = UnsafeMutableRawPointer(tile)
        out.storeBytes(of: c00, toByteOffset: 0, as: V.self); out.storeBytes(of: c01, toByteOffset: 32, as: V.self)
        out.storeBytes(of: c10, toByteOffset: 64, as: V.self); out.storeBytes(of: c11, toByteOffset: 96, as: V.self)
        out.storeBytes(of: c20, toByteOffset: 128, as: V.self); out.storeBytes(of: c21, toByteOffset: 160, as: V.self)
        out.storeBytes(of: c30, toByteOffset: 192, as: V.self); out.storeBytes(of: c31, toByteOffset: 224, as: V.self)
        out.storeBytes(of: c40, toByteOffset: 256, as: V.self); out.storeBytes(of: c41, toByteOffset: 288, as: V.self)
        out.storeBytes(of: c50, toByteOffset: 320, as: V.self); out.storeBytes(of: c51, toByteOffset: 352, as: V.self)
    }

    /// C[rows×cols] = α · tile + β · C, reading C only when β ≠ 0.
    @inline(__always)
    static func merge(tile: UnsafePointer<Float>, rows: Int, cols: Int, alpha: Float, beta: Float,
                      c: UnsafeMutablePointer<Float>, ldc: Int) {
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
