import ChronosTensor

/// A routed mixture of SwiGLU experts, with an optional always-active shared path:
///
///     p = softmax(W_router · x + c)  over all E experts, or σ(W_router · x + c) per expert (`scoring`)
///     S = top-k of p + b                                  (descending; b the selection bias, or 0)
///     w_i = α·p_i, or α·p_i / Σ_{j∈S} p_j when normalizeTopK    (α = `weightScale`, default 1)
///     y = Σ_{i∈S} w_i · E_i(x)  [+ c(x) · Shared(x)]
///
/// The families differ in `normalizeTopK` (Mixtral always; Qwen, OLMoE, Chronos and DeepSeek-V3
/// per `norm_topk_prob`) and in the shared path: Qwen2-MoE has one shared expert scaled by
/// c(x) = σ(g·x); Chronos sums `num_shared_experts` ungated ones (c(x) = 1); DeepSeek has one
/// ungated one. DeepSeek also limits S to the experts of the best groups (`groups`), scores
/// with a sigmoid and a selection bias (V3), and scales the weights by α; GLM-4.5 routes as
/// DeepSeek-V3 does, with `norm_topk_prob` deciding the renormalisation. gpt-oss has a router
/// bias c, and experts with biases (held here, stacked over the experts, so that an offloaded
/// expert stays three matrices) and a clamped SwiGLU.
///
/// Each selected slot (token t, expert i) has an availability a_i ∈ [0, 1]: 0 when the
/// `ExpertProvider` has no weights for the expert (not resident, and its miss policy does not wait),
/// otherwise the value the caller asks for (1 by default). Where a_i < 1 the block degrades:
/// - with a shared path, the unavailable part of the weight moves to it (soft fallback):
///
///       y = Σ_{i∈S} w_i · [a_i·E_i(x) + (1 − a_i)·Shared(x)] + c(x)·Shared(x)
///
///   so the shared coefficient becomes `c(x) + Σ_i w_i·(1 − a_i)`, differentiable in w;
/// - without one, the selected weights are rescaled to carry the selected total
///   `Σ_{j∈S} w_j` over the available part, `w_i·a_i · Σ_j w_j / Σ_j w_j·a_j` (the factor is a
///   constant for gradients), and if nothing is available the routed part contributes zero.
///
/// With every slot fully available the computation is exactly the plain one above.
struct MoEBlock: Sendable {
    /// The always-active path: shared SwiGLU experts, summed, optionally scaled by a gate.
    struct SharedExperts: Sendable {
        let mlps: [GatedMLP]
        /// `[1, hidden]`: the summed output is scaled by σ(gate · x) (Qwen2-MoE); nil: unscaled.
        let gate: Tensor?

        /// Σ_s Shared_s(x): `[T, hidden]` → `[T, hidden]`.
        func callAsFunction(_ x: Tensor) -> Tensor {
            mlps.dropFirst().reduce(mlps[0](x)) { $0 + $1(x) }
        }
    }

    /// The routed experts' biases, stacked over the experts: gate and up `[E, I]`, down `[E, hidden]`.
    struct ExpertBiases: Sendable {
        let gate: Tensor
        let up: Tensor
        let down: Tensor

        /// Expert `expert`'s three bias vectors.
        func callAsFunction(_ expert: Int) -> (gate: Tensor, up: Tensor, down: Tensor) {
            func row(_ stacked: Tensor) -> Tensor { stacked.slice(expert..<(expert + 1)).reshaped([stacked.shape[1]]) }
            return (row(gate), row(up), row(down))
        }
    }

    /// What the block computed for a batch of tokens, for training losses and runtime traces.
    struct Routing {
        /// `[T, hidden]`.
        let output: Tensor
        /// Router logits `[T, E]`.
        let logits: Tensor
        /// Router scores p `[T, E]`: the softmax, or the per-expert sigmoid.
        let probabilities: Tensor
        /// Selected expert of each slot t·k + j, in descending p + b.
        let selected: [Int]
        /// Combine weight w of each slot, `[T·k, 1]`, before any fallback.
        let combine: Tensor
        /// Availability a of each slot, after residency.
        let availability: [Float]
    }

