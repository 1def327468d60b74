import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

extension DType: ExpressibleByArgument {
    /// The dtypes weights can be stored in, as the help lists them.
    public static var allValueStrings: [String] { allCases.filter(\.isFloatingPoint).map(\.rawValue) }
}

/// `chronos pack`: write a model's expert cache, and optionally slim the checkpoint for shipping.
struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Pack a model's routed experts into MODEL_DIR/expert_cache/ for offloaded inference.",
        discussion: """
            Writes one .ctsr cluster file (a safetensors file) per cluster and cluster_manifest.json, \
            which maps every (layer, expert) to its file and byte range with the weight dtype and an \
            XXH64 content hash per file and per expert. Packing is atomic: the cache is written into a \
            temporary folder and renamed into place only when complete. The cache records the content \
            hashes of config.json and of every expert tensor it was packed from, so it stays valid when \
            the directory is copied or cloned and goes stale when either changes.

            --quant TYPE stores the experts in a GGML block format (q4_k, q8_0, …), quantised as \
            llama.cpp quantises; the manifest records each expert's type, and the expert budget of \
            `generate` and `bench offload` counts the quantised bytes.

            --clusters FILE: a JSON array of clusters, each an array of [layer, expert] pairs, every \
            expert of the model exactly once, e.g. [[[0,3],[0,5],[1,2]], [[0,0],[0,1]], ...]. Without it, \
            one cluster per MoE layer in expert order.

            --strip-experts: after packing, rewrite model.safetensors without the routed experts, which \
            then live only in expert_cache/ (the directory shrinks to the dense weights plus the cache). \
            Loading works as before, with or without --expert-budget; such a directory is re-packed (say \
            with --clusters) from its own cache. --dense-dtype converts the checkpoint's other float tensors.

            A GGUF file (llama.cpp's format) is packed into a new model directory, --out DIR: config.json \
            from its metadata, model.safetensors with every tensor in its GGUF type, its tokenizer as \
            tokenizer.gguf and tokenizer_config.json, and expert_cache/ with the experts in their GGUF \
            types byte for byte (unless --quant or --dtype says otherwise). Every offload mode, the \
            predictors and `bench offload` then run on DIR.
            """)

    @Argument(help: "Model directory, or a GGUF file (with --out).") var directory: String
    @Option(help: "For a GGUF file: the new model directory to write.") var out: String?
    @Option(help: "A JSON cluster plan (see above).") var clusters: String?
    @Option(help: "Store the experts in the cache in this dtype (round-to-nearest-even); default: the checkpoint's.")
    var dtype: DType?
    @Option(
        help: ArgumentHelp(
            "Store the experts quantised to this GGML block format.",
            valueName: DType.allCases.filter(\.isQuantized).map(\.rawValue).joined(separator: "|")))
    var quant: String?
    @Flag(help: "After packing, rewrite model.safetensors without the routed experts (they live only in the cache).")
    var stripExperts = false
    @Option(help: "Rewrite model.safetensors with its non-expert float tensors in this dtype.")
    var denseDtype: DType?
    @Flag(help: "Hash every cluster file after packing and compare with the manifest.") var verify = false

    func validate() throws {
        let isGGUF = GGUFFile.isGGUF(URL(fileURLWithPath: directory))
        if isGGUF && out == nil { throw ValidationError("a GGUF file is packed into a new model directory: give --out DIR") }
        if !isGGUF && out != nil { throw ValidationError("--out applies to a GGUF file; a model directory is packed in place") }
        for (flag, value) in [("--dtype", dtype), ("--dense-dtype", denseDtype)] {
            if let value, !value.isFloatingPoint { throw ValidationError("\(flag) must be f32, f16 or bf16, not \(value.rawValue)") }
        }
        if let quant {
            guard let type = DType(rawValue: quant.lowercased()), type.isQuantized else {
                let types = DType.allCases.filter(\.isQuantized).map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--quant must be one of \(types), not '\(quant)'")
            }
            if dtype != nil { throw ValidationError("--quant and --dtype both name the experts' type: give one") }
        }
    }

    /// The type the experts are stored in: --quant's block format, --dtype's float type, or nil
    /// for the checkpoint's.
    private var expertType: DType? { quant.flatMap { DType(rawValue: $0.lowercased()) } ?? dtype }

    func run() throws {
        let progress = { (line: String) in FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        let source = URL(fileURLWithPath: directory)
        let model = try ModelLoader.load(directory: source)
        let plan = try clusters.map { try ClusterPlan.read(URL(fileURLWithPath: $0), for: model.summary) }
        let url: URL, manifest: ExpertCacheManifest
        if let out {
            url = URL(fileURLWithPath: out)
            manifest = try GGUFPacker.pack(model, gguf: source, into: url, plan: plan, dtype: expertType, progress: progress)
            print("wrote the model directory \(url.path) from \(source.path)")
        } else {
            url = source
            manifest = try ExpertCachePacker.pack(directory: url, model: model, plan: plan, dtype: expertType, progress: progress)
        }
        if verify { try ExpertCache.open(modelDirectory: url).verifyFiles() }
        print(
            "packed \(manifest.experts.count) experts (\(manifest.dtype), \(InspectCommand.bytes(manifest.expertBytes))) into \(manifest.files.count) cluster files in \(ModelDirectory(url).expertCache.path)\(verify ? ", verified" : "")"
        )
        guard stripExperts || denseDtype != nil else { return }
        let outcome = try CheckpointRewriter.rewrite(directory: url, model: model, stripExperts: stripExperts, denseDType: denseDtype)
        var changes: [String] = []
        if stripExperts { changes.append("\(outcome.strippedTensors) expert tensors stripped") }
        if let denseDtype { changes.append("\(outcome.convertedTensors) tensors converted to \(denseDtype.rawValue)") }
        print(
            "rewrote \(ModelDirectory.Name.checkpoint): \(InspectCommand.bytes(outcome.bytesBefore)) → \(InspectCommand.bytes(outcome.bytesAfter)) (\(changes.joined(separator: ", ")))"
        )
    }
}
