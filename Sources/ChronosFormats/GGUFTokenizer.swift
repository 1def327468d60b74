import Foundation

/// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata.
///
/// Supported: `tokenizer.ggml.model` = `gpt2` (byte-level BPE from `tokens`, `merges` and
/// `token_type`) with the `tokenizer.ggml.pre` pre-tokenisers `gpt-2`, `llama-bpe` (Llama 3),
/// `qwen2`, `glm4` (GLM-4.5, the Llama-3 pattern), `deepseek-v3` and `gpt-4o` (gpt-oss's o200k),
/// which are the splitting patterns of `tokenizer.json` files Chronos reads; and
/// `llama` (SentencePiece BPE from `tokens` and `scores`). Control tokens become special added
/// tokens and user-defined tokens plain added tokens, as llama.cpp's converter took them from the
/// Hugging Face tokenizer. Anything else is refused by name.
extension Tokenizer {
    /// The `tokenizer.ggml.pre` names that load, with the normaliser and pre-tokeniser each means.
    static let ggufPreTokenizers: [String: (normalizer: [Normalizer.Form], steps: [PreTokenizerStep], ignoreMerges: Bool)] = [
        "gpt-2": ([], [.byteLevel(addPrefixSpace: false, useRegex: true)], false),
        "llama-bpe": ([], [.split(.llama3(maxDigits: 3)), .byteLevel(addPrefixSpace: false, useRegex: false)], true),
        "qwen2": ([.nfc], [.split(.llama3(maxDigits: 1)), .byteLevel(addPrefixSpace: false, useRegex: false)], false),
        // llama.cpp reads GLM-4.5's vocabulary whole words first, as Llama 3's.
        "glm4": ([], [.split(.llama3(maxDigits: 3)), .byteLevel(addPrefixSpace: false, useRegex: false)], true),
        "deepseek-v3": (
            [],
            [.split(.deepSeekDigits), .split(.deepSeekHanKana), .split(.deepSeekWords), .byteLevel(addPrefixSpace: false, useRegex: false)],
            false
        ),
        "gpt-4o": ([], [.split(.o200k), .byteLevel(addPrefixSpace: false, useRegex: false)], false)
    ]

