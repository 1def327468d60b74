import ChronosTensor

/// The weights λ of the shared Chronos terms that every training stage adds to its own loss:
///
///     L = L_stage + λ_bal·L_balance + λ_tmp·L_temporal + λ_LA·L_lookahead + λ_anc·L_routerKL
public struct ChronosLossWeights: Codable, Sendable, Equatable {
    /// λ_bal: load balance across experts.
    public var balance: Float
    /// λ_tmp: consecutive tokens route alike (cache locality).
    public var temporal: Float
    /// λ_LA: the lookahead head predicts future routing.
    public var lookahead: Float
    /// λ_anc: the router stays near its state at the start of the stage.
    public var routerKL: Float

    /// Weights with the given values.
    public init(balance: Float = 0.01, temporal: Float = 0.01, lookahead: Float = 0.1, routerKL: Float = 0) {
        self.balance = balance
        self.temporal = temporal
        self.lookahead = lookahead
        self.routerKL = routerKL
    }
}

/// What one sequence's forward pass says about routing, as the Chronos terms need it.
public struct RoutingSignals {
    /// Router distributions P of each MoE layer, `[T, E]`, recorded for autograd.
    public var probabilities: [Tensor]
    /// The top-k experts each token chose, per MoE layer: `[layer][t]`.
    public var selected: [[[Int]]]
    /// The lookahead head's log-probabilities, `[T, K+1, E]` (offset 0 = the current token).
    public var lookaheadLogProbabilities: Tensor?
    /// The frozen reference router's distributions on the same inputs, `[T, E]` per layer.
    public var referenceProbabilities: [Tensor]?
    /// Which positions are real tokens (nil: all), so padding never counts.
    public var valid: [Bool]?

    /// Signals of one sequence.
    public init(
        probabilities: [Tensor], selected: [[[Int]]], lookaheadLogProbabilities: Tensor?,
        referenceProbabilities: [Tensor]? = nil, valid: [Bool]? = nil
    ) {
        self.probabilities = probabilities
        self.selected = selected
        self.lookaheadLogProbabilities = lookaheadLogProbabilities
        self.referenceProbabilities = referenceProbabilities
        self.valid = valid
    }

    var tokens: Int { probabilities.first?.shape[0] ?? 0 }
    func isValid(_ t: Int) -> Bool { valid?[t] ?? true }
}

/// The value of each Chronos term for one sequence, and their weighted sum.
public struct ChronosLossTerms {
    /// E · Σ_e load_e · mean_prob_e, summed over MoE layers.
    public var balance: Tensor
    /// mean_t ‖P_t − P_{t−1}‖², averaged over MoE layers.
    public var temporal: Tensor
    /// Mean over valid offsets k of mean_t −Σ_e sg(P̄_{t+k,e}) · log Q^{(k)}_{t,e}.
    public var lookahead: Tensor
    /// mean_t KL(P_t ‖ P_ref,t), averaged over MoE layers.
    public var routerKL: Tensor

    /// λ-weighted sum of the terms.
    public func weighted(_ w: ChronosLossWeights) -> Tensor {
        balance.scaled(by: w.balance) + temporal.scaled(by: w.temporal) + lookahead.scaled(by: w.lookahead)
            + routerKL.scaled(by: w.routerKL)
    }
}

/// The Chronos routing terms (load balance, temporal locality, lookahead, router anchor), computed from one sequence's routing signals.
public enum ChronosLoss {
    /// All four terms (a term whose inputs are absent is zero).
    public static func terms(_ s: RoutingSignals) -> ChronosLossTerms {
        ChronosLossTerms(balance: balance(s), temporal: temporal(s), lookahead: lookahead(s), routerKL: routerKL(s))
    }

    static var zero: Tensor { Tensor(shape: [1], values: [0]) }

