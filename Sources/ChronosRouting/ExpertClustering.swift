import ChronosModel
import Foundation

/// The expert co-activation graph of a trace: nodes are the (layer, expert) pairs the trace
/// selects at least once, in (layer, expert) order.
///
/// The weight of the edge between two different pairs a and b is
///
///     w(a, b) = #{ tokens t : a and b are both selected at t (any MoE layers) }
///             + #{ consecutive tokens t, t+1 of one sequence : a selected at t and b at t+1,
///                  or b at t and a at t+1 }
///
/// so a pair firing together for one token adds 1, and firing on neighbouring tokens adds 1
/// per order it happens in. A pair selected at both t and t+1 adds nothing to itself: there
/// are no self-loops.
public struct CoactivationGraph: Sendable {
    /// The node of each index.
    public let nodes: [ExpertKey]
    /// The weighted graph on node indices.
    public let graph: WeightedGraph

    /// The graph of `trace`.
    public init(trace: ActivationTrace) {
        var present = Set<ExpertKey>()
        for token in trace.tokens {
            for (slot, experts) in token.experts.enumerated() {
                for e in experts { present.insert(ExpertKey(layer: trace.layers[slot].layer, expert: e)) }
            }
        }
        nodes = present.sorted { ($0.layer, $0.expert) < ($1.layer, $1.expert) }
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($0.element, $0.offset) })
        func selected(_ token: ActivationTrace.Token) -> [Int] {
            var ids: [Int] = []
            for (slot, experts) in token.experts.enumerated() {
                for e in experts { ids.append(index[ExpertKey(layer: trace.layers[slot].layer, expert: e)]!) }
            }
            return Array(Set(ids)).sorted()
        }
        var weights: [Int: Double] = [:]
        let n = nodes.count
        func add(_ a: Int, _ b: Int) {
            guard a != b else { return }
            weights[min(a, b) * n + max(a, b), default: 0] += 1
        }
        var previous: (sequence: Int, position: Int, ids: [Int])? = nil
        for token in trace.tokens {
            let ids = selected(token)
            for (x, a) in ids.enumerated() { for b in ids[(x + 1)...] { add(a, b) } }
            if let previous, previous.sequence == token.sequence, previous.position + 1 == token.position {
                for a in previous.ids { for b in ids { add(a, b) } }
            }
            previous = (token.sequence, token.position, ids)
        }
        graph = WeightedGraph(nodeCount: n, edges: weights.keys.sorted().map { ($0 / n, $0 % n, weights[$0]!) })
    }
}

/// Turns a trace into a cluster plan for `chronos pack --clusters`, and measures plans on it.
public enum ExpertClustering {
    /// The clusters found, with what Louvain reported.
    public struct Outcome: Sendable {
        /// Ordered clusters covering every expert of the traced model exactly once.
        public var clusters: [[ExpertKey]]
        /// Modularity of the Louvain communities on the co-activation graph (before splitting).
        public var modularity: Double
        /// Communities Louvain found among the experts the trace selects.
        public var communityCount: Int
    }

    /// Clusters the experts of `trace`'s model: Louvain communities of the co-activation graph
    /// (seeded with `seed`), each split into consecutive chunks of its experts in
    /// (layer, expert) order whenever it holds more than `maxExperts` experts or more than
    /// `maxBytes` bytes (each chunk holds at least one expert); then, per MoE layer, the experts
    /// the trace never selects, in expert order, split the same way. Clusters are ordered by
    /// their first expert, the never-selected ones after them.
    public static func cluster(_ trace: ActivationTrace, seed: UInt64, maxExperts: Int? = nil, maxBytes: Int? = nil) -> Outcome {
        let coactivation = CoactivationGraph(trace: trace)
        let result = Louvain.run(coactivation.graph, seed: seed)
        let bytes = expertBytes(trace)
        var communities = [[ExpertKey]](repeating: [], count: (result.communities.max() ?? -1) + 1)
        for (node, community) in result.communities.enumerated() { communities[community].append(coactivation.nodes[node]) }
        var clusters = communities.flatMap { split(sorted($0), bytes: bytes, maxExperts: maxExperts, maxBytes: maxBytes) }
        clusters.sort { ($0[0].layer, $0[0].expert) < ($1[0].layer, $1[0].expert) }
        let seen = Set(coactivation.nodes)
        for layer in trace.layers {
            let unseen = (0..<layer.experts).map { ExpertKey(layer: layer.layer, expert: $0) }.filter { !seen.contains($0) }
            if !unseen.isEmpty { clusters += split(unseen, bytes: bytes, maxExperts: maxExperts, maxBytes: maxBytes) }
        }
        return Outcome(clusters: clusters, modularity: result.modularity, communityCount: communities.count)
    }

