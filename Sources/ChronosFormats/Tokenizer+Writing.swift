import Foundation

extension Tokenizer {
    /// A GPT-2-style tokenizer (no normaliser, `ByteLevel` pre-tokenizer with the GPT-2 pattern,
    /// `ByteLevel` decoder) from a trained vocabulary: token strings in the byte-level alphabet
    /// (see `ByteLevel.encode`) with their ids, merges in priority order, and added tokens.
    public convenience init(
        vocabulary: [String: Int], merges: [(String, String)], addedTokens: [AddedToken] = []
    ) throws(TokenizerError) {
        // A lone ByteLevel step is always a valid pre-tokenizer.
        let gpt2 = try! PreTokenizer(steps: [.byteLevel(addPrefixSpace: false, useRegex: true)])
        let file = TokenizerFile(
            addedTokens: addedTokens,
            normalizer: nil,
            preTokenizer: gpt2,
            model: .init(vocab: vocabulary, merges: merges.map { TokenizerFile.Merge($0.0, $0.1) }))
        try self.init(file: file, name: "in-memory vocabulary")
    }

    /// The tokenizer as `tokenizer.json` contents that the Hugging Face `tokenizers` library
    /// reads: keys sorted, merges as `["a", "b"]` pairs, no post-processor. A SentencePiece
    /// tokenizer has no such form here and throws.
    public func jsonData() throws(TokenizerError) -> Data {
        guard case .byteLevel(let file, _) = model else {
            throw .unsupported(file: "tokenizer.json", feature: "writing a SentencePiece tokenizer")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Every value is a string, number, bool or null, which JSONEncoder always encodes.
        return try! encoder.encode(file)
    }

    /// Writes the tokenizer as `tokenizer.json` at `url`, atomically.
    public func write(to url: URL) throws(TokenizerError) {
        let data = try jsonData()
        do {
            try AtomicFile.write(data, to: url)
        } catch {
            throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
    }

    /// Writes a tokenizer trained with `TokenizerTrainer.chatSpecialTokens` into `directory`
    /// (created if missing) with `TokenizerConfig.chronosChat`: `tokenizer_config.json` first and
    /// `tokenizer.json` last, so a directory holding `tokenizer.json` is complete.
    public func writeChatTokenizer(into directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try TokenizerConfig.chronosChat.write(to: ModelDirectory(directory).tokenizerConfig, addedTokens: addedTokens)
        try write(to: ModelDirectory(directory).tokenizer)
    }
}
