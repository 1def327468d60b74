import ChronosTensor
import Foundation

/// Settings that turn a row of logits into the next token.
public struct SamplingParameters: Sendable, Equatable {
    /// Softmax temperature; 0 means greedy (argmax).
    public var temperature: Float = 0.8
    /// Keep only the `topK` most likely tokens (0 = no limit).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches `topP` (1 = all).
    public var topP: Float = 1
    /// Drop tokens less likely than `minP` × the most likely one (0 = off).
    public var minP: Float = 0
    /// Divide positive (multiply negative) logits of tokens already seen by this (1 = off).
    public var repetitionPenalty: Float = 1
    /// Seed of the random generator, so a run can be reproduced exactly.
    public var seed: UInt64 = 0

    /// Greedy decoding.
    public static let greedy = SamplingParameters(temperature: 0)

    /// Throws the first parameter outside its range, named as in an API request (`top_p`, …).
    public func validate() throws(InvalidSetting) {
        try InvalidSetting.check("temperature", temperature, in: 0...100)
        try InvalidSetting.check("top_k", topK, in: 0...Int.max)
        try InvalidSetting.check("top_p", topP, in: Float.leastNonzeroMagnitude...1)
        try InvalidSetting.check("min_p", minP, in: 0...1)
        try InvalidSetting.check("repetition_penalty", repetitionPenalty, in: 0.01...100)
    }

    /// Parameters with the given values; defaults as documented on each property.
    public init(
        temperature: Float = 0.8, topK: Int = 0, topP: Float = 1, minP: Float = 0,
        repetitionPenalty: Float = 1, seed: UInt64 = 0
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }
}

/// Picks tokens from logits: repetition penalty, then temperature, top-k, top-p and min-p
/// filtering (the order Hugging Face's logits processors apply), then a draw from a seeded
/// generator — so the same seed, prompt and model give the same text.
public struct Sampler: Sendable {
    /// The settings in use.
    public let parameters: SamplingParameters
    private var random: SplitMix64

    /// A sampler whose draws are determined by `parameters.seed`.
    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = SplitMix64(seed: parameters.seed)
    }

    /// The next token for one row of `logits`, given the tokens generated or read so far.
    ///
    /// The filters and the draw walk the candidates from the most likely down, as sorting them
    /// would, but find the few places they stop at by selection instead of sorting the whole
    /// vocabulary: linear time per token.
    public mutating func next(logits: [Float], history: [Int]) -> Int {
        var logits = logits
        if parameters.repetitionPenalty != 1 {
            for id in Set(history) where id >= 0 && id < logits.count {
                logits[id] = logits[id] > 0 ? logits[id] / parameters.repetitionPenalty : logits[id] * parameters.repetitionPenalty
            }
        }
        if parameters.temperature <= 0 {
            return logits.withUnsafeBufferPointer { Selection.argmax($0.baseAddress!, count: $0.count) }
        }
        var candidates = logits.indices.compactMap { logits[$0].isNaN ? nil : Candidate(id: Int32($0), logit: logits[$0], probability: 0) }
        guard !candidates.isEmpty else { return 0 }
        if parameters.topK > 0 && candidates.count > parameters.topK {
            Self.partitionLeading(&candidates[...], count: parameters.topK)
            candidates.removeLast(candidates.count - parameters.topK)
        }
        let scaled = candidates.map { $0.logit / parameters.temperature }
        var probabilities = [Float](repeating: 0, count: scaled.count)
        RowKernels.softmax(scaled, &probabilities, rows: 1, cols: scaled.count)
        for i in candidates.indices { candidates[i].probability = probabilities[i] }

        // The leading `keep` candidates come first from here on, in no particular order.
        var keep = candidates.count
        if parameters.topP < 1 { keep = Self.leadingCount(&candidates[...], reaching: parameters.topP) }
        if parameters.minP > 0 {
            let best = probabilities.max()!
            keep = min(keep, max(1, candidates[..<keep].count(where: { $0.probability >= parameters.minP * best })))
            Self.partitionLeading(&candidates[...], count: keep)
        }
        var kept = candidates[..<keep]
        let total = kept.reduce(0) { $0 + $1.probability }
        let drawn = Self.leadingCount(&kept, reaching: Float(random.nextUnit()) * total)
        return Int(kept[drawn - 1].id)
    }

    /// A token in the running: its id, logit and probability.
    private struct Candidate {
        var id: Int32
        var logit: Float
        var probability: Float

        /// Whether this comes before `other` from the most likely down: higher logit, then lower id.
        func precedes(_ other: Candidate) -> Bool { logit > other.logit || (logit == other.logit && id < other.id) }
    }

    /// Reorders `items` so that its first `count` are the leading ones, in any order.
    private static func partitionLeading(_ items: inout ArraySlice<Candidate>, count: Int) {
        let target = items.startIndex + count
        var low = items.startIndex, high = items.endIndex
        while high - low > 16 {
            let split = partition(&items, low, high)
            if split == target || split + 1 == target { return }
            if split > target { high = split } else { low = split + 1 }
        }
        items[low..<high].sort { $0.precedes($1) }
    }

    /// How many of `items`, from the most likely down, it takes for their probabilities to sum
    /// to `mass` (all of them when rounding leaves the sum short); they come first in `items`
    /// afterwards, the last of them at that position.
    private static func leadingCount(_ items: inout ArraySlice<Candidate>, reaching mass: Float) -> Int {
        var low = items.startIndex, high = items.endIndex, remaining = mass
        while high - low > 16 {
            let split = partition(&items, low, high)
            let leading = items[low..<split].reduce(0) { $0 + $1.probability }
            if split > low && leading >= remaining {
                high = split
            } else if leading + items[split].probability >= remaining {
                return split + 1 - items.startIndex
            } else {
                remaining -= leading + items[split].probability
                low = split + 1
            }
        }
        items[low..<high].sort { $0.precedes($1) }
        for i in low..<high {
            remaining -= items[i].probability
            if remaining <= 0 { return i + 1 - items.startIndex }
        }
        return high - items.startIndex
    }

    /// Partitions `items[low..<high]` around a median-of-three pivot: the ones preceding it,
    /// then it, then the rest; returns its position.
    private static func partition(_ items: inout ArraySlice<Candidate>, _ low: Int, _ high: Int) -> Int {
        let middle = low + (high - low) / 2
        if items[middle].precedes(items[low]) { items.swapAt(middle, low) }
        if items[high - 1].precedes(items[low]) { items.swapAt(high - 1, low) }
        if items[high - 1].precedes(items[middle]) { items.swapAt(high - 1, middle) }
        items.swapAt(middle, high - 1)
        let pivot = items[high - 1]
        var store = low
        for i in low..<(high - 1) where items[i].precedes(pivot) {
            items.swapAt(i, store)
            store += 1
        }
        items.swapAt(store, high - 1)
        return store
    }
}
