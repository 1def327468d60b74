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
///     chronos_lookahead.safetensors    a Chronos model's own lookahead head, beside an export whose architecture has no place for it
///     modeling_chronos.py              the PyTorch module of a Chronos model exported for transformers
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
        /// A Chronos model's own lookahead head, beside an export whose architecture has no place for it.
        public static let exportedLookahead = "chronos_lookahead.safetensors"
        /// The PyTorch module of a Chronos model exported for transformers (`trust_remote_code`).
        public static let modelingModule = "modeling_chronos.py"
        /// The folder of packed routed experts (cluster files and their manifest).
        public static let expertCache = "expert_cache"

        /// Every name above, in the order listed.
        public static let all = [
            config, checkpoint, checkpointIndex, tokenizer, ggufTokenizer, tokenizerConfig, generationConfig,
            lookaheadHead, intentClassifier, exportedLookahead, modelingModule, expertCache
        ]

        /// The files that travel with a model's weights when they are rewritten into a new
        /// directory: the tokenizer, sampling defaults and the trained predictors.
        public static let companions = [
            tokenizer, ggufTokenizer, tokenizerConfig, generationConfig, lookaheadHead, intentClassifier
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
    /// `chronos_lookahead.safetensors`: the lookahead head beside an export that has no place for it.
    public var exportedLookahead: URL { url.appendingPathComponent(Name.exportedLookahead) }
    /// `modeling_chronos.py`: the PyTorch module of an export for transformers.
    public var modelingModule: URL { url.appendingPathComponent(Name.modelingModule) }
    /// `expert_cache/`: the packed routed experts.
    public var expertCache: URL { url.appendingPathComponent(Name.expertCache, isDirectory: true) }

    /// Creates the model directory `target`, which must not exist: `write` fills a temporary
    /// folder beside it, into which the companion files of `source` (`Name.companions`) that
    /// exist are copied first, and the folder is renamed to `target` only when `write` returns,
    /// so a failed or interrupted run leaves no half-written model. `write` may replace a
    /// companion file.
    public static func create(at target: URL, companionsFrom source: URL?, _ write: (URL) throws -> Void) throws {
        let files = FileManager.default
        guard !files.fileExists(atPath: target.path) else {
            throw CocoaError(.fileWriteFileExists, userInfo: [NSFilePathErrorKey: target.path])
        }
        let staging = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(UUID().uuidString)")
        do {
            try files.createDirectory(at: staging, withIntermediateDirectories: true)
            if let source {
                for name in Name.companions where files.fileExists(atPath: source.appendingPathComponent(name).path) {
                    try files.copyItem(at: source.appendingPathComponent(name), to: staging.appendingPathComponent(name))
                }
            }
            try write(staging)
            try files.moveItem(at: staging, to: target)
        } catch {
            try? files.removeItem(at: staging)
            throw error
        }
    }

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
