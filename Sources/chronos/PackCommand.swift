import ArgumentParser
import ChronosModel
import ChronosStorage
import Foundation

/// `chronos pack`: write a model's expert cache.
struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Pack a model's routed experts into MODEL_DIR/expert_cache/ for offloaded inference.",
        discussion: """
            Writes one .ctsr cluster file (a safetensors file) per cluster and cluster_manifest.json, \
            which maps every (layer, expert) to its file and byte range with the weight dtype and an \
            XXH64 content hash per file and per expert. Packing is atomic: the cache is written into a \
            temporary folder and renamed into place only when complete.

            --clusters FILE: a JSON array of clusters, each an array of [layer, expert] pairs, every \
            expert of the model exactly once, e.g. [[[0,3],[0,5],[1,2]], [[0,0],[0,1]], ...]. Without it, \
            one cluster per MoE layer in expert order.
            """)

    @Argument(help: "Model directory.") var directory: String
    @Option(help: "A JSON cluster plan (see above).") var clusters: String?
    @Flag(help: "Hash every cluster file after packing and compare with the manifest.") var verify = false

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        let model = try ModelRegistry.load(directory: url)
        let plan = try clusters.map { try ClusterPlan.read(URL(fileURLWithPath: $0), for: model.summary) }
        let manifest = try ExpertCachePacker.pack(directory: url, model: model, plan: plan) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        if verify { try ExpertCache.open(modelDirectory: url).verifyFiles() }
        print("packed \(manifest.experts.count) experts (\(manifest.dtype), \(InspectCommand.bytes(manifest.expertBytes))) into \(manifest.files.count) cluster files in \(url.appendingPathComponent(ExpertCacheManifest.directoryName).path)\(verify ? ", verified" : "")")
    }
}
