import Synchronization

/// Byte-pair encoding of one pre-tokenised word: start from one token per byte, then apply the
/// lowest-ranked merge among adjacent pairs (leftmost on ties) until none applies.
///
/// Results for words of up to `WordKey.capacity` bytes are cached, shared by all callers.
final class BytePairEncoding: Sendable {
    /// The token id of each byte value's alphabet character, or -1 where the vocabulary lacks it
    /// (such a byte is dropped, as in the Hugging Face BPE without an unknown token).
    private let byteTokenIds: [Int32]
    /// The byte values that have no token (and no unknown token stands in for them).
    let unencodableBytes: Set<UInt8>
    /// Merge of the pair `left << 32 | right` to `rank << 32 | merged id`.
    private let merges: [UInt64: UInt64]
    /// The vocabulary, consulted for whole words when `ignoreMerges` is set.
    private let vocabulary: [String: Int]
    private let ignoreMerges: Bool
    private let cache = Mutex<[WordKey: [Int32]]>([:])
    private static let cacheCapacity = 1 << 17

    init(model: TokenizerFile.Model, file: String) throws(TokenizerError) {
        vocabulary = model.vocab
        ignoreMerges = model.ignoreMerges
        var seen = Set<Int>(minimumCapacity: model.vocab.count)
        for (token, id) in model.vocab {
            guard (0...TokenizerFile.maximumTokenId).contains(id) else {
                throw .malformedFile(file: file, reason: "vocab id \(id) of \(token.debugDescription) is out of range")
            }
            guard seen.insert(id).inserted else {
                throw .malformedFile(file: file, reason: "vocab id \(id) is given to more than one token")
            }
        }
        let unknownId = model.unkToken.flatMap { model.vocab[$0] } ?? -1
        let byteTokenIds = ByteLevel.characters.map { character in
            Int32(model.vocab[String(Character(character))] ?? unknownId)
        }
        self.byteTokenIds = byteTokenIds
        unencodableBytes = Set((0...255).filter { byteTokenIds[$0] < 0 }.map(UInt8.init))
        var merges = [UInt64: UInt64](minimumCapacity: model.merges.count)
        for (rank, merge) in model.merges.enumerated() {
            guard let left = model.vocab[merge.left], let right = model.vocab[merge.right],
                let merged = model.vocab[merge.left + merge.right]
            else {
                throw .malformedFile(
                    file: file, reason: "merge \(rank) (\(merge.left) \(merge.right)) uses a token not in the vocab")
            }
            // A pair listed twice takes its later rank, as in the Hugging Face loader.
            merges[UInt64(left) << 32 | UInt64(right)] = UInt64(rank) << 32 | UInt64(merged)
        }
        self.merges = merges
    }

    /// Appends the token ids of `word` (raw bytes of one pre-tokenised piece) to `ids`.
    func encode(word: UnsafeBufferPointer<UInt8>, into ids: inout [Int], scratch: inout MergeScratch) {
        if word.count == 1 {
            let id = byteTokenIds[Int(word[0])]
            if id >= 0 { ids.append(Int(id)) }
            return
        }
        guard word.count <= WordKey.capacity else {
            merge(word, scratch: &scratch)
            for id in scratch.output { ids.append(Int(id)) }
            return
        }
        let key = WordKey(word)
        if let cached = cache.withLock({ $0[key] }) {
            for id in cached { ids.append(Int(id)) }
            return
        }
        merge(word, scratch: &scratch)
        for id in scratch.output { ids.append(Int(id)) }
        let result = scratch.output
        cache.withLock { cache in
            if cache.count < Self.cacheCapacity { cache[key] = result }
        }
    }

    /// Leaves the ids of `word` in `scratch.output`.
    private func merge(_ word: UnsafeBufferPointer<UInt8>, scratch: inout MergeScratch) {
        scratch.output.removeAll(keepingCapacity: true)
        if ignoreMerges, let id = vocabulary[ByteLevel.encode(word)] {
            scratch.output.append(Int32(id))
            return
        }
        scratch.reset()
        for byte in word where byteTokenIds[Int(byte)] >= 0 { scratch.ids.append(byteTokenIds[Int(byte)]) }
        let count = scratch.ids.count
        for index in 0..<count {
            scratch.previous.append(Int32(index - 1))
            scratch.next.append(Int32(index + 1))
        }
        for index in 0..<max(count - 1, 0) { pushPair(at: index, scratch: &scratch) }
        while let top = scratch.popCandidate() {
            let left = Int(top & 0xFFFF_FFFF)
            let leftId = scratch.ids[left]
            let right = Int(scratch.next[left])
            guard leftId >= 0, right < count,
                let merge = merges[UInt64(UInt32(leftId)) << 32 | UInt64(UInt32(scratch.ids[right]))],
                merge >> 32 == top >> 32
            else { continue }
            scratch.ids[left] = Int32(truncatingIfNeeded: merge)
            scratch.ids[right] = -1
            let after = Int(scratch.next[right])
            scratch.next[left] = Int32(after)
            if after < count { scratch.previous[after] = Int32(left) }
            let before = Int(scratch.previous[left])
            if before >= 0 { pushPair(at: before, scratch: &scratch) }
            if after < count { pushPair(at: left, scratch: &scratch) }
        }
        var index = 0
        while index < count {
            scratch.output.append(scratch.ids[index])
            index = Int(scratch.next[index])
        }
    }

    /// Queues the pair that starts at symbol `left`, if it has a merge.
    @inline(__always)
    private func pushPair(at left: Int, scratch: inout MergeScratch) {
        let right = Int(scratch.next[left])
        let pair = UInt64(UInt32(scratch.ids[left])) << 32 | UInt64(UInt32(scratch.ids[right]))
        if let merge = merges[pair] { scratch.pushCandidate(merge & 0xFFFF_FFFF_0000_0000 | UInt64(left)) }
    }
}

/// Buffers reused from word to word while encoding: the symbols of the word being merged as a
/// linked list, and a min-heap of candidate merges keyed `rank << 32 | left symbol index`.
struct MergeScratch {
    fileprivate var ids: [Int32] = []
    fileprivate var previous: [Int32] = []
    fileprivate var next: [Int32] = []
    fileprivate var heap: [UInt64] = []
    fileprivate var output: [Int32] = []

    fileprivate mutating func reset() {
        ids.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
    }

    fileprivate mutating func pushCandidate(_ key: UInt64) {
        heap.append(key)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    fileprivate mutating func popCandidate() -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            let smaller = left + 1 < heap.count && heap[left + 1] < heap[left] ? left + 1 : left
            guard heap[smaller] < heap[parent] else { break }
            heap.swapAt(smaller, parent)
            parent = smaller
        }
        return top
    }
}

/// A short word's bytes packed into three machine words (23 bytes and the length), so that the
/// cache is probed without allocating.
struct WordKey: Hashable, Sendable {
    /// The longest word, in bytes, that a key holds.
    static let capacity = 23
    private var words: (UInt64, UInt64, UInt64) = (0, 0, 0)

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        withUnsafeMutableBytes(of: &words) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(bytes))
            raw[Self.capacity] = UInt8(bytes.count)
        }
    }

    static func == (a: WordKey, b: WordKey) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
    }
}