    /// One cluster per MoE layer in expert order: what `chronos pack` writes by default.
    public static func perLayer(_ trace: ActivationTrace) -> [[ExpertKey]] {
        trace.layers.map { layer in (0..<layer.experts).map { ExpertKey(layer: layer.layer, expert: $0) } }
    }

    /// The plan in the JSON form `ClusterPlan` reads: an array of clusters, each an array of
    /// `[layer, expert]` pairs.
    public static func planJSON(_ clusters: [[ExpertKey]]) -> Data {
        let lines = clusters.map { cluster in "  [" + cluster.map { "[\($0.layer), \($0.expert)]" }.joined(separator: ", ") + "]" }
        return Data(("[\n" + lines.joined(separator: ",\n") + "\n]\n").utf8)
    }

    /// What reading the experts of every token of a trace costs under a plan.
    public struct ReadCost: Sendable, Equatable {
        /// Tokens measured.
        public var tokens: Int
        /// Reads over all tokens.
        public var reads: Int
        /// Bytes over all reads.
        public var bytes: Int

        /// A cost with every field given.
        public init(tokens: Int, reads: Int, bytes: Int) {
            self.tokens = tokens
            self.reads = reads
            self.bytes = bytes
        }

        /// Mean reads per token.
        public var readsPerToken: Double { tokens > 0 ? Double(reads) / Double(tokens) : 0 }
        /// Mean bytes per read.
        public var bytesPerRead: Double { reads > 0 ? Double(bytes) / Double(reads) : 0 }
    }

    /// The reads a token needs under `clusters`, each cluster file holding its experts back to
    /// back in the order listed. For each token, the experts it selects in every MoE layer are
    /// grouped by cluster; each cluster holding at least one of them costs exactly one read,
    /// the contiguous byte range from the first to the last of those experts in the file (the
    /// experts between them included, the ones needed or not). Every token is measured on its
    /// own, as if nothing were resident; experts in no cluster are not counted.
    public static func readCost(_ trace: ActivationTrace, clusters: [[ExpertKey]]) -> ReadCost {
        let bytes = expertBytes(trace)
        var place: [ExpertKey: (cluster: Int, index: Int)] = [:]
        var prefix: [[Int]] = []
        for (c, cluster) in clusters.enumerated() {
            var sums = [0]
            for (i, key) in cluster.enumerated() {
                place[key] = (c, i)
                sums.append(sums.last! + (bytes[key.layer] ?? 0))
            }
            prefix.append(sums)
        }
        var cost = ReadCost(tokens: trace.tokens.count, reads: 0, bytes: 0)
        for token in trace.tokens {
            var span: [Int: (lo: Int, hi: Int)] = [:]
            for (slot, experts) in token.experts.enumerated() {
                for e in experts {
                    guard let (c, i) = place[ExpertKey(layer: trace.layers[slot].layer, expert: e)] else { continue }
                    let old = span[c] ?? (i, i)
                    span[c] = (min(old.lo, i), max(old.hi, i))
                }
            }
            for (c, range) in span {
                cost.reads += 1
                cost.bytes += prefix[c][range.hi + 1] - prefix[c][range.lo]
            }
        }
        return cost
    }

    private static func expertBytes(_ trace: ActivationTrace) -> [Int: Int] {
        Dictionary(trace.layers.map { ($0.layer, $0.expertBytes) }, uniquingKeysWith: { a, _ in a })
    }

    private static func sorted(_ keys: [ExpertKey]) -> [ExpertKey] {
        keys.sorted { ($0.layer, $0.expert) < ($1.layer, $1.expert) }
    }

    /// `keys` cut, in order, into chunks within both limits (at least one expert per chunk).
    static func split(_ keys: [ExpertKey], bytes: [Int: Int], maxExperts: Int?, maxBytes: Int?) -> [[ExpertKey]] {
        var chunks: [[ExpertKey]] = [], chunk: [ExpertKey] = [], chunkBytes = 0
        for key in keys {
            let size = bytes[key.layer] ?? 0
            let full = (maxExperts.map { chunk.count >= $0 } ?? false) || (maxBytes.map { chunkBytes + size > $0 } ?? false)
            if !chunk.isEmpty && full {
                chunks.append(chunk)
                chunk = []
                chunkBytes = 0
            }
            chunk.append(key)
            chunkBytes += size
        }
        if !chunk.isEmpty { chunks.append(chunk) }
        return chunks
    }
}
