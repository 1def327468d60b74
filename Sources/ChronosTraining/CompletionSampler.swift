import ChronosModel
import ChronosTensor
import Foundation

/// A completion generated for a prompt.
public struct SampledCompletion: Sendable, Equatable {
    /// The generated ids, ending with the stop token when one was drawn.
    public var ids: [Int]
    /// Whether generation ended on a stop token (rather than at the length limit).
    public var stopped: Bool

    /// The ids without a final stop token: the answer's own tokens.
    public var answerIds: [Int] { stopped ? Array(ids.dropLast()) : ids }
}

/// Generates completions inside training (GRPO rollouts, evaluation): the prompt through the
/// KV cache once, then one token at a time, with no gradient recorded. Greedy at temperature
/// 0; otherwise a draw from softmax(logits / T) restricted to the `topK` most likely tokens
/// (0 = all), from the caller's generator so a resumed run draws the same tokens.
public struct CompletionSampler: Sendable {
    /// Softmax temperature; 0 is greedy.
    public var temperature: Float
    /// Draw among the `topK` most likely tokens only (0 = no limit).
    public var topK: Int
    /// At most this many new tokens.
    public var maxTokens: Int
    /// Ids that end a completion (kept as its last id).
    public var stopTokens: Set<Int>

    /// A sampler with the given settings.
    public init(temperature: Float, topK: Int = 0, maxTokens: Int, stopTokens: Set<Int>) {
        self.temperature = temperature
        self.topK = topK
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
    }

    /// A completion of `prompt` by `model`.
    public func complete(_ model: any LanguageModel, prompt: [Int], random: inout SplitMix64) throws -> SampledCompletion {
        try Autograd.recording(false) {
            let cache = model.makeCache()
            var logits = try model.forward(prompt, cache: cache)
            var ids: [Int] = []
            while ids.count < maxTokens {
                let next = pick(logits.row(logits.shape[0] - 1), random: &random)
                ids.append(next)
                if stopTokens.contains(next) { return SampledCompletion(ids: ids, stopped: true) }
                if ids.count == maxTokens { break }
                logits = try model.forward([next], cache: cache)
            }
            return SampledCompletion(ids: ids, stopped: false)
        }
    }

    /// The next token for one row of logits.
    func pick(_ logits: [Float], random: inout SplitMix64) -> Int {
        if temperature <= 0 {
            return logits.withUnsafeBufferPointer { Selection.argmax($0.baseAddress!, count: $0.count) }
        }
        let candidates: [Int] = topK > 0 && topK < logits.count
            ? logits.withUnsafeBufferPointer { Selection.topK($0.baseAddress!, count: $0.count, k: topK).map(\.index) }
            : Array(logits.indices)
        let scaled = candidates.map { logits[$0] / temperature }
        var probabilities = [Float](repeating: 0, count: scaled.count)
        RowKernels.softmax(scaled, &probabilities, rows: 1, cols: scaled.count)
        var threshold = Float(random.nextUnit())
        for (i, p) in probabilities.enumerated() {
            threshold -= p
            if threshold < 0 { return candidates[i] }
        }
        return candidates[probabilities.lastIndex { $0 > 0 } ?? candidates.count - 1]
    }
}
