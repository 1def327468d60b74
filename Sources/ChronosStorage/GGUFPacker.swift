import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Turns a GGUF file into a model directory whose experts can be offloaded: `config.json` from
/// the file's metadata, `model.safetensors` with every tensor in its GGUF type (quantised blocks
/// byte for byte), the tokenizer as `tokenizer.gguf` (the file's `tokenizer.*` metadata) and
/// `tokenizer_config.json`, and the packed expert cache. Every command that takes a model
/// directory then runs on the GGUF model: offloaded generation, tracing, the predictors'
/// training and `bench offload`.
///
/// The directory is written into a temporary folder beside `output` and renamed into place
/// when complete; an existing `output` is never overwritten.
public enum GGUFPacker {
    /// Converts `model`, loaded from the GGUF file `gguf`, into the new directory `output` and
    /// packs its experts by `plan` as `dtype` (default: their GGUF types). `progress` hears one
    /// line per step. Returns the manifest.
    @discardableResult
    public static func pack(
        _ model: TransformerLanguageModel, gguf: URL, into output: URL, plan: ClusterPlan? = nil, dtype: DType? = nil,
        progress: ((String) -> Void)? = nil
    ) throws -> ExpertCacheManifest {
        guard !FileManager.default.fileExists(atPath: output.path) else {
            throw ExpertCacheError.outputExists(path: output.path)
        }
        let file = try GGUFFile(url: gguf)
        guard model.summary.isMixtureOfExperts else { throw ExpertCacheError.noExperts(directory: gguf.path) }
        let tokenizer = try Tokenizer(gguf: file)

        let parent = output.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(output.lastPathComponent).\(UUID().uuidString).tmp", isDirectory: true)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            var reported = -1
            try model.save(to: staging) { written, total in
                let percent = written * 100 / total
                guard percent / 10 != reported / 10 || written == total else { return }
                reported = percent
                progress?("writing \(ModelDirectory.Name.checkpoint): \(written)/\(total) tensors")
            }
            let directory = ModelDirectory(staging)
            try GGUFFile.write(metadata: file.metadata.filter { $0.key.hasPrefix("tokenizer.") }, to: directory.ggufTokenizer)
            try TokenizerConfig(gguf: file).write(to: directory.tokenizerConfig, addedTokens: tokenizer.addedTokens)
            let manifest = try ExpertCachePacker.pack(directory: staging, model: model, plan: plan, dtype: dtype, progress: progress)
            try FileManager.default.moveItem(at: staging, to: output)
            return manifest
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }
}
