/// Matrix products on tensors: the projections of every layer.
extension Tensor {
    /// `op(a) · op(b)` for 2-D f32 tensors, where op transposes when asked; the result is a
    /// new contiguous `[m, n]` tensor.
    public static func matmul(
        _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
        backend: any ComputeBackend = Backends.current
    ) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
        let a = a.contiguous(), b = b.contiguous()
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0], n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let c = Tensor(uninitialized: [m, n])
        backend.sgemm(
            transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
            a: a.floatPointer, lda: a.shape[1], b: b.floatPointer, ldb: b.shape[1],
            beta: 0, c: c.floatPointer, ldc: n)
        let needA = a.gradientNode != nil, needB = b.gradientNode != nil
        return Autograd.record(c, inputs: [a, b]) { g in
            // C = op(A)·op(B):  ∂op(A) = ∂C·op(B)ᵀ,  ∂op(B) = op(A)ᵀ·∂C, transposed back where op transposes.
            let da =
                !needA
                ? nil
                : transposeA
                    ? matmul(b, g, transposeA: transposeB, transposeB: true, backend: backend)
                    : matmul(g, b, transposeB: !transposeB, backend: backend)
            let db =
                !needB
                ? nil
                : transposeB
                    ? matmul(g, a, transposeA: true, transposeB: transposeA, backend: backend)
                    : matmul(a, g, transposeA: !transposeA, backend: backend)
            return [da, db]
        }
    }

    /// `W · x` for a 2-D weight `[rows, cols]` of any float or block-format dtype and an f32 vector `[cols]`.
    public static func matvec(_ weight: Tensor, _ x: Tensor) -> Tensor {
        precondition(weight.rank == 2 && weight.isContiguous, "matvec needs a contiguous 2-D weight, got \(weight.shape)")
        precondition(x.count == weight.shape[1], "matvec: weight \(weight.shape) and vector of \(x.count)")
        let y = Tensor(uninitialized: [weight.shape[0]])
        MatVec.multiply(
            weights: weight.rawPointer, dtype: weight.dtype, rows: weight.shape[0], cols: weight.shape[1],
            x: x.floatPointer, y: y.floatPointer)
        return y
    }

    /// A linear layer: `y[t, :] = W · x[t, :] + b` for activations `x` of shape `[T, in]` and a
    /// weight `[out, in]` (the PyTorch layout) in f32, f16, bf16 or a GGML block format;
    /// returns `[T, out]`.
    ///
    /// A few tokens (decoding) stream the weight once per token through the matrix-vector
    /// kernel; longer batches use the instruction set's activations-times-weights kernel for
    /// every weight type (faster than packing the weights for a GEMM), or, where the processor
    /// has none, the selected backend's GEMM for f32 weights, the portable C kernels for block
    /// formats and the Swift GEMM otherwise.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2 && weight.isContiguous, "linear needs a contiguous 2-D weight, got \(weight.shape)")
        let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
        precondition(x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures) features")
        let x = x.contiguous()
        let tokens = x.count / inFeatures
        var outShape = x.shape
        outShape[outShape.count - 1] = outFeatures
        let y = Tensor(uninitialized: outShape)
        let xp = x.floatPointer, yp = y.floatPointer
        if tokens <= 4 {
            for t in 0..<tokens {
                MatVec.multiply(
                    weights: weight.rawPointer, dtype: weight.dtype, rows: outFeatures, cols: inFeatures,
                    x: xp + t * inFeatures, y: yp + t * outFeatures)
            }
        } else if weight.dtype == .f32 && InstructionSet.current.kernels == nil && !(Backends.current is SwiftBackend) {
            Backends.current.sgemm(
                transA: false, transB: true, m: tokens, n: outFeatures, k: inFeatures, alpha: 1,
                a: xp, lda: inFeatures, b: weight.floatPointer, ldb: inFeatures, beta: 0, c: yp, ldc: outFeatures)
        } else {
            SwiftGemm.multiplyTransposed(
                m: tokens, n: outFeatures, k: inFeatures, a: xp, lda: inFeatures, b: weight.rawPointer,
                bType: weight.dtype, ldb: inFeatures, c: yp, ldc: outFeatures)
        }
        if let bias {
            precondition(bias.count == outFeatures, "linear: bias of \(bias.count) for \(outFeatures) outputs")
            let b = bias.dtype == .f32 ? bias.contiguous() : bias.converted(to: .f32)
            for t in 0..<tokens { Elementwise.add(yp + t * outFeatures, b.floatPointer, yp + t * outFeatures, count: outFeatures) }
        }
        let needX = x.gradientNode != nil, needW = weight.gradientNode != nil
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return Autograd.record(y, inputs: inputs) { g in
            // y = x·Wᵀ + b:  ∂x = ∂y·W,  ∂W = ∂yᵀ·x,  ∂b = Σ_t ∂y[t].
            let g = g.contiguous()
            var grads: [Tensor?] = [nil, nil]
            if needX {
                let dx = Tensor(uninitialized: x.shape)
                // The GEMM reads B element by element: a block-format weight is widened first.
                let w = weight.dtype.isQuantized ? weight.converted(to: .f32) : weight
                SwiftGemm.gemm(
                    transA: false, transB: false, m: tokens, n: inFeatures, k: outFeatures, alpha: 1, a: g.floatPointer,
                    lda: outFeatures, b: w.rawPointer, bType: w.dtype, ldb: inFeatures, beta: 0,
                    c: dx.floatPointer, ldc: inFeatures)
                grads[0] = dx
            }
            if needW {
                let dw = Tensor(uninitialized: weight.shape)
                Backends.current.sgemm(
                    transA: true, transB: false, m: outFeatures, n: inFeatures, k: tokens, alpha: 1,
                    a: g.floatPointer, lda: outFeatures, b: x.floatPointer, ldb: inFeatures, beta: 0,
                    c: dw.floatPointer, ldc: inFeatures)
                grads[1] = dw
            }
            if let bias {
                grads.append(bias.gradientNode == nil ? nil : g.reshaped([tokens, outFeatures]).sumRows().reshaped(bias.shape))
            }
            return grads
        }
    }
}
