import Foundation

/// Learns a GPT-2-style byte-level BPE vocabulary from text, for models trained from scratch.
///
/// Text is split like `Tokenizer.encode` splits it (special tokens cut out, then the GPT-2
/// pattern of the `ByteLevel` pre-tokenizer) and the words are counted. Training starts from the
/// 256 single-byte tokens (id = byte value) and repeatedly merges the adjacent pair that occurs
/// most often across all words, weighted by word frequency, until the vocabulary, special tokens
/// included, has `vocabularySize` entries. Ties go to the pair whose token bytes come first
/// lexicographically (left token, then right), so the result depends only on the text. Special
/// tokens take the ids after the merged tokens.
///
/// Pair counts are updated incrementally: an index from each pair to the words that contain it
/// limits a merge's work to those words, and a max-queue with lazy invalidation finds the next
/// pair, so a merge costs about the number of words it touches rather than a recount.
public struct TokenizerTrainer: Sendable {
    /// The special tokens of Chronos-native chat models: end of text (also the document
    /// separator), the two ChatML turn markers, and padding.
    public static let chatSpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

    /// The size of the trained vocabulary, special tokens included; at least 256 plus their count.
    public let vocabularySize: Int
    /// The special tokens, given ids after the merged tokens in this order.
    public let specialTokens: [String]
    /// Pairs seen fewer times than this are never merged, so training may stop short of
    /// `vocabularySize` on a small text.
    public let minimumPairFrequency: Int

    /// Occurrences of each distinct word (raw bytes of one pre-tokenised piece).
    private var wordCounts: [[UInt8]: Int] = [:]
    private let specialTokenMatcher: AddedTokenMatcher
    private static let gpt2PreTokenizer = try! PreTokenizer(steps: [.byteLevel(addPrefixSpace: false, useRegex: true)])

    /// A trainer with no text yet.
    public init(vocabularySize: Int, specialTokens: [String] = chatSpecialTokens, minimumPairFrequency: Int = 2) {
        precondition(
            vocabularySize >= 256 + specialTokens.count,
            "a byte-level vocabulary needs at least 256 + \(specialTokens.count) tokens, not \(vocabularySize)")
        precondition(
            Set(specialTokens).count == specialTokens.count && !specialTokens.contains(""),
            "special tokens must be distinct and non-empty")
        self.vocabularySize = vocabularySize
        self.specialTokens = specialTokens
        self.minimumPairFrequency = max(minimumPairFrequency, 1)
        specialTokenMatcher = AddedTokenMatcher(tokens: Self.addedTokens(specialTokens, firstId: 0))
    }

    /// The number of distinct words counted so far.
    public var distinctWordCount: Int { wordCounts.count }

    /// Counts the words of every document of the JSONL file `url`; returns how many documents
    /// were read and how many malformed lines were skipped (none unless `skipBadLines`).
    @discardableResult
    public mutating func add(jsonl url: URL, skipBadLines: Bool = false) throws -> (documents: Int, skippedLines: Int) {
        let reader = try JSONLTextReader(url: url, skipBadLines: skipBadLines)
        var documents = 0
        while let text = try reader.next() {
            add(text)
            documents += 1
        }
        return (documents, reader.skippedLineCount)
    }

    /// Counts the words of `text`; spellings of the special tokens in it are left out.
    public mutating func add(_ text: String) {
        var text = text
        text.withUTF8 { raw in
            specialTokenMatcher.split(raw, matchSpecialTokens: true) { piece in
                guard case .text(let range) = piece else { return }
                let segment = UnsafeBufferPointer(rebasing: raw[range])
                Self.gpt2PreTokenizer.forEachWord(in: segment) { word in
                    wordCounts[Array(segment[word]), default: 0] += 1
                }
            }
        }
    }

    /// Counts the words of every text in `texts`.
    public mutating func add<Texts: Sequence<String>>(contentsOf texts: Texts) {
        for text in texts { add(text) }
    }

