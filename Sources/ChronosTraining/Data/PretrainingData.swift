import ChronosFormats
import ChronosTensor
import Foundation

/// Why pretraining data could not be read or batched.
public enum PretrainingDataError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened, read or written.
    case inaccessibleFile(file: String, reason: String)
    /// A JSON Lines file of documents could not be read, or a line of it is not a `{"text": "…"}` object.
    case jsonLines(JSONLinesError)
    /// The tokenizer has no token with the end-of-text spelling.
    case unknownEndOfTextToken(String)
    /// The corpus does not fill one batch of sequences.
    case tooFewSequences(sequences: Int, batchSize: Int)

    /// A one-line explanation that names the file and line at fault.
    public var description: String {
        switch self {
        case .inaccessibleFile(let file, let reason): "\(file): cannot access file: \(reason)"
        case .jsonLines(let error): error.description
        case .unknownEndOfTextToken(let token): "the tokenizer has no end-of-text token \(token.debugDescription)"
        case .tooFewSequences(let sequences, let batchSize):
            "the corpus packs into \(sequences) sequences, fewer than one batch of \(batchSize)"
        }
    }
}

/// Documents as one stream of token ids, each document followed by the end-of-text id, in the
/// order they were read.
public struct TokenizedCorpus: Equatable, Sendable {
    /// The ids of every document and its end-of-text token, concatenated.
    public var tokens: [Int32] = []
    /// How many documents the stream holds.
    public var documentCount = 0
    /// Malformed lines passed over while reading (with `skipBadLines`).
    public var skippedLineCount = 0
    /// The first few of those lines, as the errors they would have raised.
    public var skippedLines: [JSONLinesError] = []

    /// An empty corpus.
    public init() {}

    /// Appends a document's ids and the end-of-text id.
    public mutating func append<Ids: Collection<Int>>(document ids: Ids, endOfText: Int) {
        tokens.reserveCapacity(tokens.count + ids.count + 1)
        for id in ids { tokens.append(Int32(id)) }
        tokens.append(Int32(endOfText))
        documentCount += 1
    }

    /// The token put between documents where the tokenizer has it, as Chronos's tokenizers do.
    public static let endOfTextToken = "<|endoftext|>"

    /// Reads the JSON Lines `files` in order and tokenises each document, each followed by
    /// `endOfTextToken`, or by `endOfText` (a model's end-of-sequence id) where the tokenizer
    /// has no such token. Documents with empty text are left out. With `matchSpecialTokens` false (the default) a special token's spelling inside a
    /// document is ordinary text, so raw text cannot forge control tokens.
    public init(
        jsonl files: [URL], tokenizer: Tokenizer, endOfText: Int? = nil, matchSpecialTokens: Bool = false,
        skipBadLines: Bool = false
    ) throws(PretrainingDataError) {
        guard let endOfText = tokenizer.id(forToken: Self.endOfTextToken) ?? endOfText else {
            throw .unknownEndOfTextToken(Self.endOfTextToken)
        }
        for file in files {
            do throws(JSONLinesError) {
                let reader = try JSONLTextReader(url: file, skipBadLines: skipBadLines)
                while let text = try reader.next() {
                    guard !text.isEmpty else { continue }
                    append(document: tokenizer.encode(text, matchSpecialTokens: matchSpecialTokens), endOfText: endOfText)
                }
                skippedLineCount += reader.skippedLineCount
                skippedLines += reader.skippedLines.prefix(JSONLTextReader.reportedSkipLimit - skippedLines.count)
            } catch {
                throw .jsonLines(error)
            }
        }
    }
}

/// A token stream cut into training sequences of `sequenceLength + 1` ids: the inputs are the
/// first `sequenceLength`, the targets (each input's next token) the last `sequenceLength`.
///
/// Sequence `i` covers ids `i·L ..< i·L + L + 1` of the stream, so consecutive windows share one
/// id and every id after the first is a target exactly once; ids after the last whole window
/// are not used. Documents run across window boundaries, separated by end-of-text ids.
public struct PackedSequences: Sendable {
    /// The token stream.
    public let tokens: [Int32]
    /// L: the input (and target) length of each sequence.
    public let sequenceLength: Int

    /// Windows over `tokens` of `sequenceLength + 1` ids.
    public init(tokens: [Int32], sequenceLength: Int) {
        precondition(sequenceLength > 0, "sequence length must be positive")
        self.tokens = tokens
        self.sequenceLength = sequenceLength
    }

    /// The number of whole sequences: ⌊(n − 1) / L⌋ for a stream of n ids.
    public var count: Int { max(tokens.count - 1, 0) / sequenceLength }

