import ChronosModel
import Foundation

/// Which experts share a cluster file: a partition of a model's (layer, expert) pairs into
/// ordered clusters, each written as one `.ctsr` file so that loading a cluster is one
/// sequential read.
///
/// As a file (`chronos pack --clusters FILE`) it is a JSON array of clusters, each an array of
/// `[layer, expert]` pairs, every pair of the model exactly once:
///
///     [[[0, 3], [0, 5], [1, 2]], [[0, 0], [0, 1]], …]
///
/// Experts are stored in the order listed. Until co-activation clustering exists the default is
/// one cluster per MoE layer in expert order.
public struct ClusterPlan: Sendable, Equatable {
    /// The clusters, each an ordered list of experts.
    public var clusters: [[ExpertKey]]

    /// A plan with the given clusters (checked against a model by `validate`).
    public init(clusters: [[ExpertKey]]) {
        self.clusters = clusters
    }

    /// One cluster per MoE layer, experts in index order.
    public static func perLayer(_ summary: ModelSummary) -> ClusterPlan {
        ClusterPlan(
            clusters: summary.expertsPerLayer.enumerated().compactMap { layer, count in
                count > 0 ? (0..<count).map { ExpertKey(layer: layer, expert: $0) } : nil
            })
    }

    /// Reads the JSON plan at `url` and checks it covers `summary`'s experts exactly once.
    public static func read(_ url: URL, for summary: ModelSummary) throws -> ClusterPlan {
        let pairs: [[[Int]]]
        do {
            pairs = try JSONDecoder().decode([[[Int]]].self, from: Data(contentsOf: url))
        } catch {
            throw ExpertCacheError.invalidClusterPlan(
                path: url.path, reason: "expected a JSON array of clusters, each an array of [layer, expert] pairs")
        }
        let clusters = try pairs.enumerated().map { index, cluster in
            try cluster.map { pair -> ExpertKey in
                guard pair.count == 2 else {
                    throw ExpertCacheError.invalidClusterPlan(
                        path: url.path, reason: "cluster \(index) has an entry \(pair) that is not a [layer, expert] pair")
                }
                return ExpertKey(layer: pair[0], expert: pair[1])
            }
        }
        let plan = ClusterPlan(clusters: clusters)
        try plan.validate(summary, path: url.path)
        return plan
    }

    /// Checks that every cluster is non-empty and every expert of `summary` appears exactly once.
    public func validate(_ summary: ModelSummary, path: String = "cluster plan") throws {
        var seen = Set<ExpertKey>()
        for (index, cluster) in clusters.enumerated() {
            guard !cluster.isEmpty else { throw ExpertCacheError.invalidClusterPlan(path: path, reason: "cluster \(index) is empty") }
            for key in cluster {
                guard key.layer >= 0, key.layer < summary.expertsPerLayer.count,
                    key.expert >= 0, key.expert < summary.expertsPerLayer[key.layer]
                else {
                    throw ExpertCacheError.invalidClusterPlan(
                        path: path, reason: "cluster \(index) names \(key), which the model does not have")
                }
                guard seen.insert(key).inserted else {
                    throw ExpertCacheError.invalidClusterPlan(path: path, reason: "\(key) appears more than once")
                }
            }
        }
        for (layer, count) in summary.expertsPerLayer.enumerated() {
            for expert in 0..<count where !seen.contains(ExpertKey(layer: layer, expert: expert)) {
                throw ExpertCacheError.invalidClusterPlan(path: path, reason: "\(ExpertKey(layer: layer, expert: expert)) is in no cluster")
            }
        }
    }
}
