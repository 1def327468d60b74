/// Operations along the last axis of an f32 tensor (each row of `[…, n]` independently).
extension Tensor {
    /// Number of rows when the last axis is the row.
    var rowCount: Int { count / max(shape.last ?? 1, 1) }

    /// RMSNorm over the last axis with a weight of that length (any float dtype).
    public func rmsNorm(weight: Tensor, eps: Float) -> Tensor {
        let cols = shape.last ?? 1
        precondition(weight.count == cols, "rmsNorm: weight of \(weight.count) for rows of \(cols)")
        let x = contiguous(), w = weight.dtype == .f32 ? weight.contiguous() : weight.converted(to: .f32)
        let out = Tensor(zeros: shape)
        RowKernels.rmsNorm(x.floatPointer, weight: w.floatPointer, out.floatPointer, rows: rowCount, cols: cols, eps: eps)
        return out
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let x = contiguous(), out = Tensor(zeros: shape)
        RowKernels.softmax(x.floatPointer, out.floatPointer, rows: rowCount, cols: shape.last ?? 1)
        return out
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let x = contiguous(), out = Tensor(zeros: shape)
        RowKernels.logSoftmax(x.floatPointer, out.floatPointer, rows: rowCount, cols: shape.last ?? 1)
        return out
    }

    /// Row `i` of a tensor `[rows, n]` as values (convenience for sampling and tests).
    public func row(_ i: Int) -> [Float] {
        let cols = shape.last ?? 1
        return Array(contiguous().reshaped([rowCount, cols]).slice(i..<(i + 1)).floats)
    }
}