    let layer: Int
    let configuration: MixtureConfiguration
    /// `[experts, hidden]`.
    let router: Tensor
    /// c `[experts]`, added to the router logits; nil: none.
    let routerBias: Tensor?
    /// b `[experts]`, added to the scores to choose experts and nowhere else; nil: none.
    let selectionBias: Tensor?
    /// The routed experts' biases; nil: none.
    let expertBiases: ExpertBiases?
    let shared: SharedExperts?
    let experts: any ExpertProvider

    /// The experts this block's router picks, best first, for the last row of `stream`: a
    /// residual stream read before it reaches this layer, normed with `norm` (this layer's norm
    /// before the feed-forward). A preview of the block's routing for that token.
    func previewExperts(stream: Tensor, norm: Tensor, eps: Float) -> [Int] {
        let last = stream.shape[0] - 1
        let x = stream.slice(last..<(last + 1)).contiguous().rmsNorm(weight: norm, eps: eps)
        return select(scores: scores(Tensor.linear(x, weight: router, bias: routerBias)).floats, bias: selectionBias?.floats)?[0] ?? []
    }

    /// The router scores p of `logits` `[T, E]`.
    private func scores(_ logits: Tensor) -> Tensor {
        switch configuration.scoring {
        case .softmax: logits.softmax()
        case .sigmoid: logits.sigmoid()
        }
    }

    /// The k experts each of the T rows of `scores` (`[T, E]` row-major) selects, in descending
    /// p + b, among the experts of the best groups when the block has groups; nil when a row has
    /// fewer than k that are not NaN (the router's weights or input hold NaN or infinity).
    private func select(scores: [Float], bias: [Float]?) -> [[Int]]? {
        let expertCount = configuration.expertCount, k = configuration.topK
        let tokens = scores.count / expertCount
        var selection: [[Int]] = []
        for t in 0..<tokens {
            var choice = Array(scores[(t * expertCount)..<((t + 1) * expertCount)])
            if let bias { choice = zip(choice, bias).map { $0 + $1 } }
            if let groups = configuration.groups {
                let size = expertCount / groups.count
                let rank = (0..<groups.count).map { g -> Float in
                    let members = choice[(g * size)..<((g + 1) * size)].sorted(by: >)
                    return groups.rank == .best ? members[0] : members[0] + members[1]
                }
                let kept = rank.withUnsafeBufferPointer {
                    Set(Selection.topK($0.baseAddress!, count: groups.count, k: groups.selected).map(\.index))
                }
                for g in 0..<groups.count where !kept.contains(g) {
                    for e in (g * size)..<((g + 1) * size) { choice[e] = -.infinity }
                }
            }
            let chosen = choice.withUnsafeBufferPointer { Selection.topK($0.baseAddress!, count: expertCount, k: k).map(\.index) }
            guard chosen.count == k else { return nil }
            selection.append(chosen)
        }
        return selection
    }

    /// The rows of a pass that one sequence owns, who is told their routing, and where their
    /// routed experts come from (nil: the block's own provider).
    struct Sequence {
        /// Rows of the pass's `[T, hidden]` input.
        let rows: Range<Int>
        /// Position of the first row in its sequence.
        let positionOffset: Int
        let observer: (any ForwardObserver)?
        let provider: (any ExpertProvider)?
    }

