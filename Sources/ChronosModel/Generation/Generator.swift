import ChronosFormats
import ChronosTensor
import Foundation

/// What to generate: the prompt, how long, how to sample, and when to stop.
public struct GenerationRequest: Sendable {
    /// Token ids of the prompt (already templated).
    public var promptIds: [Int]
    /// At most this many new tokens.
    public var maxTokens: Int
    /// How each token is picked.
    public var sampling: SamplingParameters
    /// Token ids that end the generation (not emitted); the model's EOS ids are added unless `ignoreEOS`.
    public var stopTokens: Set<Int>
    /// Strings that end the generation when they appear in the text (the text stops before them).
    public var stopStrings: [String]
    /// Keep going past end-of-sequence tokens.
    public var ignoreEOS: Bool
    /// Teacher forcing: emit these ids in order instead of sampling (at most `maxTokens`, no
    /// stop condition), recording the log-probability the model gave each (to score a
    /// continuation under some setting, e.g. a lossy expert policy).
    public var forcedIds: [Int]?
    /// When set, each generated token carries its log-probability and those of this many most
    /// probable tokens at its step (`GeneratedToken.logProbabilities`); nil: none are computed.
    public var topLogProbabilities: Int?
    /// The prompt runs through the model this many tokens a pass, which bounds the memory of
    /// a long prompt's attention and lets a caller stop between passes.
    public var prefillChunk: Int

    /// A request with the given prompt and settings.
    public init(
        promptIds: [Int], maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
        stopTokens: Set<Int> = [], stopStrings: [String] = [], ignoreEOS: Bool = false, forcedIds: [Int]? = nil,
        topLogProbabilities: Int? = nil, prefillChunk: Int = 512
    ) {
        self.promptIds = promptIds
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.stopStrings = stopStrings
        self.ignoreEOS = ignoreEOS
        self.forcedIds = forcedIds
        self.topLogProbabilities = topLogProbabilities
        self.prefillChunk = prefillChunk
    }
}

extension GenerationRequest {
    /// New tokens one request may ask for.
    public static let maxTokensRange = 1...1_000_000
    /// Most probable tokens whose log-probabilities one request may ask for at each step.
    public static let topLogProbabilitiesRange = 0...20
    /// Prompt tokens one prefill pass may take.
    public static let prefillChunkRange = 1...1_000_000

    /// Throws unless the request fits a model of `vocabularySize` tokens whose context holds
    /// `context` positions (nil: unbounded): a prompt of at least one id, each in the
    /// vocabulary, that leaves room in the context for a new token; at least one new token;
    /// sampling parameters in range. Checked before anything is allocated for the prompt.
    public func validate(vocabularySize: Int, context: Int?) throws(InvalidSetting) {
        try sampling.validate()
        try InvalidSetting.check("max_tokens", maxTokens, in: Self.maxTokensRange)
        if let topLogProbabilities {
            try InvalidSetting.check("top_logprobs", topLogProbabilities, in: Self.topLogProbabilitiesRange)
        }
        try InvalidSetting.check("prefill_chunk", prefillChunk, in: Self.prefillChunkRange)
        guard !promptIds.isEmpty else { throw InvalidSetting(name: "prompt", value: "of no tokens", expected: "at least one token") }
        if let context, promptIds.count >= context {
            throw InvalidSetting(
                name: "prompt", value: "of \(promptIds.count) tokens",
                expected: "at most \(max(0, context - 1)) tokens: the model's context (max_position_embeddings) is \(context)")
        }
        for id in promptIds + (forcedIds ?? []) where !(0..<vocabularySize).contains(id) {
            throw InvalidSetting(name: "token id", value: "\(id)", expected: "an id in the vocabulary, between 0 and \(vocabularySize - 1)")
        }
    }
}

/// Why a generation ended.
public enum StopReason: String, Sendable, Codable {
    /// `maxTokens` were produced.
    case length
    /// An end-of-sequence or stop token was sampled.
    case stopToken = "stop_token"
    /// A stop string appeared in the text.
    case stopString = "stop_string"
    /// The caller asked to stop (its token callback, or its cancellation check).
    case cancelled
}

/// Timing of one generation.
public struct GenerationMetrics: Sendable, Codable {
    /// Tokens in the prompt.
    public var promptTokens = 0
    /// Tokens generated.
    public var generatedTokens = 0
    /// Seconds from the start until the first generated token was known.
    public var timeToFirstToken: Double = 0
    /// Seconds spent after the first token producing the rest.
    public var decodeSeconds: Double = 0