    /// Per MoE layer E · Σ_e load_e · mean_prob_e, where load_e is the fraction of the layer's
    /// top-k assignments that went to e (a count: no gradient) and mean_prob_e the mean router
    /// probability of e over valid tokens (gradient flows through it); summed over layers.
    public static func balance(_ s: RoutingSignals) -> Tensor {
        var total = zero
        let validRows = (0..<s.tokens).filter(s.isValid)
        guard !validRows.isEmpty else { return total }
        for (layer, p) in s.probabilities.enumerated() {
            let experts = p.shape[1]
            var load = [Float](repeating: 0, count: experts)
            var assignments: Float = 0
            for t in validRows {
                for e in s.selected[layer][t] {
                    load[e] += 1
                    assignments += 1
                }
            }
            let meanProbability = p.gatherRows(validRows).sumRows().scaled(by: 1 / Float(validRows.count))
            let loadTensor = Tensor(shape: [experts], values: load.map { $0 / max(assignments, 1) })
            total = total + (meanProbability * loadTensor).sum().scaled(by: Float(experts))
        }
        return total
    }

    /// mean over valid pairs (t−1, t) of ‖P_t − P_{t−1}‖², averaged over MoE layers.
    public static func temporal(_ s: RoutingSignals) -> Tensor {
        let pairs = (1..<max(s.tokens, 1)).filter { s.isValid($0) && s.isValid($0 - 1) }
        guard !pairs.isEmpty, !s.probabilities.isEmpty else { return zero }
        var total = zero
        for p in s.probabilities {
            let difference = p.gatherRows(pairs) - p.gatherRows(pairs.map { $0 - 1 })
            total = total + difference.squared().sum()
        }
        return total.scaled(by: 1 / Float(pairs.count * s.probabilities.count))
    }

    /// Soft-target cross-entropy of the lookahead head against the future routing: for each
    /// offset k ≥ 1 with at least one valid pair (t, t+k), the mean over those pairs of
    /// −Σ_e sg(P̄_{t+k,e}) · log Q^{(k)}_{t,e}, where P̄ is the mean over MoE layers of the
    /// router distributions; then the mean over those offsets.
    public static func lookahead(_ s: RoutingSignals) -> Tensor {
        guard let logQ = s.lookaheadLogProbabilities, !s.probabilities.isEmpty else { return zero }
        let tokens = logQ.shape[0], offsets = logQ.shape[1] - 1, experts = logQ.shape[2]
        var target = s.probabilities[0].detached()
        for p in s.probabilities.dropFirst() { target = target + p.detached() }
        target = target.scaled(by: 1 / Float(s.probabilities.count))
        var total = zero
        var counted = 0
        for k in stride(from: 1, through: offsets, by: 1) {
            let pairs = (0..<max(tokens - k, 0)).filter { s.isValid($0) && s.isValid($0 + k) }
            guard !pairs.isEmpty else { continue }
            let predicted = logQ.slice(k..<(k + 1), axis: 1).contiguous().reshaped([tokens, experts]).gatherRows(pairs)
            let future = target.gatherRows(pairs.map { $0 + k })
            total = total + (predicted * future).sum().scaled(by: -1 / Float(pairs.count))
            counted += 1
        }
        return counted == 0 ? zero : total.scaled(by: 1 / Float(counted))
    }

    /// mean over valid t of KL(P_t ‖ P_ref,t) = Σ_e P log(P / P_ref), averaged over MoE layers;
    /// the reference is a constant.
    public static func routerKL(_ s: RoutingSignals) -> Tensor {
        guard let reference = s.referenceProbabilities, !s.probabilities.isEmpty else { return zero }
        let rows = (0..<s.tokens).filter(s.isValid)
        guard !rows.isEmpty else { return zero }
        var total = zero
        for (p, q) in zip(s.probabilities, reference) {
            let experts = p.shape[1]
            let floor = Tensor(shape: [experts], values: [Float](repeating: 1e-12, count: experts))
            let pv = p.gatherRows(rows), qv = q.detached().gatherRows(rows)
            total = total + (pv * ((pv + floor).log() - (qv + floor).log())).sum()
        }
        return total.scaled(by: 1 / Float(rows.count * s.probabilities.count))
    }
}
