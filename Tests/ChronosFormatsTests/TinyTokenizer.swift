import ChronosFormats

/// A byte-level BPE vocabulary small enough to follow by hand: ids 0–255 are the bytes
/// themselves, 256–258 are the merges that spell " the", then four added tokens with each
/// matching rule.
enum TinyTokenizer {
    static let vocabulary: [String: Int] = {
        var vocabulary: [String: Int] = [:]
        for byte in 0..<256 { vocabulary[ByteLevel.encode([UInt8(byte)])] = byte }
        vocabulary["Ġt"] = 256
        vocabulary["he"] = 257
        vocabulary["Ġthe"] = 258
        return vocabulary
    }()

    static let merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]

    static let addedTokens = [
        AddedToken(id: 259, content: "<|endoftext|>"),
        AddedToken(id: 260, content: "<mask>", special: false, lstrip: true),
        AddedToken(id: 261, content: "<r>", rstrip: true),
        AddedToken(id: 262, content: "tok", special: false, singleWord: true, normalized: false)
    ]

    static func make() throws -> Tokenizer {
        try Tokenizer(vocabulary: vocabulary, merges: merges, addedTokens: addedTokens)
    }
}
