import Foundation

/// A tokenizer: text to token ids and back. Either a Hugging Face byte-level BPE tokenizer (the
/// GPT-2, Qwen2 and Llama-3 families), read from `tokenizer.json` or a GGUF file, or a
/// SentencePiece BPE tokenizer (Llama 2, Mistral, Mixtral), read from a GGUF file.
///
/// Encoding follows the Hugging Face pipeline: added tokens are found in the raw text, the text
/// between them is normalised, split into words by the pre-tokenizer's pattern, and each word's
/// bytes are merged by BPE; SentencePiece instead merges each stretch of text whole (see
/// `SentencePiece`). No template tokens (BOS, EOS) are added.
public final class Tokenizer: Sendable {
    /// How the text between added tokens becomes ids.
    enum Model: Sendable {
        /// Byte-level BPE, with the `tokenizer.json` sections it was built from (which
        /// `jsonData()` writes back).
        case byteLevel(file: TokenizerFile, bytePairEncoding: BytePairEncoding)
        /// SentencePiece BPE.
        case sentencePiece(SentencePiece)
    }

    let model: Model
    /// The added tokens (special tokens and user-added words), in file order.
    public let addedTokens: [AddedToken]
    private let normalizer: Normalizer?
    /// Added tokens matched in the raw text, and those matched after normalisation.
    private let rawAddedTokens: AddedTokenMatcher
    private let normalizedAddedTokens: AddedTokenMatcher
    private let addedTokenIds: [String: Int]
    /// Token strings by id; nil for ids that no token has.
    private let tokens: [String?]
    private let specialTokenIds: Set<Int>
    /// The bytes each token stands for: those of id `i` are `tokenBytes[tokenByteStarts[i]..<tokenByteStarts[i + 1]]`.
    private let tokenBytes: [UInt8]
    private let tokenByteStarts: [Int]

