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
    public static func whole(
        _ endpoint: CompletionJob.Endpoint, header: AnswerHeader, text: String, finishReason: FinishReason, usage: Usage
    ) -> JSONValue {
        let choice: JSONValue =
            switch endpoint {
            case .completion:
                ["index": 0, "text": .string(text), "logprobs": nil, "finish_reason": .string(finishReason.rawValue)]
            case .chat:
                [
                    "index": 0, "message": ["role": "assistant", "content": .string(text)], "logprobs": nil,
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
    public static func chunk(
        _ endpoint: CompletionJob.Endpoint, header: AnswerHeader, text: String?, role: Bool = false, finishReason: FinishReason? = nil,
        includeUsage: Bool
    ) -> JSONValue {
        let finish: JSONValue = finishReason.map { .string($0.rawValue) } ?? nil
        let choice: JSONValue
        switch endpoint {
        case .completion:
            choice = ["index": 0, "text": .string(text ?? ""), "logprobs": nil, "finish_reason": finish]
        case .chat:
            var delta: [String: JSONValue] = [:]
            if role { delta["role"] = "assistant" }
            if let text { delta["content"] = .string(text) }
            choice = ["index": 0, "delta": .object(delta), "logprobs": nil, "finish_reason": finish]
        }
        var chunk: [String: JSONValue] = [
            "id": .string(header.id), "object": endpoint == .chat ? "chat.completion.chunk" : "text_completion",
            "created": .number(Double(header.created)), "model": .string(header.model), "choices": [choice]
        ]
        if includeUsage { chunk["usage"] = JSONValue.null }
        return .object(chunk)
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
