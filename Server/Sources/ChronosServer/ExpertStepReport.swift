import ChronosEngine
import ChronosStorage

/// One event of `GET /v1/chronos/events`: what a forward pass of one generation did with the
/// experts, and where every expert is after it.
///
/// `generation` numbers the server's generations; `phase` is `prefill` (the prompt's pass) or
/// `decode` (one token); `used` lists, per MoE layer, the experts the pass was routed to; `step`
/// holds the pass's needs, hits, misses and stall (its generation's own) and the bytes the store
/// read meanwhile; `total` the store's counters since it opened; `residency` the report of
/// `GET /v1/chronos/experts`. `step` and `total` are null when every expert is in memory.
enum ExpertStepReport {
    /// The event for `snapshot`, the pass of generation `generation` whose storage counters moved
    /// by `step`.
    static func json(_ snapshot: OffloadSnapshot, step: StorageMetrics?, generation: Int, model: ServedModel) -> JSONValue {
        var used: [Int: [Int]] = [:]
        for key in snapshot.routed { used[key.layer, default: []].append(key.expert) }
        let layers: [JSONValue] = used.keys.sorted().map { layer in
            ["layer": .number(Double(layer)), "experts": .array(used[layer, default: []].sorted().map { .number(Double($0)) })]
        }
        let total = model.offloaded.storageMetrics()
        return [
            "object": "chronos.step", "generation": .number(Double(generation)),
            "phase": snapshot.isPrefill ? "prefill" : "decode", "position": .number(Double(snapshot.position)),
            "decode_steps": .number(Double(snapshot.decodeSteps)), "used": .array(layers),
            "step": step.map(stepCounters) ?? nil,
            "total": total.map(totalCounters) ?? nil,
            "residency": ExpertResidencyReport.json(for: model)
        ]
    }

    /// A pass's counters.
    private static func stepCounters(_ step: StorageMetrics) -> JSONValue {
        [
            "needed": .number(Double(step.needed)), "hits": .number(Double(step.hits)),
            "misses": .number(Double(step.needed - step.hits)), "stall_seconds": .number(Double(step.stallNanoseconds) / 1e9),
            "bytes_read": .number(Double(step.bytesRead)), "reads": .number(Double(step.reads))
        ]
    }

    /// The store's counters since it opened.
    private static func totalCounters(_ total: StorageMetrics) -> JSONValue {
        [
            "needed": .number(Double(total.needed)), "hits": .number(Double(total.hits)), "hit_rate": .number(total.hitRate),
            "stall_seconds": .number(Double(total.stallNanoseconds) / 1e9), "bytes_read": .number(Double(total.bytesRead)),
            "reads": .number(Double(total.reads)), "prefetched_bytes": .number(Double(total.prefetchedBytes)),
            "prefetch_used_bytes": .number(Double(total.prefetchUsedBytes)), "evictions": .number(Double(total.evictions))
        ]
    }
}