    /// Learns the merges from the words counted so far and returns the tokenizer. `progress` is
    /// called after each merge with the number of tokens learned and the number wanted
    /// (`vocabularySize` less the bytes and special tokens).
    public func train(progress: (_ learned: Int, _ wanted: Int) -> Void = { _, _ in }) throws(TokenizerError) -> Tokenizer {
        var run = MergeRun(wordCounts: wordCounts)
        let mergedTokenCount = vocabularySize - specialTokens.count
        let wanted = mergedTokenCount - 256
        while run.tokenBytes.count < mergedTokenCount, run.mergeNextPair(minimumFrequency: minimumPairFrequency) {
            progress(run.tokenBytes.count - 256, wanted)
        }

        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(run.tokenBytes.count + specialTokens.count)
        let spellings = run.tokenBytes.map { ByteLevel.encode($0) }
        for (id, spelling) in spellings.enumerated() { vocabulary[spelling] = id }
        let merges = run.merges.map { (spellings[Int($0.left)], spellings[Int($0.right)]) }
        let added = Self.addedTokens(specialTokens, firstId: run.tokenBytes.count)
        // As in the Hugging Face trainer, special tokens are vocabulary entries as well as added tokens.
        for token in added where vocabulary[token.content] == nil { vocabulary[token.content] = token.id }
        return try Tokenizer(vocabulary: vocabulary, merges: merges, addedTokens: added)
    }

    private static func addedTokens(_ contents: [String], firstId: Int) -> [AddedToken] {
        contents.enumerated().map { AddedToken(id: firstId + $0.offset, content: $0.element) }
    }
}

/// The state of one training run: the distinct words as token sequences, how often each
/// adjacent pair occurs, which words hold each pair, and a queue of candidate pairs.
private struct MergeRun {
    /// A pair of token ids packed as `left << 32 | right`.
    typealias Pair = UInt64

    /// A pair with its count when it was queued; stale once the count changes.
    struct Candidate {
        var count: Int
        var pair: Pair
    }

    /// The bytes each token stands for, by id; ids 0–255 are the single bytes.
    private(set) var tokenBytes: [[UInt8]]
    /// The merges in the order learned.
    private(set) var merges: [(left: Int32, right: Int32)] = []
    private var idsByBytes: [[UInt8]: Int32] = [:]
    /// Each distinct word as token ids, and how often it occurs.
    private var words: [[Int32]]
    private let frequencies: [Int]
    /// Occurrences of each pair, weighted by word frequency.
    private var pairCounts: [Pair: Int] = [:]
    /// The words that hold each pair: a superset, with repeats, since entries are not removed
    /// when a merge takes a pair out of a word.
    private var pairWords: [Pair: [Int32]] = [:]
    /// A binary max-heap of candidates ordered by `precedes`.
    private var queue: [Candidate] = []
    /// The last merge that updated each word, so that a word listed twice is merged once.
    private var lastMerge: [Int]
    private var merged: [Int32] = []

    init(wordCounts: [[UInt8]: Int]) {
        tokenBytes = (0..<256).map { [UInt8($0)] }
        for (id, bytes) in tokenBytes.enumerated() { idsByBytes[bytes] = Int32(id) }
        // Sorted so that every intermediate structure, not only the result, is reproducible.
        let sorted = wordCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        words = sorted.map { $0.key.map(Int32.init) }
        frequencies = sorted.map(\.value)
        lastMerge = Array(repeating: -1, count: sorted.count)
        for (index, word) in words.enumerated() where word.count > 1 {
            for position in 0..<word.count - 1 {
                let pair = Self.pair(word[position], word[position + 1])
                pairCounts[pair, default: 0] += frequencies[index]
                pairWords[pair, default: []].append(Int32(index))
            }
        }
        queue.reserveCapacity(pairCounts.count)
        for pair in pairCounts.keys.sorted() { push(Candidate(count: pairCounts[pair]!, pair: pair)) }
    }

