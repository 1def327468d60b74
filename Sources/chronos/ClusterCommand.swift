import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosRouting
import Foundation

/// `chronos cluster`: find which experts to store together from an activation trace.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Cluster experts by co-activation (Louvain) into a plan for `chronos pack --clusters`.",
        discussion: """
            Builds the co-activation graph of the trace (edge weight: tokens where two experts are \
            both selected, plus consecutive token pairs where one is selected at t and the other at \
            t+1), runs seeded Louvain, splits communities over the size caps, and writes the plan: a \
            JSON array of clusters, each an array of [layer, expert] pairs, every expert exactly once \
            (experts the trace never selects go to clusters of their own layer).

            It prints the modularity and, on the same trace, reads per token and bytes per read with \
            the default plan (one cluster per layer in expert order) and with the new one. A read is \
            one contiguous byte range of a cluster file, from the first to the last expert a token \
            needs in that cluster; each token is counted as if nothing were resident.
            """)

    @Option(help: "Activation trace from `chronos trace`.") var trace: String
    @Option(help: "Where to write the JSON cluster plan.") var out: String
    @Option(parsing: .unconditional, help: "Seed of Louvain's node visiting order.") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Split clusters to hold at most this many experts.") var maxClusterExperts: Int?
    @Option(parsing: .unconditional, help: "Split clusters to hold at most this many bytes of experts (at least one expert each).")
    var maxClusterBytes: Int?

    func validate() throws {
        if let maxClusterExperts, maxClusterExperts < 1 { throw ValidationError("--max-cluster-experts must be at least 1") }
        if let maxClusterBytes, maxClusterBytes < 1 { throw ValidationError("--max-cluster-bytes must be at least 1") }
    }

    func run() throws {
        let trace = try ActivationTrace.read(URL(fileURLWithPath: trace))
        let outcome = ExpertClustering.cluster(trace, seed: seed, maxExperts: maxClusterExperts, maxBytes: maxClusterBytes)
        try AtomicFile.write(ExpertClustering.planJSON(outcome.clusters), to: URL(fileURLWithPath: out))
        let before = ExpertClustering.readCost(trace, clusters: ExpertClustering.perLayer(trace))
        let after = ExpertClustering.readCost(trace, clusters: outcome.clusters)
        print(
            String(
                format: "Louvain: %d communities, modularity %.4f; wrote %d clusters to %@",
                outcome.communityCount, outcome.modularity, outcome.clusters.count, out))
        print("over \(trace.tokens.count) traced tokens:")
        print("  plan                 reads/token   bytes/read")
        print(String(format: "  one per layer        %8.2f   %12.0f", before.readsPerToken, before.bytesPerRead))
        print(String(format: "  co-activation        %8.2f   %12.0f", after.readsPerToken, after.bytesPerRead))
    }
}