    /// The block's output and routing for `x` `[T, hidden]`, whose rows belong to `sequences`.
    /// `availability(slot, expert)` gives a ∈ [0, 1] for slot `slot` (= t·k + j) routed to
    /// `expert`; nil means 1 everywhere. An expert a sequence's provider does not have is
    /// unavailable to that sequence whatever it says. Each expert runs once over the rows of
    /// every sequence that has it, so a pass over several sequences reads each expert once.
    /// The shared path runs first: `beforeRouted` is handed its gated output `c(x)·Shared(x)`
    /// (nil without one) after the layer's needs are announced and before any routed expert is
    /// asked for.
    func route(
        _ x: Tensor, sequences: [Sequence], availability: ((_ slot: Int, _ expert: Int) -> Float)? = nil,
        beforeRouted: ((Tensor?) -> Void)? = nil
    ) throws(ModelError) -> Routing {
        let tokens = x.shape[0], hidden = x.shape[1]
        let expertCount = configuration.expertCount, k = configuration.topK

        let logits = Tensor.linear(x, weight: router, bias: routerBias)  // [T, E]
        let probabilities = scores(logits)
        let probabilityValues = probabilities.floats

        // Selected expert of each slot t·k + j, in descending p + b; its flat index t·E + e;
        // the slots of each selected expert.
        var selected: [Int] = [], flatIndices: [Int] = [], slotsByExpert: [Int: [Int]] = [:]
        selected.reserveCapacity(tokens * k)
        flatIndices.reserveCapacity(tokens * k)
        guard let selection = select(scores: probabilityValues, bias: selectionBias?.floats) else {
            throw .nonFiniteRouting(layer: layer)
        }
        for (t, choices) in selection.enumerated() {
            for expert in choices {
                slotsByExpert[expert, default: []].append(selected.count)
                selected.append(expert)
                flatIndices.append(t * expertCount + expert)
            }
        }

        // Combine weights, one per slot: [T·k, 1].
        var combine: Tensor
        switch (configuration.scoring, configuration.normalizeTopK) {
        case (.softmax, true):
            // p_i / Σ_{j∈S} p_j is the softmax of the selected logits.
            combine = logits.reshaped([tokens * expertCount, 1]).gatherRows(flatIndices)
                .reshaped([tokens, k]).softmax().reshaped([tokens * k, 1])
        case (.sigmoid, true):
            // p_i / (Σ_{j∈S} p_j + 1e-20), as DeepSeek-V3 guards it; the sum is a constant for gradients.
            let sums = (0..<tokens).map { t in flatIndices[(t * k)..<((t + 1) * k)].reduce(Float(0)) { $0 + probabilityValues[$1] } }
            let factors = (0..<(tokens * k)).map { 1 / (sums[$0 / k] + 1e-20) }
            combine =
                probabilities.reshaped([tokens * expertCount, 1]).gatherRows(flatIndices)
                * Tensor(shape: [tokens * k, 1], values: factors)
        case (_, false):
            combine = probabilities.reshaped([tokens * expertCount, 1]).gatherRows(flatIndices)
        }
        if configuration.weightScale != 1 { combine = combine.scaled(by: configuration.weightScale) }

        // Announce each sequence's distinct experts to its provider (those sharing a provider
        // together), then ask for each expert once per provider, in the order the providers
        // return (those they hold first), and run it at once on the rows of the sequences that
        // have it, so at most one expert's weights are held at a time. A slot the caller marks
        // unavailable does not run; an expert a provider lacks runs for none of its sequences.
        var groupOfRow = [Int](repeating: 0, count: tokens)
        var providers: [any ExpertProvider] = [], groupOfProvider: [ObjectIdentifier: Int] = [:]
        for sequence in sequences {
            let provider = sequence.provider ?? experts
            let identity = ObjectIdentifier(provider)
            let group = groupOfProvider[identity] ?? providers.count
            if group == providers.count {
                groupOfProvider[identity] = group
                providers.append(provider)
            }
            for row in sequence.rows { groupOfRow[row] = group }
        }
        // The first group's experts run first, so it announces last: a store that several
        // sessions share loads the most recently announced needs first.
        var orders = [[Int]](repeating: [], count: providers.count)
        for (group, provider) in providers.enumerated().reversed() {
            let needed = slotsByExpert.keys.sorted().filter { expert in slotsByExpert[expert]!.contains { groupOfRow[$0 / k] == group } }
            orders[group] = provider.willNeed(needed.map { ExpertKey(layer: layer, expert: $0) }).map(\.expert)
        }
        var order: [Int] = [], announced = Set<Int>()
        for expert in orders.joined() where announced.insert(expert).inserted { order.append(expert) }
        let sharedGate = shared?.gate.map { Tensor.linear(x, weight: $0).sigmoid() }  // [T, 1]
        let sharedOutput = shared.map { $0(x) }
        if let beforeRouted {
            beforeRouted(sharedOutput.map { output in sharedGate.map { Tensor.scaleRows(output, by: $0) } ?? output })
        }
        let requested = selected.indices.map { slot in min(max(availability?(slot, selected[slot]) ?? 1, 0), 1) }
        // The experts each provider group had.
        var resident = [Set<Int>](repeating: [], count: providers.count)
        var outputs: [(expert: Int, slots: [Int], rows: [Int], output: Tensor)] = []
        for expert in order {
            let key = ExpertKey(layer: layer, expert: expert)
            var weights: ExpertWeights? = nil
            for (group, provider) in providers.enumerated() where slotsByExpert[expert]!.contains(where: { groupOfRow[$0 / k] == group }) {
                guard let held = provider.weights(for: key) else { continue }
                resident[group].insert(expert)
                weights = weights ?? held
            }
            guard let weights else { continue }
            let slots = slotsByExpert[expert]!.filter { requested[$0] > 0 && resident[groupOfRow[$0 / k]].contains(expert) }
            guard !slots.isEmpty else { continue }
            let rows = slots.map { $0 / k }
            let mlp = GatedMLP(weights, biases: expertBiases?(expert), activation: configuration.activation)
            outputs.append((expert, slots, rows, mlp(x.gatherRows(rows))))
        }
        let available = selected.indices.map { slot -> Float in
            resident[groupOfRow[slot / k]].contains(selected[slot]) ? requested[slot] : 0
        }
        let reduced = available.contains { $0 < 1 }
        let observed = sequences.contains { $0.observer != nil }
        let combineValues = observed || reduced ? combine.floats : []

        for sequence in sequences {
            guard let observer = sequence.observer else { continue }
            for t in sequence.rows {
                let slots = (t * k)..<((t + 1) * k), had = resident[groupOfRow[t]]
                observer.routed(
                    RoutingDecision(
                        layer: layer, position: sequence.positionOffset + t - sequence.rows.lowerBound,
                        experts: Array(selected[slots]), weights: Array(combineValues[slots]),
                        probabilities: Array(probabilityValues[(t * expertCount)..<((t + 1) * expertCount)]),
                        missing: selected[slots].filter { !had.contains($0) }))
            }
        }

        // The fallback for partly available slots: routed weights, and mass moved to the shared path.
        var effective = combine
        var movedToShared: Tensor? = nil  // [T, 1]: Σ_i w_i·(1 − a_i)
        if reduced {
            if shared != nil {
                effective = combine * Tensor(shape: [tokens * k, 1], values: available)
                let lost = Tensor(shape: [tokens * k, 1], values: available.map { 1 - $0 })
                movedToShared = (combine * lost).reshaped([tokens, k]).sumColumns().reshaped([tokens, 1])
            } else {
                var factors = [Float](repeating: 0, count: tokens * k)
                for t in 0..<tokens {
                    let slots = (t * k)..<((t + 1) * k)
                    let total = slots.reduce(Float(0)) { $0 + combineValues[$1] }
                    let kept = slots.reduce(Float(0)) { $0 + combineValues[$1] * available[$1] }
                    let factor = kept > 0 ? total / kept : 0
                    for s in slots { factors[s] = available[s] * factor }
                }
                effective = combine * Tensor(shape: [tokens * k, 1], values: factors)
            }
        }

        // Routed experts' outputs, weighted, scatter back to their tokens in expert order (the
        // same sums whatever order they ran in).
        var routed: Tensor? = nil
        for (_, slots, rows, output) in outputs.sorted(by: { $0.expert < $1.expert }) {
            let weighted = Tensor.scaleRows(output, by: effective.gatherRows(slots))
            let contribution = Tensor.scatterAddRows(weighted, indices: rows, rows: tokens)
            routed = routed.map { $0 + contribution } ?? contribution
        }
        var y = routed ?? Tensor(zeros: [tokens, hidden])

        if let sharedOutput {
            var coefficient = sharedGate
            if let movedToShared {
                coefficient =
                    coefficient.map { $0 + movedToShared }
                    ?? Tensor(shape: [tokens, 1], values: [Float](repeating: 1, count: tokens)) + movedToShared
            }
            y = y + (coefficient.map { Tensor.scaleRows(sharedOutput, by: $0) } ?? sharedOutput)
        }
        return Routing(
            output: y, logits: logits, probabilities: probabilities, selected: selected, combine: combine,
            availability: available)
    }
}