    static func pair(_ left: Int32, _ right: Int32) -> Pair {
        UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
    }

    /// Merges the most frequent pair into a token; false when no pair occurs `minimumFrequency` times.
    mutating func mergeNextPair(minimumFrequency: Int) -> Bool {
        while let top = pop() {
            let count = pairCounts[top.pair] ?? 0
            guard count > 0 else { continue }
            guard count == top.count else {
                push(Candidate(count: count, pair: top.pair))
                continue
            }
            guard count >= minimumFrequency else { return false }
            apply(top.pair)
            return true
        }
        return false
    }

    /// Replaces every occurrence of `pair` (leftmost first, without overlap) by its merged token
    /// in the words that hold it, updating the pair counts and the index.
    private mutating func apply(_ pair: Pair) {
        let left = Int32(truncatingIfNeeded: pair >> 32)
        let right = Int32(truncatingIfNeeded: pair)
        let bytes = tokenBytes[Int(left)] + tokenBytes[Int(right)]
        // Two merges can spell the same token ("a"+"bc", "ab"+"c"); the second reuses its id.
        let token: Int32
        if let existing = idsByBytes[bytes] {
            token = existing
        } else {
            token = Int32(tokenBytes.count)
            tokenBytes.append(bytes)
            idsByBytes[bytes] = token
        }
        let mergeIndex = merges.count
        merges.append((left, right))

        var changedPairs = Set<Pair>()
        for wordIndex in pairWords.removeValue(forKey: pair) ?? [] {
            let w = Int(wordIndex)
            guard lastMerge[w] != mergeIndex else { continue }
            lastMerge[w] = mergeIndex
            let word = words[w]
            merged.removeAll(keepingCapacity: true)
            var position = 0
            while position < word.count {
                if position + 1 < word.count, word[position] == left, word[position + 1] == right {
                    merged.append(token)
                    position += 2
                } else {
                    merged.append(word[position])
                    position += 1
                }
            }
            guard merged.count < word.count else { continue }
            // Only pairs that contain the new token can gain occurrences; the others only lose.
            let frequency = frequencies[w]
            for position in 0..<word.count - 1 {
                pairCounts[Self.pair(word[position], word[position + 1])]! -= frequency
            }
            for position in 0..<max(merged.count - 1, 0) {
                let newPair = Self.pair(merged[position], merged[position + 1])
                pairCounts[newPair, default: 0] += frequency
                if merged[position] == token || merged[position + 1] == token {
                    pairWords[newPair, default: []].append(wordIndex)
                    changedPairs.insert(newPair)
                }
            }
            words[w] = merged
        }
        pairCounts[pair] = nil
        for changed in changedPairs { push(Candidate(count: pairCounts[changed]!, pair: changed)) }
    }

    /// Whether `a` comes out of the queue before `b`: the higher count, then the pair whose
    /// token bytes come first.
    private func precedes(_ a: Candidate, _ b: Candidate) -> Bool {
        if a.count != b.count { return a.count > b.count }
        let aLeft = tokenBytes[Int(a.pair >> 32)], bLeft = tokenBytes[Int(b.pair >> 32)]
        if aLeft != bLeft { return aLeft.lexicographicallyPrecedes(bLeft) }
        let aRight = tokenBytes[Int(a.pair & 0xFFFF_FFFF)], bRight = tokenBytes[Int(b.pair & 0xFFFF_FFFF)]
        return aRight.lexicographicallyPrecedes(bRight)
    }

