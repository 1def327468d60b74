import Foundation

/// A Hugging Face byte-level BPE tokenizer (the GPT-2, Qwen2 and Llama-3 families), read from
/// `tokenizer.json`: text to token ids and back.
///
/// Encoding follows the Hugging Face pipeline: added tokens are found in the raw text, the text
/// between them is normalised, split into words by the pre-tokenizer's pattern, and each word's
/// bytes are merged by BPE. No template tokens (BOS, EOS) are added.
public final class Tokenizer: Sendable {
    /// The file sections this tokenizer was built from, which `jsonData()` writes back.
    let file: TokenizerFile
    private let bytePairEncoding: BytePairEncoding
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer
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

    /// Builds the tokenizer from file sections; `name` names their source in errors.
    init(file: TokenizerFile, name: String) throws(TokenizerError) {
        self.file = file
        bytePairEncoding = try BytePairEncoding(model: file.model, file: name)
        normalizer = file.normalizer
        preTokenizer = file.preTokenizer

        var tokens = [String?]()
        func assign(_ id: Int, _ token: String) {
            if id >= tokens.count { tokens += repeatElement(nil, count: id + 1 - tokens.count) }
            tokens[id] = token
        }
        for (token, id) in file.model.vocab { assign(id, token) }
        var addedTokenIds: [String: Int] = [:]
        for added in file.addedTokens {
            guard (0...TokenizerFile.maximumTokenId).contains(added.id), !added.content.isEmpty else {
                throw .malformedFile(file: name, reason: "added token \(added.id) \(added.content.debugDescription) is invalid")
            }
            assign(added.id, added.content)
            addedTokenIds[added.content] = added.id
        }
        self.tokens = tokens
        self.addedTokenIds = addedTokenIds
        specialTokenIds = Set(file.addedTokens.filter(\.special).map(\.id))

        rawAddedTokens = AddedTokenMatcher(tokens: file.addedTokens.filter { !$0.normalized })
        let normalizer = file.normalizer
        normalizedAddedTokens = AddedTokenMatcher(tokens: file.addedTokens.filter(\.normalized)) { content in
            guard let normalized = Array(content.utf8).withUnsafeBufferPointer({ normalizer?.normalize($0) })
            else { return content }
            return String(decoding: normalized, as: UTF8.self)
        }

        var tokenBytes: [UInt8] = []
        var tokenByteStarts = [0]
        tokenByteStarts.reserveCapacity(tokens.count + 1)
        for token in tokens {
            if let token { tokenBytes += ByteLevel.decode(token) }
            tokenByteStarts.append(tokenBytes.count)
        }
        self.tokenBytes = tokenBytes
        self.tokenByteStarts = tokenByteStarts
    }

    /// One more than the largest token id: the number of rows of the embedding table.
    public var vocabularySize: Int { tokens.count }

    /// The added tokens (special tokens and user-added words), in file order.
    public var addedTokens: [AddedToken] { file.addedTokens }

    /// The token string of `id` (byte-level alphabet for vocabulary tokens), or nil if unknown.
    public func token(forId id: Int) -> String? {
        tokens.indices.contains(id) ? tokens[id] : nil
    }

    /// The id of a token string (an added token's content or a vocabulary entry), or nil.
    public func id(forToken token: String) -> Int? {
        addedTokenIds[token] ?? file.model.vocab[token]
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
        text.withUTF8 { raw in
            rawAddedTokens.split(raw, matchSpecialTokens: matchSpecialTokens) { piece in
                switch piece {
                case .token(let id):
                    ids.append(id)
                case .text(let range):
                    let segment = UnsafeBufferPointer(rebasing: raw[range])
                    if let normalized = normalizer?.normalize(segment) {
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
        let unencodable = bytePairEncoding.unencodableBytes
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
                if preTokenizer.addPrefixSpace && segment.first != UInt8(ascii: " ") {
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
        preTokenizer.forEachWord(in: text) { word in
            bytePairEncoding.encode(word: UnsafeBufferPointer(rebasing: text[word]), into: &ids, scratch: &scratch)
        }
    }

    /// The text of `ids`: their bytes joined, with invalid UTF-8 replaced by U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws(TokenizerError) -> String {
        var bytes: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &bytes, skipSpecialTokens: skipSpecialTokens) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the bytes that token `id` stands for (none for a skipped special token).
    func appendBytes(of id: Int, to bytes: inout [UInt8], skipSpecialTokens: Bool) throws(TokenizerError) {
        guard tokens.indices.contains(id), tokens[id] != nil else { throw .unknownTokenId(id) }
        if skipSpecialTokens && specialTokenIds.contains(id) { return }
        bytes += tokenBytes[tokenByteStarts[id]..<tokenByteStarts[id + 1]]
    }
}
