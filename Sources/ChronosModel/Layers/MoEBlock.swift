import ChronosTensor

/// A routed mixture of SwiGLU experts, with an optional sigmoid-gated shared expert:
///
///     p = softmax(W_router · x)                           over all E experts
///     S = top-k of p                                      (descending p)
///     w_i = p_i, or p_i / Σ_{j∈S} p_j when normalizeTopK
///     y = Σ_{i∈S} w_i · E_i(x)  [+ σ(g·x) · Shared(x)]
///
/// The families differ only in `normalizeTopK` (Mixtral always; Qwen and OLMoE per
/// `norm_topk_prob`) and in having the shared expert (Qwen2-MoE).
///
/// Expert weights come from an `ExpertProvider`. When it has no weights for a selected expert
/// (not resident now), the block does not wait; it degrades as follows:
/// - with a shared expert, the missing expert's weight moves to the shared path, which is always
///   resident: `w_i·E_i(x)` becomes `w_i·Shared(x)` (ungated), so the shared coefficient becomes
///   `σ(g·x) + Σ_missing w_i`;
/// - without one, the resident selected experts' weights are rescaled to carry the selected
///   total `Σ_{j∈S} w_j` (1 when the family normalises), and if none is resident the routed part
///   contributes zero.
struct MoEBlock: Sendable {
    /// The always-active expert of Qwen2-MoE and its scalar gate.
    struct SharedExpert: Sendable {
        let mlp: GatedMLP
        /// `[1, hidden]`: the shared expert's output is scaled by σ(gate · x).
        let gate: Tensor
    }

    let layer: Int
    let configuration: MixtureConfiguration
    /// `[experts, hidden]`.
    let router: Tensor
    let sharedExpert: SharedExpert?
    let experts: any ExpertProvider

    /// `[T, hidden]` for tokens at positions `positionOffset…` → `[T, hidden]`; tells `observer`
    /// each token's routing decision.
    func callAsFunction(_ x: Tensor, positionOffset: Int, observer: RoutingObserver?) -> Tensor {
        let tokens = x.shape[0], hidden = x.shape[1]
        let expertCount = configuration.expertCount, k = configuration.topK

        let logits = Tensor.linear(x, weight: router)  // [T, E]
        let probabilities = logits.softmax()
        let probabilityValues = probabilities.floats

        // Selected expert of each slot t·k + j, in descending probability; its flat index t·E + e;
        // the slots of each selected expert.
        var selected: [Int] = [], flatIndices: [Int] = [], slotsByExpert: [Int: [Int]] = [:]
        selected.reserveCapacity(tokens * k)
        flatIndices.reserveCapacity(tokens * k)
        probabilityValues.withUnsafeBufferPointer { p in
            for t in 0..<tokens {
                let choices = Selection.topK(p.baseAddress! + t * expertCount, count: expertCount, k: k)
                precondition(choices.count == k, "router probabilities of layer \(layer) are not finite")
                for choice in choices {
                    slotsByExpert[choice.index, default: []].append(selected.count)
                    selected.append(choice.index)
                    flatIndices.append(t * expertCount + choice.index)
                }
            }
        }

        // Combine weights, one per slot: [T·k, 1].
        let combine: Tensor
        if configuration.normalizeTopK {
            // p_i / Σ_{j∈S} p_j is the softmax of the selected logits.
            combine = logits.reshaped([tokens * expertCount, 1]).gatherRows(flatIndices)
                .reshaped([tokens, k]).softmax().reshaped([tokens * k, 1])
        } else {
            combine = probabilities.reshaped([tokens * expertCount, 1]).gatherRows(flatIndices)
        }

        // Ask the provider once per distinct selected expert.
        let distinct = slotsByExpert.keys.sorted()
        var resident: [Int: ExpertWeights] = [:]
        for expert in distinct {
            resident[expert] = experts.weights(for: ExpertKey(layer: layer, expert: expert))
        }
        let anyMissing = resident.count < distinct.count
        let combineValues = observer != nil || anyMissing ? combine.floats : []

        if let observer {
            for t in 0..<tokens {
                let slots = (t * k)..<((t + 1) * k)
                observer(RoutingDecision(
                    layer: layer, position: positionOffset + t, experts: Array(selected[slots]),
                    weights: Array(combineValues[slots]),
                    probabilities: Array(probabilityValues[(t * expertCount)..<((t + 1) * expertCount)]),
                    missing: selected[slots].filter { resident[$0] == nil }))
            }
        }

        // The fallback for non-resident experts: per-slot factors, and mass moved to the shared path.
        var effective = combine
        var sharedExtra: [Float]? = nil
        if anyMissing {
            var factors = [Float](repeating: 1, count: tokens * k)
            var moved = [Float](repeating: 0, count: tokens)
            for t in 0..<tokens {
                let slots = (t * k)..<((t + 1) * k)
                let missingSlots = slots.filter { resident[selected[$0]] == nil }
                if missingSlots.isEmpty { continue }
                let missingMass = missingSlots.reduce(Float(0)) { $0 + combineValues[$1] }
                if sharedExpert != nil {
                    moved[t] = missingMass
                    for s in missingSlots { factors[s] = 0 }
                } else {
                    let total = slots.reduce(Float(0)) { $0 + combineValues[$1] }
                    let residentMass = total - missingMass
                    let factor = residentMass > 0 ? total / residentMass : 0
                    for s in slots { factors[s] = resident[selected[s]] == nil ? 0 : factor }
                }
            }
            effective = combine * Tensor(shape: [tokens * k, 1], values: factors)
            if sharedExpert != nil { sharedExtra = moved }
        }

        // Routed experts: each runs once on the tokens that chose it; outputs scatter back.
        var routed: Tensor? = nil
        for expert in distinct {
            guard let weights = resident[expert], let slots = slotsByExpert[expert] else { continue }
            let rows = slots.map { $0 / k }
            let out = GatedMLP(weights)(x.gatherRows(rows))
            let weighted = Tensor.scaleRows(out, by: effective.gatherRows(slots))
            let contribution = Tensor.scatterAddRows(weighted, indices: rows, rows: tokens)
            routed = routed.map { $0 + contribution } ?? contribution
        }
        var y = routed ?? Tensor(zeros: [tokens, hidden])

        if let sharedExpert {
            var coefficient = Tensor.linear(x, weight: sharedExpert.gate).sigmoid()  // [T, 1]
            if let sharedExtra { coefficient = coefficient + Tensor(shape: [tokens, 1], values: sharedExtra) }
            y = y + Tensor.scaleRows(sharedExpert.mlp(x), by: coefficient)
        }
        return y
    }
}