    /// Prompt tokens per second of prefill.
    public var prefillTokensPerSecond: Double { timeToFirstToken > 0 ? Double(promptTokens) / timeToFirstToken : 0 }
    /// Generated tokens per second after the first (the decode rate).
    public var decodeTokensPerSecond: Double {
        generatedTokens > 1 && decodeSeconds > 0 ? Double(generatedTokens - 1) / decodeSeconds : 0
    }
}

/// The outcome of a generation.
public struct GenerationResult: Sendable {
    /// The generated ids (without the prompt and without a final stop token).
    public var ids: [Int]
    /// Their text, when a tokenizer was given (cut before any stop string).
    public var text: String
    /// Why it ended.
    public var stopReason: StopReason
    /// How long it took.
    public var metrics: GenerationMetrics
    /// With `forcedIds`: the natural-log probability of each forced id, in order.
    public var forcedLogProbabilities: [Float] = []
    /// The stop token that ended the generation, when one did (it is not in `ids`).
    public var stopToken: Int? = nil

    /// The generated ids followed by the stop token that ended them, if any: the sequence a
    /// training stage learns from or scores.
    public var idsWithStopToken: [Int] { ids + (stopToken.map { [$0] } ?? []) }
}

/// One step of a streamed generation, handed to the caller as soon as it is known.
public struct GeneratedToken: Sendable {
    /// The token id.
    public var id: Int
    /// New complete text since the previous step (may be empty mid-character).
    public var text: String
    /// The token's log-probability and the most probable tokens', when the request asked.
    public var logProbabilities: TokenLogProbabilities? = nil
}

/// Natural-log probabilities at one generation step, under the model's distribution there (the
/// softmax of its logits, before temperature or any truncation the sampler applies).
public struct TokenLogProbabilities: Sendable, Equatable {
    /// The generated token's.
    public var logProbability: Float
    /// The most probable tokens' ids and log-probabilities, most probable first.
    public var top: [(id: Int, logProbability: Float)]

    /// The log-probabilities of `id` and of the `count` most probable tokens of `logits`.
    public init(logits: [Float], id: Int, top count: Int) {
        let peak = logits.max() ?? 0
        let logTotal = Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp(Double($1 - peak)) })
        let logProbability = { (logit: Float) in Float(Double(logit - peak) - logTotal) }
        self.logProbability = logProbability(logits[id])
        top = logits.withUnsafeBufferPointer { p in
            Selection.topK(p.baseAddress!, count: logits.count, k: count).map { ($0.index, logProbability($0.value)) }
        }
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.logProbability == b.logProbability && a.top.map(\.id) == b.top.map(\.id)
            && a.top.map(\.logProbability) == b.top.map(\.logProbability)
    }
}

/// Which part of a generation a forward pass is.
public enum ForwardPhase: Sendable {
    /// Prompt tokens, `GenerationRequest.prefillChunk` at most.
    case prefill
    /// One generated token.
    case decode
}

/// Runs prefill and the decode loop of one model: feeds the prompt through the KV cache,
/// then samples one token at a time until a stop condition, streaming each token out. The one
/// decode loop of Chronos: plain generation, offloaded generation (which supplies its own
/// forward pass) and the sampling and evaluations of the training stages all run it.
public final class Generator {
    /// The model that computes logits.
    public let model: any LanguageModel
    /// Turns ids into text for streaming and stop strings; optional for id-only models.
    public let tokenizer: Tokenizer?

    /// A generator over `model`, decoding text with `tokenizer` when given.
    public init(model: any LanguageModel, tokenizer: Tokenizer?) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Generates for `request`, calling `onToken` with each token (return false to stop).
    public func generate(
        _ request: GenerationRequest, cache: ModelCache? = nil,
        onToken: (GeneratedToken) -> Bool = { _ in true }
    ) throws -> GenerationResult {
        let model = self.model
        return try run(
            request, cache: cache ?? model.makeCache(), forward: { ids, cache, _ in try model.forward(ids, cache: cache) },
            onToken: onToken)
    }