    /// Reads `tokenizer.json` at `url`.
    public convenience init(contentsOf url: URL) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
        try self.init(data: data, file: url.path)
    }

    /// Reads the contents of a `tokenizer.json`; `file` names it in errors.
    public convenience init(data: Data, file: String = ModelDirectory.Name.tokenizer) throws(TokenizerError) {
        let decoded: TokenizerFile
        do {
            decoded = try JSONDecoder().decode(TokenizerFile.self, from: data)
        } catch {
            throw TokenizerError.wrapping(error, file: file)
        }
        try self.init(file: decoded, name: file)
    }

    /// Builds a byte-level BPE tokenizer from file sections; `name` names their source in errors.
    convenience init(file: TokenizerFile, name: String) throws(TokenizerError) {
        let vocab = file.model.vocab.map { (id: $0.value, token: $0.key, bytes: ByteLevel.decode($0.key)) }
        try self.init(
            model: .byteLevel(file: file, bytePairEncoding: try BytePairEncoding(model: file.model, file: name)),
            normalizer: file.normalizer, vocabulary: vocab, addedTokens: file.addedTokens, addedTokenBytes: ByteLevel.decode, name: name)
    }

    /// Builds a SentencePiece tokenizer: `vocabulary` is every token but the added ones, with its bytes.
    convenience init(
        sentencePiece: SentencePiece, vocabulary: [(id: Int, token: String, bytes: [UInt8])], addedTokens: [AddedToken],
        name: String
    ) throws(TokenizerError) {
        try self.init(
            model: .sentencePiece(sentencePiece), normalizer: nil, vocabulary: vocabulary, addedTokens: addedTokens,
            addedTokenBytes: { Array($0.utf8) }, name: name)
    }

    /// `addedTokenBytes` gives the bytes an added token's content stands for.
    private init(
        model: Model, normalizer: Normalizer?, vocabulary: [(id: Int, token: String, bytes: [UInt8])], addedTokens: [AddedToken],
        addedTokenBytes: (String) -> [UInt8], name: String
    ) throws(TokenizerError) {
        self.model = model
        self.normalizer = normalizer
        self.addedTokens = addedTokens

        var tokens = [String?](), bytes = [[UInt8]?]()
        func assign(_ id: Int, _ token: String, _ tokenBytes: [UInt8]) {
            if id >= tokens.count {
                tokens += repeatElement(nil, count: id + 1 - tokens.count)
                bytes += repeatElement(nil, count: id + 1 - bytes.count)
            }
            tokens[id] = token
            bytes[id] = tokenBytes
        }
        for entry in vocabulary { assign(entry.id, entry.token, entry.bytes) }
        var addedTokenIds: [String: Int] = [:]
        for added in addedTokens {
            guard (0...TokenizerFile.maximumTokenId).contains(added.id), !added.content.isEmpty else {
                throw .malformedFile(file: name, reason: "added token \(added.id) \(added.content.debugDescription) is invalid")
            }
            assign(added.id, added.content, addedTokenBytes(added.content))
            addedTokenIds[added.content] = added.id
        }
        self.tokens = tokens
        self.addedTokenIds = addedTokenIds
        specialTokenIds = Set(addedTokens.filter(\.special).map(\.id))

        rawAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter { !$0.normalized })
        normalizedAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter(\.normalized)) { content in
            guard let normalized = Array(content.utf8).withUnsafeBufferPointer({ normalizer?.normalize($0) })
            else { return content }
            return String(decoding: normalized, as: UTF8.self)
        }

        var tokenBytes: [UInt8] = []
        var tokenByteStarts = [0]
        tokenByteStarts.reserveCapacity(tokens.count + 1)
        for entry in bytes {
            if let entry { tokenBytes += entry }
            tokenByteStarts.append(tokenBytes.count)
        }
        self.tokenBytes = tokenBytes
        self.tokenByteStarts = tokenByteStarts
    }

    /// One more than the largest token id: the number of rows of the embedding table.
    public var vocabularySize: Int { tokens.count }

    /// The token string of `id` (byte-level alphabet for vocabulary tokens), or nil if unknown.
    public func token(forId id: Int) -> String? {
        tokens.indices.contains(id) ? tokens[id] : nil
    }

    /// The id of a token string (an added token's content or a vocabulary entry), or nil.
    public func id(forToken token: String) -> Int? {
        if let id = addedTokenIds[token] { return id }
        switch model {
        case .byteLevel(let file, _): return file.model.vocab[token]
        case .sentencePiece(let sentencePiece): return sentencePiece.id(of: token)
        }
    }

    /// Whether `id` is a special added token, such as `<|endoftext|>`.
    public func isSpecialToken(_ id: Int) -> Bool {
        specialTokenIds.contains(id)
    }

    /// The token ids of `text`. With `matchSpecialTokens` false, the spelling of a special token
    /// in the text is encoded as ordinary text (other added tokens still match).
    public func encode(_ text: String, matchSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3)
        var scratch = MergeScratch()
        var text = text
        var afterAddedToken = true
        text.withUTF8 { raw in
            rawAddedTokens.split(raw, matchSpecialTokens: matchSpecialTokens) { piece in
                switch piece {
                case .token(let id):
                    ids.append(id)
                    afterAddedToken = true
                case .text(let range):
                    let segment = UnsafeBufferPointer(rebasing: raw[range])
                    defer { afterAddedToken = false }
                    if case .sentencePiece(let sentencePiece) = model {
                        // As llama.cpp: a space before the text and after each added token.
                        sentencePiece.encode(segment, prefixSpace: sentencePiece.addsSpacePrefix && afterAddedToken, into: &ids)
                    } else if let normalized = normalizer?.normalize(segment) {
                        normalized.withUnsafeBufferPointer { normalized in
                            encodeNormalized(normalized, matchSpecialTokens, into: &ids, scratch: &scratch)
                        }
                    } else {
                        encodeNormalized(segment, matchSpecialTokens, into: &ids, scratch: &scratch)
                    }
                }
            }
        }
        return ids
    }

    /// The token ids of `text`, or an error naming the first byte of it that the vocabulary has
    /// no token for, where `encode` would drop that byte as the Hugging Face tokenizer does.
    public func encodeEveryByte(_ text: String, matchSpecialTokens: Bool = true) throws(TokenizerError) -> [Int] {
        let unencodable =
            switch model {
            case .byteLevel(_, let bytePairEncoding): bytePairEncoding.unencodableBytes
            case .sentencePiece(let sentencePiece): sentencePiece.unencodableBytes
            }
        if !unencodable.isEmpty, let offset = text.utf8.firstIndex(where: unencodable.contains) {
            throw .unencodableByte(text.utf8[offset], offset: text.utf8.distance(from: text.utf8.startIndex, to: offset))
        }
        return encode(text, matchSpecialTokens: matchSpecialTokens)
    }

    private func encodeNormalized(
        _ text: UnsafeBufferPointer<UInt8>, _ matchSpecialTokens: Bool, into ids: inout [Int],
        scratch: inout MergeScratch
    ) {
        normalizedAddedTokens.split(text, matchSpecialTokens: matchSpecialTokens) { piece in
            switch piece {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                let segment = UnsafeBufferPointer(rebasing: text[range])
                guard case .byteLevel(let file, _) = model else { return }
                if file.preTokenizer.addPrefixSpace && segment.first != UInt8(ascii: " ") {
                    ([UInt8(ascii: " ")] + segment).withUnsafeBufferPointer { prefixed in
                        encodeWords(prefixed, into: &ids, scratch: &scratch)
                    }
                } else {
                    encodeWords(segment, into: &ids, scratch: &scratch)
                }
            }
        }
    }

    private func encodeWords(_ text: UnsafeBufferPointer<UInt8>, into ids: inout [Int], scratch: inout MergeScratch) {
        guard case .byteLevel(let file, let bytePairEncoding) = model else { return }
        file.preTokenizer.forEachWord(in: text) { word in
            bytePairEncoding.encode(word: UnsafeBufferPointer(rebasing: text[word]), into: &ids, scratch: &scratch)
        }
    }

    /// The text of `ids`: their bytes joined, with invalid UTF-8 replaced by U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws(TokenizerError) -> String {
        var bytes: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &bytes, skipSpecialTokens: skipSpecialTokens) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes that token `id` stands for (a special token's text included).
    public func bytes(ofToken id: Int) throws(TokenizerError) -> [UInt8] {
        var bytes: [UInt8] = []
        try appendBytes(of: id, to: &bytes, skipSpecialTokens: false)
        return bytes
    }

    /// Appends the bytes that token `id` stands for (none for a skipped special token).
    func appendBytes(of id: Int, to bytes: inout [UInt8], skipSpecialTokens: Bool) throws(TokenizerError) {
        guard tokens.indices.contains(id), tokens[id] != nil else { throw .unknownTokenId(id) }
        if skipSpecialTokens && specialTokenIds.contains(id) { return }
        bytes += tokenBytes[tokenByteStarts[id]..<tokenByteStarts[id + 1]]
    }
}
