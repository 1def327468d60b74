import ChronosFormats
import ChronosModel
import Foundation

/// Token counts of one answer: OpenAI's `usage`.
public struct Usage: Codable, Equatable, Sendable {
    /// Tokens of the prompt.
    public var promptTokens: Int
    /// Tokens generated.
    public var completionTokens: Int
    /// Their sum.
    public var totalTokens: Int { promptTokens + completionTokens }

    /// The usage of a prompt of `promptTokens` and an answer of `completionTokens`.
    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    private enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    /// Decodes the two counts; the total is derived.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try container.decode(Int.self, forKey: .promptTokens)
        completionTokens = try container.decode(Int.self, forKey: .completionTokens)
    }

    /// Encodes the counts and their total.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
    }
}

/// Why an answer ended, as OpenAI names it.
public enum FinishReason: String, Codable, Sendable {
    /// An end-of-sequence token or a stop text.
    case stop
    /// `max_tokens`, or the end of the model's context.
    case length
}

/// One generated token's log-probability and the most probable tokens' at its step, with
/// their texts: what `logprobs` of an answer lists.
public struct TokenLogprob: Sendable, Equatable {
    /// A token with its text, its bytes and its log-probability.
    public struct Choice: Sendable, Equatable {
        /// The token's text (invalid UTF-8 replaced by U+FFFD).
        public var text: String
        /// The token's bytes.
        public var bytes: [UInt8]
        /// Its natural-log probability.
        public var logprob: Float
    }

    /// The generated token.
    public var token: Choice
    /// The most probable tokens, most probable first.
    public var top: [Choice]

    /// The entry of token `id` with `probabilities`, the texts from `tokenizer`.
    init(_ probabilities: TokenLogProbabilities, id: Int, tokenizer: Tokenizer) {
        func choice(_ id: Int, _ logprob: Float) -> Choice {
            let bytes = (try? tokenizer.bytes(ofToken: id)) ?? []
            return Choice(text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: logprob)
        }
        token = choice(id, probabilities.logProbability)
        top = probabilities.top.map { choice($0.id, $0.logProbability) }
    }
}

/// The identity an answer's chunks share: its id, creation time and model.
public struct AnswerHeader: Sendable {
    /// `cmpl-…` or `chatcmpl-…`.
    public var id: String
    /// Seconds since 1970 when the request was accepted.
    public var created: Int
    /// The served model's name.
    public var model: String

    /// A header for a new answer from `endpoint` of `model`.
    public init(endpoint: CompletionJob.Endpoint, model: String) {
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        id = (endpoint == .chat ? "chatcmpl-" : "cmpl-") + suffix
        created = Int(Date().timeIntervalSince1970)
        self.model = model
    }
}

/// The JSON objects of the answers, built as dictionaries of `JSONValue` so that OpenAI's nulls
/// are written where its clients expect a key.
public enum AnswerJSON {
    /// A whole answer: `text_completion` or `chat.completion`.
    /// `logprobs` (nil: the answer has none) are the log-probabilities of its tokens.
    public static func whole(
        _ endpoint: CompletionJob.Endpoint, header: AnswerHeader, text: String, finishReason: FinishReason, usage: Usage,
        logprobs: [TokenLogprob]? = nil
    ) -> JSONValue {
        let probabilities = logprobs.map { Self.logprobs(endpoint, $0, textOffset: 0) } ?? nil
        let choice: JSONValue =
            switch endpoint {
            case .completion:
                ["index": 0, "text": .string(text), "logprobs": probabilities, "finish_reason": .string(finishReason.rawValue)]
            case .chat:
                [
                    "index": 0, "message": ["role": "assistant", "content": .string(text)], "logprobs": probabilities,
                    "finish_reason": .string(finishReason.rawValue)
                ]
            }
        return [
            "id": .string(header.id), "object": endpoint == .chat ? "chat.completion" : "text_completion",
            "created": .number(Double(header.created)), "model": .string(header.model), "choices": [choice], "usage": usage.json
        ]
    }

