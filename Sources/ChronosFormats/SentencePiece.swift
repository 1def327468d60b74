/// SentencePiece BPE as llama.cpp runs it for a GGUF `llama` tokenizer: spaces become `▁`
/// (U+2581), the text starts as one symbol per UTF-8 character, and the adjacent pair whose
/// concatenation is the vocabulary token of highest score merges first (the leftmost on ties)
/// until no pair is a token. A symbol that is no token is written as its bytes' `<0xNN>` tokens.
struct SentencePiece: Sendable {
    /// Token id by UTF-8 spelling (`▁` for spaces), every token of the vocabulary.
    private let ids: [[UInt8]: Int32]
    /// Each token's score: the higher, the earlier it merges.
    private let scores: [Float]
    /// The `<0xNN>` token of each byte value, or the unknown token, or -1.
    private let byteTokenIds: [Int32]
    /// Whether a space is put before text at the start and after each added token.
    let addsSpacePrefix: Bool

    /// The byte values that have neither a byte token nor an unknown token to stand for them.
    var unencodableBytes: Set<UInt8> { Set((0...255).filter { byteTokenIds[$0] < 0 }.map(UInt8.init)) }

    /// A vocabulary of `tokens` with their `scores`; `byteTokens[b]` is the id of `<0xNN>` for
    /// byte `b` where the vocabulary has one.
    init(tokens: [String], scores: [Float], byteTokens: [Int: Int], unknownId: Int?, addsSpacePrefix: Bool) {
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where ids[Array(token.utf8)] == nil { ids[Array(token.utf8)] = Int32(id) }
        self.ids = ids
        self.scores = scores
        byteTokenIds = (0...255).map { Int32(byteTokens[$0] ?? unknownId ?? -1) }
        self.addsSpacePrefix = addsSpacePrefix
    }

    /// The id of the token spelled `token` (the first, where two share a spelling).
    func id(of token: String) -> Int? { ids[Array(token.utf8)].map(Int.init) }

    /// The spelling of `token` as text: `▁` read as a space, a `<0xNN>` byte token as its byte.
    static func bytes(ofToken token: String, isByte: Bool) -> [UInt8] {
        if isByte, let byte = byteValue(token) { return [byte] }
        return Array(token.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
    }

    /// NN of a `<0xNN>` token.
    static func byteValue(_ token: String) -> UInt8? {
        guard token.utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        return UInt8(token.dropFirst(3).prefix(2), radix: 16)
    }

    /// Appends the ids of `text` (a stretch between added tokens), with a leading space when `prefixSpace`.
    func encode(_ text: UnsafeBufferPointer<UInt8>, prefixSpace: Bool, into output: inout [Int]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count + 3)
        let marker: [UInt8] = [0xE2, 0x96, 0x81]
        if prefixSpace { bytes += marker }
        for byte in text {
            if byte == UInt8(ascii: " ") { bytes += marker } else { bytes.append(byte) }
        }
        guard !bytes.isEmpty else { return }

        // Symbols: byte ranges linked in order; a merged-away symbol has length 0.
        var start: [Int] = [], length: [Int] = [], previous: [Int] = [], next: [Int] = []
        var offset = 0
        while offset < bytes.count {
            let count = min(Self.utf8Length(bytes[offset]), bytes.count - offset)
            previous.append(start.count - 1)
            start.append(offset)
            length.append(count)
            offset += count
            next.append(offset == bytes.count ? -1 : start.count)
        }

        var queue = BigramQueue()
        func tryBigram(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let size = length[left] + length[right]
            guard let id = ids[Array(bytes[start[left]..<(start[left] + size)])] else { return }
            queue.push(Bigram(score: scores[Int(id)], left: left, right: right, size: size))
        }
        for index in 1..<start.count { tryBigram(index - 1, index) }
        while let bigram = queue.pop() {
            let left = bigram.left, right = bigram.right
            guard length[left] > 0, length[right] > 0, length[left] + length[right] == bigram.size else { continue }
            length[left] += length[right]
            length[right] = 0
            next[left] = next[right]
            if next[right] >= 0 { previous[next[right]] = left }
            tryBigram(previous[left], left)
            tryBigram(left, next[left])
        }

        var index = 0
        while index >= 0 {
            let piece = bytes[start[index]..<(start[index] + length[index])]
            if let id = ids[Array(piece)] {
                output.append(Int(id))
            } else {
                for byte in piece where byteTokenIds[Int(byte)] >= 0 { output.append(Int(byteTokenIds[Int(byte)])) }
            }
            index = next[index]
        }
    }

    /// The length of the UTF-8 sequence a byte starts, as llama.cpp counts it (1 for a stray continuation byte).
    private static func utf8Length(_ byte: UInt8) -> Int {
        switch byte >> 4 {
        case 0xC, 0xD: 2
        case 0xE: 3
        case 0xF: 4
        default: 1
        }
    }

    /// A candidate merge of two adjacent symbols.
    private struct Bigram {
        let score: Float
        let left: Int
        let right: Int
        let size: Int

        /// Whether this merges before `other`: a higher score, then the leftmost.
        func precedes(_ other: Bigram) -> Bool { score > other.score || (score == other.score && left < other.left) }
    }

    /// A binary heap of bigrams, the first to merge on top.
    private struct BigramQueue {
        private var items: [Bigram] = []

        mutating func push(_ bigram: Bigram) {
            items.append(bigram)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard items[child].precedes(items[parent]) else { break }
                items.swapAt(child, parent)
                child = parent
            }
        }

        mutating func pop() -> Bigram? {
            guard let top = items.first else { return nil }
            let last = items.removeLast()
            if !items.isEmpty {
                items[0] = last
                var parent = 0
                while true {
                    let left = 2 * parent + 1, right = left + 1
                    var best = parent
                    if left < items.count, items[left].precedes(items[best]) { best = left }
                    if right < items.count, items[right].precedes(items[best]) { best = right }
                    guard best != parent else { break }
                    items.swapAt(parent, best)
                    parent = best
                }
            }
            return top
        }
    }
}
