import ChronosModel
import ChronosStorage

/// Every storage metric of one offloaded run (one generation, or several summed): raw sums
/// that add up across prompts, and the figures derived from them.
public struct OffloadRunMetrics: Sendable, Codable {
    /// The run's label (the baseline's name in a benchmark).
    public var name: String
    /// Where experts were kept.
    public var mode: ExpertResidencyMode
    /// The miss policy (nil where it does not apply).
    public var policy: MissPolicy?
    /// The expert budget in bytes.
    public var budgetBytes: Int
    /// Bytes of all routed experts.
    public var totalExpertBytes: Int
    /// Generations summed.
    public var prompts = 0
    /// Prompt tokens, summed.
    public var promptTokens = 0
    /// Tokens generated, summed.
    public var generatedTokens = 0
    /// Decode forward passes (one per generated token after the first), summed.
    public var decodeSteps = 0
    /// Time to first token, summed over generations (seconds).
    public var prefillSeconds = 0.0
    /// Time from the first token to the end, summed (seconds).
    public var decodeSeconds = 0.0
    /// Storage counters during prefill.
    public var prefill = StorageMetrics()
    /// Storage counters from the first token on (prefetches included).
    public var decode = StorageMetrics()
    /// Routed slots that fell back during decode (a missing expert's weight moved to the shared
    /// expert, or renormalised away).
    public var fallbackSlots = 0
    /// Routed slots that fell back during prefill.
    public var prefillFallbackSlots = 0
    /// Prediction quality with its controls.
    public var predictions = PredictionReport()
    /// The first faults detected, one line each.
    public var faultLog: [String] = []

    /// Empty metrics for a run of `mode`.
    public init(name: String, mode: ExpertResidencyMode, policy: MissPolicy?, budgetBytes: Int, totalExpertBytes: Int) {
        self.name = name
        self.mode = mode
        self.policy = policy
        self.budgetBytes = budgetBytes
        self.totalExpertBytes = totalExpertBytes
    }

    /// Decode tokens per second.
    public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeSteps) / decodeSeconds : 0 }
    /// Mean time to first token (ms).
    public var timeToFirstTokenMs: Double { prompts > 0 ? prefillSeconds / Double(prompts) * 1000 : 0 }
    /// Decode stall per decode step (ms).
    public var stallMsPerToken: Double { decodeSteps > 0 ? Double(decode.stallNanoseconds) / 1e6 / Double(decodeSteps) : 0 }
    /// Decode needs already resident when announced.
    public var hitRate: Double { decode.hitRate }
    /// Bytes read from disk per decode step.
    public var bytesReadPerToken: Double { decodeSteps > 0 ? Double(decode.bytesRead) / Double(decodeSteps) : 0 }
    /// Expert reads from the cache per decode step.
    public var readsPerToken: Double { decodeSteps > 0 ? Double(decode.reads) / Double(decodeSteps) : 0 }
    /// Bytes of one decode read on average (0 without reads).
    public var bytesPerRead: Double { decode.reads > 0 ? Double(decode.bytesRead) / Double(decode.reads) : 0 }
    /// Bytes of needs missed per decode step.
    public var missedBytesPerToken: Double { decodeSteps > 0 ? Double(decode.missedBytes) / Double(decodeSteps) : 0 }
    /// Most expert bytes in memory at once.
    public var peakExpertBytes: Int { max(prefill.peakResidentBytes, decode.peakResidentBytes) }
    /// Lookahead recall for token t+1 (nil without a lookahead).
    public var recallT1: Double? { predictions.lookahead.first?.recall }
    /// Fallbacks during the whole run (slots).
    public var fallbacks: Int { fallbackSlots + prefillFallbackSlots }
    /// Faults detected during the whole run.
    public var faults: Int { prefill.faults + decode.faults }

    /// `other`'s sums added to these.
    public mutating func add(_ other: OffloadRunMetrics) {
        prompts += other.prompts
        promptTokens += other.promptTokens
        generatedTokens += other.generatedTokens
        decodeSteps += other.decodeSteps
        prefillSeconds += other.prefillSeconds
        decodeSeconds += other.decodeSeconds
        prefill = prefill.adding(other.prefill)
        decode = decode.adding(other.decode)
        fallbackSlots += other.fallbackSlots
        prefillFallbackSlots += other.prefillFallbackSlots
        predictions = predictions.adding(other.predictions)
        for line in other.faultLog where faultLog.count < 32 && !faultLog.contains(line) { faultLog.append(line) }
    }

    /// One line for the end of `chronos generate`: tokens/s, hit rate, stall, bytes read, prediction recall.
    public var summaryLine: String {
        var line = String(
            format: "experts %@ (%@, budget %.1f%% = %@): %.2f tokens/s, hit rate %.1f%%, stall %.2f ms/token, read %@/token",
            mode.rawValue, policy?.rawValue ?? "-", Double(budgetBytes) / Double(max(1, totalExpertBytes)) * 100,
            Self.bytes(Double(budgetBytes)), tokensPerSecond, hitRate * 100, stallMsPerToken, Self.bytes(bytesReadPerToken))
        line += ", peak \(Self.bytes(Double(peakExpertBytes)))"
        if fallbacks > 0 { line += ", \(fallbacks) fallbacks" }
        if faults > 0 { line += ", \(faults) faults" }
        if let recall = recallT1 { line += String(format: ", recall@t+1 %.1f%%", recall * 100) }
        if let recall = predictions.repetition.recall, recall > 0 { line += String(format: ", repeated text named %.1f%%", recall * 100) }
        return line
    }

    /// `12.3 MB`.
    public static func bytes(_ n: Double) -> String {
        switch n {
        case 1e9...: String(format: "%.2f GB", n / 1e9)
        case 1e6...: String(format: "%.1f MB", n / 1e6)
        case 1e3...: String(format: "%.1f KB", n / 1e3)
        default: String(format: "%.0f B", n)
        }
    }
}

/// The state of an offloaded generation after one forward pass, for a live monitor.
public struct OffloadSnapshot: Sendable {
    /// Whether the pass was the prompt (`true`) or one decoded token.
    public let isPrefill: Bool
    /// Position of the last token of the pass.
    public let position: Int
    /// Decode passes so far in this generation.
    public let decodeSteps: Int
    /// Seconds since the generation started.
    public let elapsedSeconds: Double
    /// Storage counters since the generation started (nil for all-resident runs).
    public let storage: StorageMetrics?
    /// Bytes in the hot set and the staging tier now.
    public let residentBytes: [ResidencyTier: Int]
    /// Routed slots that fell back so far in this generation.
    public let fallbackSlots: Int
    /// The pass's distinct routed experts, in the order its layers needed them.
    public let routed: [ExpertKey]
}
