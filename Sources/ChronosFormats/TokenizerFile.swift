/// The sections of a Hugging Face `tokenizer.json` that byte-level BPE uses, as they are written.
///
/// Read and checked: `added_tokens`, `normalizer`, `pre_tokenizer`, `decoder` (must be
/// `ByteLevel`) and `model` (must be `BPE` without dropout, byte fallback or subword affixes).
/// Not used: `truncation` and `padding` (batch options) and `post_processor` (encoding never adds
/// template tokens such as a BOS); a written file has them null.
struct TokenizerFile: Codable, Sendable {
    /// The largest token id accepted, far above any real vocabulary, so that a corrupt id cannot
    /// make the id-indexed tables huge.
    static let maximumTokenId = 1 << 24 - 1

    var addedTokens: [AddedToken]
    var normalizer: Normalizer?
    var preTokenizer: PreTokenizer
    var model: Model

    /// The `model` section.
    struct Model: Codable, Sendable {
        /// Token string (in the byte-level alphabet) to id.
        var vocab: [String: Int]
        /// Merges in priority order: the earlier a merge, the sooner it applies.
        var merges: [Merge]
        /// Whether a word that is itself in the vocabulary is emitted whole, without merging.
        var ignoreMerges: Bool
        /// The token emitted for a byte that is missing from the vocabulary, if any.
        var unkToken: String?

        private enum CodingKeys: String, CodingKey {
            case type, vocab, merges, dropout
            case unkToken = "unk_token"
            case continuingSubwordPrefix = "continuing_subword_prefix"
            case endOfWordSuffix = "end_of_word_suffix"
            case fuseUnk = "fuse_unk"
            case byteFallback = "byte_fallback"
            case ignoreMerges = "ignore_merges"
        }

        init(vocab: [String: Int], merges: [Merge], ignoreMerges: Bool = false, unkToken: String? = nil) {
            self.vocab = vocab
            self.merges = merges
            self.ignoreMerges = ignoreMerges
            self.unkToken = unkToken
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let type = try container.decodeIfPresent(String.self, forKey: .type) ?? "BPE"
            guard type == "BPE" else { throw UnsupportedFeature("model type \(type) (only BPE)") }
            if let dropout = try container.decodeIfPresent(Double.self, forKey: .dropout), dropout > 0 {
                throw UnsupportedFeature("BPE dropout \(dropout)")
            }
            for key in [CodingKeys.continuingSubwordPrefix, .endOfWordSuffix] {
                if let affix = try container.decodeIfPresent(String.self, forKey: key), !affix.isEmpty {
                    throw UnsupportedFeature("BPE \(key.stringValue) \(affix.debugDescription)")
                }
            }
            if try container.decodeIfPresent(Bool.self, forKey: .byteFallback) == true {
                throw UnsupportedFeature("BPE byte_fallback")
            }
            vocab = try container.decode([String: Int].self, forKey: .vocab)
            merges = try Self.decodeMerges(container)
            ignoreMerges = try container.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false
            unkToken = try container.decodeIfPresent(String.self, forKey: .unkToken)
        }

        /// Reads `merges` as `["a", "b"]` pairs or in the older `"a b"` form.
        private static func decodeMerges(_ container: KeyedDecodingContainer<CodingKeys>) throws -> [Merge] {
            func corrupted(_ description: String) -> DecodingError {
                .dataCorrupted(.init(codingPath: container.codingPath + [CodingKeys.merges], debugDescription: description))
            }
            if let pairs = try? container.decode([[String]].self, forKey: .merges) {
                return try pairs.map { pair in
                    guard pair.count == 2 else { throw corrupted("merge \(pair) is not two tokens") }
                    return Merge(pair[0], pair[1])
                }
            }
            return try container.decode([String].self, forKey: .merges).map { line in
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw corrupted("merge \(line.debugDescription) is not two tokens") }
                return Merge(String(parts[0]), String(parts[1]))
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode("BPE", forKey: .type)
            try container.encodeNil(forKey: .dropout)
            try container.encode(unkToken, forKey: .unkToken)
            try container.encodeNil(forKey: .continuingSubwordPrefix)
            try container.encodeNil(forKey: .endOfWordSuffix)
            try container.encode(false, forKey: .fuseUnk)
            try container.encode(false, forKey: .byteFallback)
            try container.encode(ignoreMerges, forKey: .ignoreMerges)
            try container.encode(vocab, forKey: .vocab)
            try container.encode(merges, forKey: .merges)
        }
    }

    /// One merge rule, written `["a", "b"]`.
    struct Merge: Encodable, Sendable {
        var left: String
        var right: String

        init(_ left: String, _ right: String) {
            self.left = left
            self.right = right
        }

        func encode(to encoder: any Encoder) throws {
            var pair = encoder.unkeyedContainer()
            try pair.encode(left)
            try pair.encode(right)
        }
    }

    private enum CodingKeys: String, CodingKey {
        case version, truncation, padding, normalizer, decoder, model
        case addedTokens = "added_tokens"
        case preTokenizer = "pre_tokenizer"
        case postProcessor = "post_processor"
    }

    private enum DecoderKeys: String, CodingKey {
        case type
        case addPrefixSpace = "add_prefix_space"
        case trimOffsets = "trim_offsets"
        case useRegex = "use_regex"
    }

    init(addedTokens: [AddedToken], normalizer: Normalizer?, preTokenizer: PreTokenizer, model: Model) {
        self.addedTokens = addedTokens
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard try !container.decodeNil(forKey: .preTokenizer) else {
            throw UnsupportedFeature("pre_tokenizer null (byte-level BPE needs a ByteLevel pre-tokenizer)")
        }
        guard try !container.decodeNil(forKey: .decoder) else { throw UnsupportedFeature("decoder null") }
        let decoderType = try container.nestedContainer(keyedBy: DecoderKeys.self, forKey: .decoder)
            .decode(String.self, forKey: .type)
        guard decoderType == "ByteLevel" else { throw UnsupportedFeature("decoder type \(decoderType)") }
        addedTokens = try container.decodeIfPresent([AddedToken].self, forKey: .addedTokens) ?? []
        normalizer = try container.decodeIfPresent(Normalizer.self, forKey: .normalizer)
        preTokenizer = try container.decode(PreTokenizer.self, forKey: .preTokenizer)
        model = try container.decode(Model.self, forKey: .model)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("1.0", forKey: .version)
        try container.encodeNil(forKey: .truncation)
        try container.encodeNil(forKey: .padding)
        try container.encode(addedTokens, forKey: .addedTokens)
        try container.encode(normalizer, forKey: .normalizer)
        try container.encode(preTokenizer, forKey: .preTokenizer)
        try container.encodeNil(forKey: .postProcessor)
        var byteLevel = container.nestedContainer(keyedBy: DecoderKeys.self, forKey: .decoder)
        try byteLevel.encode("ByteLevel", forKey: .type)
        try byteLevel.encode(true, forKey: .addPrefixSpace)
        try byteLevel.encode(true, forKey: .trimOffsets)
        try byteLevel.encode(true, forKey: .useRegex)
        try container.encode(model, forKey: .model)
    }
}
