/// Cross-entropy of logits against target ids, the language-modelling loss.
public enum CrossEntropy {
    /// Targets with this value are ignored (padding, prompt tokens), as in PyTorch.
    public static let ignoreIndex = -100

    /// Mean over counted rows of −log softmax(logits[r])[targets[r]] for `[rows × vocab]`
    /// logits. When `gradient` is given it receives ∂loss/∂logits = (softmax − onehot) / N
    /// (zero on ignored rows). Returns the loss and N, the number of counted rows.
    @discardableResult
    public static func loss(
        logits: UnsafePointer<Float>, rows: Int, vocab: Int, targets: [Int],
        gradient: UnsafeMutablePointer<Float>? = nil
    ) -> (loss: Float, counted: Int) {
        precondition(targets.count == rows, "\(targets.count) targets for \(rows) rows")
        let counted = targets.filter { $0 != ignoreIndex }.count
        var total: Double = 0
        for r in 0..<rows {
            let row = logits + r * vocab
            let target = targets[r]
            if target == ignoreIndex {
                gradient?.advanced(by: r * vocab).update(repeating: 0, count: vocab)
                continue
            }
            precondition(target >= 0 && target < vocab, "target \(target) outside the vocabulary of \(vocab)")
            let m = RowKernels.maximum(row, vocab)
            let logZ = m + RowKernels.logSumExpShifted(row, vocab, shift: m)
            total += Double(logZ - row[target])
            if let gradient {
                let g = gradient + r * vocab
                _ = RowKernels.expShifted(row, g, vocab, shift: logZ)
                RowKernels.scaleInPlace(g, vocab, 1 / Float(counted))
                g[target] -= 1 / Float(counted)
            }
        }
        return (counted == 0 ? 0 : Float(total / Double(counted)), counted)
    }
}
