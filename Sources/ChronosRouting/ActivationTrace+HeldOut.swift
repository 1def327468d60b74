extension ActivationTrace {
    /// The trace cut by sequence into a training part and a held-out part of its last tenth of
    /// sequences (at least one), for predictors trained and then scored on different text; nil
    /// when that would leave no training sequence. Both parts keep the header, the sequence
    /// count and every record's sequence index, so a record reads the same in either part.
    public func splitHoldingOutLastTenth() -> (training: ActivationTrace, heldOut: ActivationTrace)? {
        let cut = sequenceCount - max(1, sequenceCount / 10)
        guard cut > 0 else { return nil }
        var training = self, heldOut = self
        training.tokens = tokens.filter { $0.sequence < cut }
        heldOut.tokens = tokens.filter { $0.sequence >= cut }
        return (training, heldOut)
    }
}
