/// Matrix products on tensors, through the selected compute backend.
extension Tensor {
    /// `op(a) · op(b)` for 2-D f32 tensors, where op transposes when asked; the result is a
    /// new contiguous `[m, n]` tensor.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                              backend: any ComputeBackend = Backends.current) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
        let a = a.contiguous(), b = b.contiguous()
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0], n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let c = Tensor(zeros: [m, n])
        backend.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                      a: a.floatPointer, lda: a.shape[1], b: b.floatPointer, ldb: b.shape[1],
                      beta: 0, c: c.floatPointer, ldc: n)
        return c
    }

    /// `W · x` for a 2-D weight `[rows, cols]` of any float dtype and an f32 vector `[cols]`.
    public static func matvec(_ weight: Tensor, _ x: Tensor) -> Tensor {
        precondition(weight.rank == 2 && weight.isContiguous, "matvec needs a contiguous 2-D weight, got \(weight.shape)")
        precondition(x.count == weight.shape[1], "matvec: weight \(weight.shape) and vector of \(x.count)")
        let y = Tensor(zeros: [weight.shape[0]])
        MatVec.multiply(weights: weight.rawPointer, dtype: weight.dtype, rows: weight.shape[0], cols: weight.shape[1],
                        x: x.floatPointer, y: y.floatPointer)
        return y
    }
}
