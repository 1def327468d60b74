/// Reductions, concatenation and row indexing (recorded for autograd).
extension Tensor {
    /// Σ of every element, as a one-element tensor `[1]`.
    public func sum() -> Tensor {
        let x = contiguous()
        var total: Double = 0
        let xp = x.floatPointer
        for i in 0..<count { total += Double(xp[i]) }
        let shape = self.shape
        return Autograd.record(Tensor(shape: [1], values: [Float(total)]), inputs: [self]) { g in
            [Tensor(shape: shape, values: [Float](repeating: g.floats[0], count: shape.reduce(1, *)))]
        }
    }

    /// Mean of every element, as a one-element tensor `[1]`.
    public func mean() -> Tensor {
        sum().scaled(by: 1 / Float(max(count, 1)))
    }

    /// Column sums of a `[rows, cols]` tensor: `[cols]`.
    public func sumRows() -> Tensor {
        precondition(rank == 2, "sumRows needs a 2-D tensor, got \(shape)")
        let x = contiguous(), rows = shape[0], cols = shape[1]
        let out = Tensor(zeros: [cols])
        for r in 0..<rows { Elementwise.addScaledSerial(x.floatPointer + r * cols, by: 1, into: out.floatPointer, count: cols) }
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.contiguous()
            let grad = Tensor(zeros: [rows, cols])
            for r in 0..<rows { (grad.floatPointer + r * cols).update(from: gs.floatPointer, count: cols) }
            return [grad]
        }
    }

    /// Row sums of a `[rows, cols]` tensor: `[rows]`.
    public func sumColumns() -> Tensor {
        precondition(rank == 2, "sumColumns needs a 2-D tensor, got \(shape)")
        let cols = shape[1]
        let ones = Tensor(shape: [cols, 1], values: [Float](repeating: 1, count: cols))
        return Tensor.matmul(self, ones).reshaped([shape[0]])
    }

    /// Tensors of equal shape except along `axis`, joined along it.
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate needs at least one tensor")
        var shape = parts[0].shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let out = Tensor(zeros: shape)
        var start = 0
        var ranges: [Range<Int>] = []
        for part in parts {
            let range = start..<(start + part.shape[axis])
            out.slice(range, axis: axis).assign(part.detached())
            ranges.append(range)
            start = range.upperBound
        }
        return Autograd.record(out, inputs: parts) { g in ranges.map { g.slice($0, axis: axis).contiguous() } }
    }

    /// Rows `indices` of a `[rows, cols]` tensor, in that order: `[indices.count, cols]`.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        precondition(rank == 2, "gatherRows needs a 2-D tensor, got \(shape)")
        let x = contiguous(), cols = shape[1], rows = shape[0]
        let out = Tensor(uninitialized: [indices.count, cols])
        for (i, r) in indices.enumerated() {
            precondition(r >= 0 && r < rows, "row \(r) outside \(rows) rows")
            (out.floatPointer + i * cols).update(from: x.floatPointer + r * cols, count: cols)
        }
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.contiguous(), grad = Tensor(zeros: [rows, cols])
            for (i, r) in indices.enumerated() {
                Elementwise.addScaledSerial(gs.floatPointer + i * cols, by: 1, into: grad.floatPointer + r * cols, count: cols)
            }
            return [grad]
        }
    }

    /// A `[rows, cols]` tensor of zeros with row `indices[i]` += `source[i]` (the inverse of
    /// `gatherRows`: scattering expert outputs back to their tokens).
    public static func scatterAddRows(_ source: Tensor, indices: [Int], rows: Int) -> Tensor {
        precondition(source.rank == 2 && source.shape[0] == indices.count, "scatterAddRows: \(source.shape) for \(indices.count) rows")
        let s = source.contiguous(), cols = source.shape[1]
        let out = Tensor(zeros: [rows, cols])
        for (i, r) in indices.enumerated() {
            Elementwise.addScaledSerial(s.floatPointer + i * cols, by: 1, into: out.floatPointer + r * cols, count: cols)
        }
        return Autograd.record(out, inputs: [source]) { g in [g.contiguous().detached().gatherRows(indices)] }
    }

    /// Each row of `x` `[rows, cols]` scaled by `weights[row]` (`[rows]`).
    public static func scaleRows(_ x: Tensor, by weights: Tensor) -> Tensor {
        precondition(x.rank == 2 && weights.count == x.shape[0], "scaleRows: \(x.shape) by \(weights.shape)")
        let xs = x.contiguous(), ws = weights.contiguous(), cols = x.shape[1]
        let out = Tensor(uninitialized: x.shape)
        for r in 0..<x.shape[0] {
            Elementwise.scale(xs.floatPointer + r * cols, by: ws.floatPointer[r], out.floatPointer + r * cols, count: cols)
        }
        return Autograd.record(out, inputs: [x, weights]) { g in
            let gs = g.contiguous()
            let dx = scaleRows(gs, by: ws)
            let dw = Tensor(zeros: weights.shape)
            for r in 0..<x.shape[0] {
                dw.floatPointer[r] = AttentionKernel.dot(gs.floatPointer + r * cols, xs.floatPointer + r * cols, cols)
            }
            return [dx, dw]
        }
    }

    /// Elements `[row, indices[row]]` of a `[rows, cols]` tensor: `[rows]` (picking the
    /// probability of a chosen class per row).
    public func pick(_ indices: [Int]) -> Tensor {
        precondition(rank == 2 && indices.count == shape[0], "pick: \(indices.count) indices for \(shape)")
        let x = contiguous(), cols = shape[1], rows = shape[0]
        let out = Tensor(shape: [rows], values: indices.enumerated().map { x.floatPointer[$0.offset * cols + $0.element] })
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.floats, grad = Tensor(zeros: [rows, cols])
            for (r, c) in indices.enumerated() { grad.floatPointer[r * cols + c] = gs[r] }
            return [grad]
        }
    }

    /// Mean cross-entropy of `[rows, vocab]` logits against target ids (rows whose target is
    /// `CrossEntropy.ignoreIndex` do not count), as `[1]`.
    public static func crossEntropy(logits: Tensor, targets: [Int]) -> Tensor {
        let x = logits.contiguous(), vocab = logits.shape.last!, rows = logits.count / vocab
        let needsGradient = Autograd.isRecording && logits.gradientNode != nil
        let gradient = needsGradient ? Tensor(zeros: [rows, vocab]) : nil
        let loss = CrossEntropy.loss(
            logits: x.floatPointer, rows: rows, vocab: vocab, targets: targets,
            gradient: gradient?.floatPointer
        ).loss
        let shape = logits.shape
        return Autograd.record(Tensor(shape: [1], values: [loss]), inputs: [logits]) { g in
            [gradient!.scaled(by: g.floats[0]).reshaped(shape)]
        }
    }
}