    /// GGML's `token_type` values that matter here.
    private enum GGUFTokenType: Int {
        case normal = 1
        case unknown = 2
        case control = 3
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    /// The tokenizer in `file`'s metadata.
    public convenience init(gguf file: GGUFFile) throws(TokenizerError) {
        let name = file.url.path
        func unsupported(_ feature: String) -> TokenizerError { .unsupported(file: name, feature: feature) }
        func malformed(_ reason: String) -> TokenizerError { .malformedFile(file: name, reason: reason) }
        func strings(_ key: String) throws(TokenizerError) -> [String] {
            guard case .array(let values)? = file.metadata[key] else { throw malformed("\(key) is missing or not an array") }
            var strings: [String] = []
            strings.reserveCapacity(values.count)
            for value in values {
                guard let string = value.string else { throw malformed("\(key) holds a value that is not a string") }
                strings.append(string)
            }
            return strings
        }

        guard let model = file.metadata["tokenizer.ggml.model"]?.string else { throw malformed("tokenizer.ggml.model is missing") }
        guard model == "gpt2" || model == "llama" else {
            throw unsupported("tokenizer.ggml.model '\(model)' (byte-level BPE 'gpt2' and SentencePiece 'llama' are read)")
        }
        let tokens = try strings("tokenizer.ggml.tokens")
        guard !tokens.isEmpty, tokens.count <= TokenizerFile.maximumTokenId + 1 else {
            throw malformed("tokenizer.ggml.tokens holds \(tokens.count) tokens")
        }
        var types = [Int](repeating: GGUFTokenType.normal.rawValue, count: tokens.count)
        if let value = file.metadata["tokenizer.ggml.token_type"] {
            guard case .array(let values) = value, values.count == tokens.count else {
                throw malformed("tokenizer.ggml.token_type does not give one type per token")
            }
            for (index, value) in values.enumerated() {
                guard let type = value.int else { throw malformed("tokenizer.ggml.token_type holds a value that is not an integer") }
                types[index] = type
            }
        }
        if model == "llama" {
            try self.init(sentencePieceGGUF: file, tokens: tokens, types: types)
            return
        }
        let pre = file.metadata["tokenizer.ggml.pre"]?.string ?? "default"
        guard let (forms, steps, ignoreMerges) = Self.ggufPreTokenizers[pre] else {
            throw unsupported(
                "tokenizer.ggml.pre '\(pre)' (known: \(Self.ggufPreTokenizers.keys.sorted().joined(separator: ", ")))")
        }
        var merges: [TokenizerFile.Merge] = []
        for line in try strings("tokenizer.ggml.merges") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw malformed("merge \(line.debugDescription) is not two tokens") }
            merges.append(TokenizerFile.Merge(String(parts[0]), String(parts[1])))
        }

        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        var added: [AddedToken] = []
        for (id, token) in tokens.enumerated() {
            switch GGUFTokenType(rawValue: types[id]) {
            case .control: added.append(AddedToken(id: id, content: token, special: true))
            case .userDefined: added.append(AddedToken(id: id, content: token, special: false, normalized: false))
            default: if vocab[token] == nil { vocab[token] = id }
            }
        }
        let preTokenizer: PreTokenizer
        do {
            preTokenizer = try PreTokenizer(steps: steps)
        } catch {
            throw unsupported(error.feature)
        }
        try self.init(
            file: TokenizerFile(
                addedTokens: added, normalizer: forms.isEmpty ? nil : Normalizer(forms: forms), preTokenizer: preTokenizer,
                model: TokenizerFile.Model(vocab: vocab, merges: merges, ignoreMerges: ignoreMerges)),
            name: name)
    }

    /// The SentencePiece tokenizer of a GGUF `llama` tokenizer: `tokenizer.ggml.scores` rank the
    /// merges, `<0xNN>` byte tokens stand for bytes no token covers, `add_space_prefix` (default
    /// true) puts a space before the text.
    private convenience init(sentencePieceGGUF file: GGUFFile, tokens: [String], types: [Int]) throws(TokenizerError) {
        let name = file.url.path
        guard case .array(let values)? = file.metadata["tokenizer.ggml.scores"], values.count == tokens.count else {
            throw .malformedFile(file: name, reason: "tokenizer.ggml.scores does not give one score per token")
        }
        var scores: [Float] = []
        scores.reserveCapacity(values.count)
        for value in values {
            guard case .float(let score) = value, score.isFinite else {
                throw .malformedFile(file: name, reason: "tokenizer.ggml.scores holds a value that is not a finite number")
            }
            scores.append(Float(score))
        }
        var addsSpacePrefix = true
        if let value = file.metadata["tokenizer.ggml.add_space_prefix"] {
            guard case .bool(let flag) = value else {
                throw .malformedFile(file: name, reason: "tokenizer.ggml.add_space_prefix is not a bool")
            }
            addsSpacePrefix = flag
        }
        var unknownId: Int?
        if let value = file.metadata["tokenizer.ggml.unknown_token_id"] {
            guard let id = value.int, tokens.indices.contains(id) else {
                throw .malformedFile(file: name, reason: "tokenizer.ggml.unknown_token_id \(value) is not a token")
            }
            unknownId = id
        }
        var byteTokens: [Int: Int] = [:]
        var vocabulary: [(id: Int, token: String, bytes: [UInt8])] = []
        var added: [AddedToken] = []
        for (id, token) in tokens.enumerated() {
            let type = GGUFTokenType(rawValue: types[id])
            switch type {
            case .control: added.append(AddedToken(id: id, content: token, special: true, normalized: false))
            case .userDefined: added.append(AddedToken(id: id, content: token, special: false, normalized: false))
            default:
                if type == .byte, let byte = SentencePiece.byteValue(token) { byteTokens[Int(byte)] = id }
                vocabulary.append((id, token, SentencePiece.bytes(ofToken: token, isByte: type == .byte)))
            }
        }
        let sentencePiece = SentencePiece(
            tokens: tokens, scores: scores, byteTokens: byteTokens, unknownId: unknownId, addsSpacePrefix: addsSpacePrefix)
        try self.init(sentencePiece: sentencePiece, vocabulary: vocabulary, addedTokens: added, name: name)
    }
}

extension TokenizerConfig {
    /// The chat template (`tokenizer.chat_template`) and the BOS, EOS and padding tokens
    /// (`tokenizer.ggml.{bos,eos,padding}_token_id`, spelled from `tokenizer.ggml.tokens`) of a
    /// GGUF file.
    public init(gguf file: GGUFFile) {
        let metadata = file.metadata
        var tokens: [GGUFValue] = []
        if case .array(let values)? = metadata["tokenizer.ggml.tokens"] { tokens = values }
        func spelling(_ key: String) -> String? {
            guard let id = metadata[key]?.int, tokens.indices.contains(id) else { return nil }
            return tokens[id].string
        }
        self.init(
            chatTemplate: metadata["tokenizer.chat_template"]?.string, bosToken: spelling("tokenizer.ggml.bos_token_id"),
            eosToken: spelling("tokenizer.ggml.eos_token_id"), padToken: spelling("tokenizer.ggml.padding_token_id"),
            file: file.url.path)
    }
}
