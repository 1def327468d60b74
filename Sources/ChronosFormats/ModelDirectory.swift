import Foundation

/// A model directory in the Hugging Face layout, with the files Chronos adds to it: the one
/// place that names each file or folder such a directory can hold.
///
///     config.json                      the architecture and its settings
///     model.safetensors                the weights in one file, or
///     model.safetensors.index.json     the shard index, beside the shards it lists
///     tokenizer.json                   the tokenizer
///     tokenizer_config.json            special tokens and the chat template
///     generation_config.json           sampling defaults
///     lookahead.safetensors            a lookahead head trained from a trace
///     intent.safetensors               the prompt-level intent classifier
///     expert_cache/                    the packed routed experts (`ExpertCacheManifest` names what is inside)
public struct ModelDirectory: Sendable, Hashable, CustomStringConvertible {
    /// The names of the files and folders, relative to the directory.
    public enum Name {
        /// The architecture and its settings.
        public static let config = "config.json"
        /// The whole checkpoint in one safetensors file.
        public static let checkpoint = "model.safetensors"
        /// The shard index of a sharded checkpoint, whose `weight_map` maps tensor names to shard files.
        public static let checkpointIndex = "model.safetensors.index.json"
        /// The byte-level BPE tokenizer.
        public static let tokenizer = "tokenizer.json"
        /// The tokenizer of a model converted from GGUF: the source's `tokenizer.*` metadata in
        /// a GGUF file without tensors (SentencePiece vocabularies have no `tokenizer.json` here).
        public static let ggufTokenizer = "tokenizer.gguf"
        /// The tokenizer's special tokens and chat template.
        public static let tokenizerConfig = "tokenizer_config.json"
        /// Sampling defaults the model was published with.
        public static let generationConfig = "generation_config.json"
        /// A lookahead head trained from an activation trace, used in place of a native one.
        public static let lookaheadHead = "lookahead.safetensors"
        /// The prompt-level intent classifier.
        public static let intentClassifier = "intent.safetensors"
        /// The folder of packed routed experts (cluster files and their manifest).
        public static let expertCache = "expert_cache"

        /// Every name above, in the order listed.
        public static let all = [
            config, checkpoint, checkpointIndex, tokenizer, ggufTokenizer, tokenizerConfig, generationConfig,
            lookaheadHead, intentClassifier, expertCache
        ]
    }

    /// The directory itself.
    public let url: URL

    /// The model directory at `url`.
    public init(_ url: URL) { self.url = url }

    /// The model directory at the file-system path `path`.
    public init(path: String) { url = URL(fileURLWithPath: path) }

    /// The directory's path.
    public var path: String { url.path }

    /// The directory's path.
    public var description: String { url.path }

    /// `config.json`: the architecture and its settings.
    public var config: URL { url.appendingPathComponent(Name.config) }
    /// `model.safetensors`: the whole checkpoint in one file.
    public var checkpoint: URL { url.appendingPathComponent(Name.checkpoint) }
    /// `model.safetensors.index.json`: the shard index of a sharded checkpoint.
    public var checkpointIndex: URL { url.appendingPathComponent(Name.checkpointIndex) }
    /// `tokenizer.json`: the tokenizer.
    public var tokenizer: URL { url.appendingPathComponent(Name.tokenizer) }
    /// `tokenizer.gguf`: the tokenizer of a model converted from GGUF.
    public var ggufTokenizer: URL { url.appendingPathComponent(Name.ggufTokenizer) }
    /// `tokenizer_config.json`: special tokens and the chat template.
    public var tokenizerConfig: URL { url.appendingPathComponent(Name.tokenizerConfig) }
    /// `generation_config.json`: sampling defaults.
    public var generationConfig: URL { url.appendingPathComponent(Name.generationConfig) }
    /// `lookahead.safetensors`: a lookahead head trained from a trace.
    public var lookaheadHead: URL { url.appendingPathComponent(Name.lookaheadHead) }
    /// `intent.safetensors`: the prompt-level intent classifier.
    public var intentClassifier: URL { url.appendingPathComponent(Name.intentClassifier) }
    /// `expert_cache/`: the packed routed experts.
    public var expertCache: URL { url.appendingPathComponent(Name.expertCache, isDirectory: true) }

    /// Whether the directory holds `config.json`, as every model directory does.
    public var hasConfig: Bool { FileManager.default.fileExists(atPath: config.path) }

    /// Whether the directory holds `tokenizer.json`.
    public var hasTokenizer: Bool { FileManager.default.fileExists(atPath: tokenizer.path) }

    /// The tokenizer of `tokenizer.json`, else of `tokenizer.gguf`, or nil when the directory has
    /// neither; for a `.gguf` file, the tokenizer in its metadata.
    public func loadTokenizer() throws(TokenizerError) -> Tokenizer? {
        func fromGGUF(_ url: URL) throws(TokenizerError) -> Tokenizer {
            let file: GGUFFile
            do {
                file = try GGUFFile(url: url)
            } catch {
                throw .malformedFile(file: url.path, reason: "\(error)")
            }
            return try Tokenizer(gguf: file)
        }
        if GGUFFile.isGGUF(url) { return try fromGGUF(url) }
        if hasTokenizer { return try Tokenizer(contentsOf: tokenizer) }
        if FileManager.default.fileExists(atPath: ggufTokenizer.path) { return try fromGGUF(ggufTokenizer) }
        return nil
    }
}
