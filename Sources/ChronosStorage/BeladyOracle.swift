import ChronosModel

/// Belady's MIN for expert residency: given a run's whole routing, the hits of the eviction
/// policy that loads only on demand and, on each miss, evicts the experts needed again
/// farthest in the future (never-again first) until the new one fits. For experts of equal
/// size no demand-loading policy does better, so it bounds `lru` and the scored eviction on
/// the same routing and budget (prefetching can still beat it: a prefetched expert is a hit).
public enum BeladyOracle {
    /// Hits and needs when `steps` — each step's distinct experts in the order they are
    /// needed, as the expert store counts them — run through `capacity` bytes of memory,
    /// counted over the steps `counted` marks (every step when nil; all steps still fill memory).
    public static func simulate(
        steps: [[ExpertKey]], counted: [Bool]? = nil, capacity: Int,
        bytes: (ExpertKey) -> Int
    ) -> (hits: Int, needed: Int) {
        let requests = steps.flatMap { $0 }
        let countsRequest = steps.indices.flatMap { step in Array(repeating: counted?[step] ?? true, count: steps[step].count) }
        var nextUse = [Int](repeating: Int.max, count: requests.count)
        var upcoming: [ExpertKey: Int] = [:]
        for index in requests.indices.reversed() {
            nextUse[index] = upcoming[requests[index]] ?? Int.max
            upcoming[requests[index]] = index
        }
        var resident: [ExpertKey: Int] = [:]  // expert → index of its next need
        var held = 0, hits = 0, needed = 0
        for (index, key) in requests.enumerated() {
            if countsRequest[index] { needed += 1 }
            if resident[key] != nil {
                if countsRequest[index] { hits += 1 }
                resident[key] = nextUse[index]
                continue
            }
            let size = bytes(key)
            guard size <= capacity else { continue }
            while held + size > capacity,
                let victim = resident.max(by: { ($0.value, $0.key.layer, $0.key.expert) < ($1.value, $1.key.layer, $1.key.expert) })
            {
                resident[victim.key] = nil
                held -= bytes(victim.key)
            }
            resident[key] = nextUse[index]
            held += size
        }
        return (hits, needed)
    }
}
