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
        // Candidates sorted by logit, best first; each filter only ever shortens the list.
        var candidates = logits.indices.filter { !logits[$0].isNaN }.sorted {
            logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1)
        }
        if parameters.topK > 0 && candidates.count > parameters.topK { candidates.removeLast(candidates.count - parameters.topK) }
        let scaled = candidates.map { logits[$0] / parameters.temperature }
        var probabilities = [Float](repeating: 0, count: scaled.count)
        RowKernels.softmax(scaled, &probabilities, rows: 1, cols: scaled.count)
        var keep = probabilities.count
        if parameters.topP < 1 {
            var cumulative: Float = 0
            for (i, p) in probabilities.enumerated() {
                cumulative += p
                if cumulative >= parameters.topP {
                    keep = i + 1
                    break
                }
            }
        }
        if parameters.minP > 0, let best = probabilities.first {
            keep = min(keep, max(1, probabilities.prefix(keep).filter { $0 >= parameters.minP * best }.count))
        }
        let total = probabilities.prefix(keep).reduce(0, +)
        var threshold = Float(random.nextUnit()) * total
        for i in 0..<keep {
            threshold -= probabilities[i]
            if threshold <= 0 { return candidates[i] }
        }
        return candidates[keep - 1]
    }
}