    /// The prefill and decode loop with the forward pass supplied by the caller, who learns
    /// whether each call is part of the prompt or one decoded token (and may load experts
    /// around it). The generation ends as cancelled when `isCancelled` says so before a pass.
    public func run(
        _ request: GenerationRequest, cache: ModelCache,
        forward: (_ ids: [Int], _ cache: ModelCache, _ phase: ForwardPhase) throws -> Tensor,
        isCancelled: () -> Bool = { false }, onToken: (GeneratedToken) -> Bool
    ) throws -> GenerationResult {
        let summary = model.summary
        try request.validate(vocabularySize: summary.vocabSize, context: summary.maxPositionEmbeddings)
        var sampler = Sampler(request.sampling)
        var stops = request.stopTokens
        if !request.ignoreEOS { stops.formUnion(summary.eosTokenIds) }
        var decoder = tokenizer.map { StreamingDecoder(tokenizer: $0, skipSpecialTokens: true) }
        var metrics = GenerationMetrics(promptTokens: request.promptIds.count)
        var history = request.promptIds
        var generated: [Int] = []
        var text = ""
        var reason = StopReason.length
        var stopToken: Int?
        let start = DispatchTime.now().uptimeNanoseconds
        var firstTokenAt = start

        var forcedLogProbabilities: [Float] = []
        // A generation ends where the context does: the last position holds the last new token.
        let room = summary.maxPositionEmbeddings.map { $0 - request.promptIds.count } ?? .max
        let limit = min(request.forcedIds.map { min($0.count, request.maxTokens) } ?? request.maxTokens, room)
        var logits: Tensor?
        for chunk in stride(from: 0, to: request.promptIds.count, by: request.prefillChunk) {
            if isCancelled() {
                logits = nil
                break
            }
            let ids = Array(request.promptIds[chunk..<min(chunk + request.prefillChunk, request.promptIds.count)])
            logits = try forward(ids, cache, .prefill)
        }
        if logits == nil { reason = .cancelled }
        while let last = logits, generated.count < limit {
            let row = last.row(last.shape[0] - 1)
            let next: Int
            if let forced = request.forcedIds {
                next = forced[generated.count]
                forcedLogProbabilities.append(TokenLogProbabilities(logits: row, id: next, top: 0).logProbability)
            } else {
                next = sampler.next(logits: row, history: history)
            }
            if generated.isEmpty { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            if request.forcedIds == nil, stops.contains(next) {
                reason = .stopToken
                stopToken = next
                break
            }
            generated.append(next)
            history.append(next)
            let piece = try decoder?.append(next) ?? ""
            let probabilities = request.topLogProbabilities.map { TokenLogProbabilities(logits: row, id: next, top: $0) }
            if let cut = Self.firstStop(in: text + piece, stops: request.stopStrings, searchFrom: text.count) {
                let kept = String((text + piece).prefix(cut))
                if kept.count > text.count {
                    _ = onToken(GeneratedToken(id: next, text: String(kept.dropFirst(text.count)), logProbabilities: probabilities))
                }
                text = kept
                reason = .stopString
                break
            }
            text += piece
            if !onToken(GeneratedToken(id: next, text: piece, logProbabilities: probabilities)) {
                reason = .cancelled
                break
            }
            if generated.count == limit { break }
            if isCancelled() {
                reason = .cancelled
                break
            }
            logits = try forward([next], cache, .decode)
        }
        if reason != .stopString, let rest = decoder?.finish(), !rest.isEmpty {
            text += rest
            _ = onToken(GeneratedToken(id: generated.last ?? -1, text: rest))
        }
        let end = DispatchTime.now().uptimeNanoseconds
        metrics.generatedTokens = generated.count
        metrics.timeToFirstToken = Double(firstTokenAt - start) / 1e9
        metrics.decodeSeconds = Double(end - firstTokenAt) / 1e9
        return GenerationResult(
            ids: generated, text: text, stopReason: reason, metrics: metrics,
            forcedLogProbabilities: forcedLogProbabilities, stopToken: stopToken)
    }

    /// Character offset of the earliest stop string in `text` that ends after `searchFrom`
    /// characters (so a stop string spanning the newest piece is found), or nil.
    static func firstStop(in text: String, stops: [String], searchFrom: Int) -> Int? {
        var earliest: Int?
        for stop in stops where !stop.isEmpty {
            guard let range = text.range(of: stop) else { continue }
            let offset = text.distance(from: text.startIndex, to: range.lowerBound)
            if offset + stop.count > searchFrom { earliest = min(earliest ?? offset, offset) }
        }
        return earliest
    }
}