    /// The `sequenceLength + 1` ids of sequence `index`.
    public func window(_ index: Int) -> ArraySlice<Int32> {
        precondition((0..<count).contains(index), "sequence \(index) is out of range 0..<\(count)")
        let start = index * sequenceLength
        return tokens[start..<start + sequenceLength + 1]
    }

    /// The inputs of sequence `index`: the window less its last id.
    public func inputs(_ index: Int) -> [Int] { window(index).dropLast().map(Int.init) }

    /// The targets of sequence `index`: the window less its first id.
    public func targets(_ index: Int) -> [Int] { window(index).dropFirst().map(Int.init) }
}

/// A position in the batch stream, saved with a checkpoint so that a resumed run sees exactly
/// the batches it would have seen: the epoch and the number of sequences of that epoch's
/// shuffled order already drawn.
public struct DataCursor: Codable, Equatable, Hashable, Sendable {
    /// The epoch, from 0; each has its own shuffled order.
    public var epoch: Int
    /// The position in the epoch's order of the next sequence to draw.
    public var index: Int

    /// A cursor at `index` of `epoch`; the default is the very start.
    public init(epoch: Int = 0, index: Int = 0) {
        self.epoch = epoch
        self.index = index
    }
}

/// One training batch: `inputs[b]` are the ids fed to the model and `targets[b][t]` is the
/// id that should follow `inputs[b][0...t]`.
public struct PretrainingBatch: Equatable, Sendable {
    /// Batch size × L input ids.
    public var inputs: [[Int]]
    /// Batch size × L target ids: the inputs shifted left by one.
    public var targets: [[Int]]
    /// The sequences drawn, by index into the packed sequences.
    public var sequences: [Int]
    /// Where this batch was drawn from; restoring it replays this batch next.
    public var cursor: DataCursor
}

/// An endless stream of batches over packed sequences: each epoch visits every sequence once
/// in an order shuffled by `seed` and the epoch number (SplitMix64 and Fisher–Yates, so the
/// order is the same on every platform and toolchain); sequences left over at the end of an
/// epoch that do not fill a batch are not used in that epoch.
public struct PretrainingBatches: IteratorProtocol, Sendable {
    /// The sequences drawn from.
    public let sequences: PackedSequences
    /// Sequences per batch.
    public let batchSize: Int
    /// The seed of the per-epoch shuffles.
    public let seed: UInt64
    /// Where the next batch is drawn from; set it to a saved cursor to resume.
    public var cursor: DataCursor

    private var orderEpoch = -1
    private var order: [Int] = []

    /// A stream starting at `cursor`; throws if the sequences do not fill one batch.
    public init(
        sequences: PackedSequences, batchSize: Int, seed: UInt64, cursor: DataCursor = DataCursor()
    ) throws(PretrainingDataError) {
        precondition(batchSize > 0, "batch size must be positive")
        guard sequences.count >= batchSize else {
            throw .tooFewSequences(sequences: sequences.count, batchSize: batchSize)
        }
        self.sequences = sequences
        self.batchSize = batchSize
        self.seed = seed
        self.cursor = cursor
    }

    /// Whole batches in one epoch.
    public var batchesPerEpoch: Int { sequences.count / batchSize }

    /// The order in which epoch `epoch` visits `count` sequences under `seed`.
    public static func order(epoch: Int, count: Int, seed: UInt64) -> [Int] {
        // The epoch's seed is one SplitMix64 output, so neighbouring epochs get unrelated streams.
        var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0xD1B5_4A32_D192_ED03))
        var generator = SplitMix64(seed: mixer.next())
        var order = Array(0..<count)
        var i = count - 1
        while i > 0 {
            // A uniform draw from 0...i as the high word of a 64×64-bit product.
            let j = Int(generator.next().multipliedFullWidth(by: UInt64(i + 1)).high)
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }

    /// The next batch; the stream never ends.
    public mutating func next() -> PretrainingBatch? {
        precondition(cursor.epoch >= 0 && cursor.index >= 0, "cursor \(cursor) is negative")
        if cursor.index + batchSize > sequences.count {
            cursor = DataCursor(epoch: cursor.epoch + 1, index: 0)
        }
        if orderEpoch != cursor.epoch {
            order = Self.order(epoch: cursor.epoch, count: sequences.count, seed: seed)
            orderEpoch = cursor.epoch
        }
        let drawn = Array(order[cursor.index..<cursor.index + batchSize])
        let batch = PretrainingBatch(
            inputs: drawn.map(sequences.inputs), targets: drawn.map(sequences.targets), sequences: drawn, cursor: cursor)
        cursor.index += batchSize
        return batch
    }
}