    private mutating func push(_ candidate: Candidate) {
        queue.append(candidate)
        var child = queue.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(queue[child], queue[parent]) else { break }
            queue.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func pop() -> Candidate? {
        guard let last = queue.popLast() else { return nil }
        guard !queue.isEmpty else { return last }
        let top = queue[0]
        queue[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < queue.count else { break }
            let first = left + 1 < queue.count && precedes(queue[left + 1], queue[left]) ? left + 1 : left
            guard precedes(queue[first], queue[parent]) else { break }
            queue.swapAt(first, parent)
            parent = first
        }
        return top
    }
}

extension TokenizerConfig {
    /// The ChatML chat template of Chronos-native chat models, as Jinja: each message as
    /// `<|im_start|>role\ncontent<|im_end|>\n`, no default system message, and an open
    /// assistant turn when a generation prompt is asked for.
    public static let chatMLTemplate =
        "{% for message in messages %}"
        + "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    /// The configuration of a tokenizer trained with `TokenizerTrainer.chatSpecialTokens`:
    /// the ChatML template; `<|endoftext|>` begins a sequence, as it ends the document before;
    /// `<|im_end|>` ends an assistant turn and so generation; `<|pad|>` pads.
    public static let chronosChat = TokenizerConfig(
        chatTemplate: chatMLTemplate, bosToken: "<|endoftext|>", eosToken: "<|im_end|>", padToken: "<|pad|>")

    /// The configuration as `tokenizer_config.json` contents that the Hugging Face
    /// `transformers` library reads, with `addedTokens` listed under `added_tokens_decoder`.
    /// No BOS or EOS is added when encoding, as `Tokenizer.encode` adds none.
    public func jsonData(addedTokens: [AddedToken] = []) -> Data {
        let contents = ConfigFile(config: self, addedTokens: addedTokens)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Every value is a string, bool or null, which JSONEncoder always encodes.
        return try! encoder.encode(contents)
    }

    /// Writes the configuration as `tokenizer_config.json` at `url`, atomically.
    public func write(to url: URL, addedTokens: [AddedToken] = []) throws(TokenizerError) {
        do {
            try AtomicFile.write(jsonData(addedTokens: addedTokens), to: url)
        } catch {
            throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
    }

    /// The layout of a written `tokenizer_config.json`.
    private struct ConfigFile: Encodable {
        let config: TokenizerConfig
        let addedTokens: [AddedToken]

        private enum CodingKeys: String, CodingKey {
            case addBosToken = "add_bos_token"
            case addEosToken = "add_eos_token"
            case addedTokensDecoder = "added_tokens_decoder"
            case bosToken = "bos_token"
            case chatTemplate = "chat_template"
            case cleanUpTokenizationSpaces = "clean_up_tokenization_spaces"
            case eosToken = "eos_token"
            case padToken = "pad_token"
            case tokenizerClass = "tokenizer_class"
        }

        /// An `added_tokens_decoder` entry: an `AddedToken` without its id, which is the key.
        private struct DecoderEntry: Encodable {
            let token: AddedToken

            private enum CodingKeys: String, CodingKey {
                case content, special, lstrip, rstrip, normalized
                case singleWord = "single_word"
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(token.content, forKey: .content)
                try container.encode(token.lstrip, forKey: .lstrip)
                try container.encode(token.normalized, forKey: .normalized)
                try container.encode(token.rstrip, forKey: .rstrip)
                try container.encode(token.singleWord, forKey: .singleWord)
                try container.encode(token.special, forKey: .special)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(false, forKey: .addBosToken)
            try container.encode(false, forKey: .addEosToken)
            let decoder = Dictionary(addedTokens.map { (String($0.id), DecoderEntry(token: $0)) }) { first, _ in first }
            try container.encode(decoder, forKey: .addedTokensDecoder)
            try container.encode(config.bosToken, forKey: .bosToken)
            try container.encode(config.chatTemplate, forKey: .chatTemplate)
            try container.encode(false, forKey: .cleanUpTokenizationSpaces)
            try container.encode(config.eosToken, forKey: .eosToken)
            try container.encode(config.padToken, forKey: .padToken)
            try container.encode("PreTrainedTokenizerFast", forKey: .tokenizerClass)
        }
    }
}