    /// One streamed chunk: `text` (chat: a `delta`, with the role on the first), the finish
    /// reason on the last; `usage` is null on every chunk of a stream that ends with the usage.
    /// `logprobs` are those of the tokens whose text the chunk completes (nil: the answer has
    /// none), the first `textOffset` characters into the answer.
    public static func chunk(
        _ endpoint: CompletionJob.Endpoint, header: AnswerHeader, text: String?, role: Bool = false, finishReason: FinishReason? = nil,
        includeUsage: Bool, logprobs: [TokenLogprob]? = nil, textOffset: Int = 0
    ) -> JSONValue {
        let finish: JSONValue = finishReason.map { .string($0.rawValue) } ?? nil
        let probabilities = logprobs.map { Self.logprobs(endpoint, $0, textOffset: textOffset) } ?? nil
        let choice: JSONValue
        switch endpoint {
        case .completion:
            choice = ["index": 0, "text": .string(text ?? ""), "logprobs": probabilities, "finish_reason": finish]
        case .chat:
            var delta: [String: JSONValue] = [:]
            if role { delta["role"] = "assistant" }
            if let text { delta["content"] = .string(text) }
            choice = ["index": 0, "delta": .object(delta), "logprobs": probabilities, "finish_reason": finish]
        }
        var chunk: [String: JSONValue] = [
            "id": .string(header.id), "object": endpoint == .chat ? "chat.completion.chunk" : "text_completion",
            "created": .number(Double(header.created)), "model": .string(header.model), "choices": [choice]
        ]
        if includeUsage { chunk["usage"] = JSONValue.null }
        return .object(chunk)
    }

    /// The `logprobs` object of `entries`: chat's `content` list, or the completions' parallel
    /// lists (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`, the first token
    /// `textOffset` characters into the answer).
    static func logprobs(_ endpoint: CompletionJob.Endpoint, _ entries: [TokenLogprob], textOffset: Int) -> JSONValue {
        // OpenAI writes a probability of zero as -9999 rather than -infinity, which JSON lacks.
        func number(_ logprob: Float) -> JSONValue { .number(logprob.isFinite ? Double(logprob) : -9999) }
        switch endpoint {
        case .chat:
            func choice(_ c: TokenLogprob.Choice) -> [String: JSONValue] {
                ["token": .string(c.text), "logprob": number(c.logprob), "bytes": .array(c.bytes.map { .number(Double($0)) })]
            }
            let content = entries.map { entry -> JSONValue in
                var object = choice(entry.token)
                object["top_logprobs"] = .array(entry.top.map { .object(choice($0)) })
                return .object(object)
            }
            return ["content": .array(content), "refusal": nil]
        case .completion:
            var offsets: [JSONValue] = [], offset = textOffset
            for entry in entries {
                offsets.append(.number(Double(offset)))
                offset += entry.token.text.count
            }
            let top = entries.map { entry -> JSONValue in
                var alternatives: [String: JSONValue] = [:]
                for alternative in entry.top where alternatives[alternative.text] == nil {
                    alternatives[alternative.text] = number(alternative.logprob)
                }
                return .object(alternatives)
            }
            return [
                "tokens": .array(entries.map { .string($0.token.text) }),
                "token_logprobs": .array(entries.map { number($0.token.logprob) }),
                "top_logprobs": .array(top), "text_offset": .array(offsets)
            ]
        }
    }

    /// The last chunk of a stream that asked for the usage: no choices, the usage.
    public static func usageChunk(_ endpoint: CompletionJob.Endpoint, header: AnswerHeader, usage: Usage) -> JSONValue {
        [
            "id": .string(header.id), "object": endpoint == .chat ? "chat.completion.chunk" : "text_completion",
            "created": .number(Double(header.created)), "model": .string(header.model), "choices": [], "usage": usage.json
        ]
    }
}

extension Usage {
    /// The usage as a JSON object.
    var json: JSONValue {
        [
            "prompt_tokens": .number(Double(promptTokens)), "completion_tokens": .number(Double(completionTokens)),
            "total_tokens": .number(Double(totalTokens))
        ]
    }
}
