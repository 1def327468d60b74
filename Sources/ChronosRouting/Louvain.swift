import ChronosTensor

/// A weighted undirected graph on nodes `0..<nodeCount`, held as a symmetric adjacency list.
///
/// `adjacency[i]` lists `(j, A_ij)` with `j` ascending; a self-loop appears once as `(i, A_ii)`.
/// The degree is k_i = Σ_j A_ij and the total 2m = Σ_i k_i, so an edge {i, j} of weight w
/// (i ≠ j) adds w to both k_i and k_j and 2w to 2m.
public struct WeightedGraph: Sendable {
    /// Neighbours and weights of each node, neighbours ascending.
    public private(set) var adjacency: [[(node: Int, weight: Double)]]

    /// A graph of `nodeCount` nodes with the undirected `edges` (weights of repeated pairs add;
    /// an edge from a node to itself is a self-loop entry A_ii).
    public init(nodeCount: Int, edges: [(Int, Int, Double)]) {
        var rows = [[Int: Double]](repeating: [:], count: nodeCount)
        for (a, b, w) in edges where w != 0 {
            rows[a][b, default: 0] += w
            if a != b { rows[b][a, default: 0] += w }
        }
        adjacency = rows.map { row in row.keys.sorted().map { (node: $0, weight: row[$0]!) } }
    }

    /// Number of nodes.
    public var nodeCount: Int { adjacency.count }

    /// k_i for every node.
    public var degrees: [Double] { adjacency.map { $0.reduce(0) { $0 + $1.weight } } }

    /// Newman's modularity of `communities` (a label per node):
    /// Q = Σ_c [ in_c / 2m − (tot_c / 2m)² ], in_c = Σ_{i,j∈c} A_ij, tot_c = Σ_{i∈c} k_i.
    /// 0 for a graph without edges.
    public func modularity(_ communities: [Int]) -> Double {
        let degrees = self.degrees
        let total = degrees.reduce(0, +)
        guard total > 0 else { return 0 }
        let count = (communities.max() ?? -1) + 1
        var inside = [Double](repeating: 0, count: count), tot = [Double](repeating: 0, count: count)
        for (i, row) in adjacency.enumerated() {
            tot[communities[i]] += degrees[i]
            for (j, w) in row where communities[j] == communities[i] { inside[communities[i]] += w }
        }
        return (0..<count).reduce(0) { $0 + inside[$1] / total - (tot[$1] / total) * (tot[$1] / total) }
    }
}

/// Louvain community detection (Blondel et al. 2008), seeded and deterministic.
///
/// Each level runs *local moving*: nodes are visited in an order drawn by a Fisher–Yates
/// shuffle from `SplitMix64(seed)` (one generator for the whole run); each node leaves its
/// community and joins the neighbouring community (or its own) with the largest modularity gain
/// ΔQ ∝ k_{i,c} − tot_c · k_i / 2m, ties going to the lowest community label, staying put unless
/// another community gains strictly more. Passes repeat until one moves no node. Then
/// *aggregation* makes each community a node (A'_{cd} = Σ_{i∈c, j∈d} A_ij, internal weight a
/// self-loop) and the next level starts. The run stops at the first level whose local moving
/// moves nothing, i.e. when no move gains modularity.
public enum Louvain {
    /// The outcome of a run.
    public struct Result: Sendable, Equatable {
        /// The community of each original node, labelled 0, 1, … in order of each
        /// community's lowest node.
        public var communities: [Int]
        /// The modularity of `communities` on the original graph.
        public var modularity: Double
        /// Levels that moved at least one node.
        public var levels: Int
    }

    /// Partitions `graph` into communities.
    public static func run(_ graph: WeightedGraph, seed: UInt64) -> Result {
        var generator = SplitMix64(seed: seed)
        var membership = Array(0..<graph.nodeCount)
        var current = graph
        var levels = 0
        while current.nodeCount > 1 {
            let (labels, moved) = localMoving(current, generator: &generator)
            guard moved else { break }
            levels += 1
            let (relabelled, count) = canonical(labels)
            membership = membership.map { relabelled[$0] }
            current = aggregate(current, relabelled, count: count)
        }
        let (final, _) = canonical(membership)
        return Result(communities: final, modularity: graph.modularity(final), levels: levels)
    }

    /// Labels renumbered 0, 1, … in order of first appearance, and how many there are.
    static func canonical(_ labels: [Int]) -> ([Int], Int) {
        var map: [Int: Int] = [:]
        let out = labels.map { label in
            if let known = map[label] { return known }
            map[label] = map.count
            return map.count - 1
        }
        return (out, map.count)
    }

    /// One level of local moving; returns each node's community and whether any node moved.
    static func localMoving(_ graph: WeightedGraph, generator: inout SplitMix64) -> ([Int], Bool) {
        let n = graph.nodeCount
        let degrees = graph.degrees
        let total = degrees.reduce(0, +)
        var community = Array(0..<n)
        guard total > 0 else { return (community, false) }
        var tot = degrees
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        var links = [Double](repeating: 0, count: n)
        var touched: [Int] = [], isTouched = [Bool](repeating: false, count: n)
        var movedAny = false
        var movedThisPass = true
        while movedThisPass {
            movedThisPass = false
            for i in order {
                let own = community[i], k = degrees[i]
                for (j, w) in graph.adjacency[i] where j != i {
                    let c = community[j]
                    if !isTouched[c] {
                        isTouched[c] = true
                        touched.append(c)
                    }
                    links[c] += w
                }
                tot[own] -= k
                var best = own
                var bestGain = links[own] - tot[own] * k / total
                for c in touched.sorted() where c != own {
                    let gain = links[c] - tot[c] * k / total
                    if gain > bestGain + 1e-12 * max(1, abs(bestGain)) {
                        best = c
                        bestGain = gain
                    }
                }
                tot[best] += k
                if best != own {
                    community[i] = best
                    movedThisPass = true
                    movedAny = true
                }
                for c in touched {
                    links[c] = 0
                    isTouched[c] = false
                }
                touched.removeAll(keepingCapacity: true)
            }
        }
        return (community, movedAny)
    }

    /// The graph whose nodes are the `count` communities of `labels`.
    static func aggregate(_ graph: WeightedGraph, _ labels: [Int], count: Int) -> WeightedGraph {
        var edges: [(Int, Int, Double)] = []
        for (i, row) in graph.adjacency.enumerated() {
            for (j, w) in row where j >= i {
                let (a, b) = (labels[i], labels[j])
                // A_ij with i ≠ j inside one community counts twice in A'_cc (as A_ij and A_ji).
                edges.append((a, b, a == b && i != j ? 2 * w : w))
            }
        }
        return WeightedGraph(nodeCount: count, edges: edges)
    }
}
