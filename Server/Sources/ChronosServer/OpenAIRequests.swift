import Foundation

/// The fields `POST /v1/completions` and `POST /v1/chat/completions` share, as OpenAI names them.
struct GenerationFields: Decodable {
    var model: String?
    var maxTokens: Int?
    var temperature: Float?
    var topP: Float?
    var topK: Int?
    var minP: Float?
    var repetitionPenalty: Float?
    var frequencyPenalty: Float?
    var presencePenalty: Float?
    var seed: Int64?
    var stop: StopField?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var n: Int?
    var ignoreEOS: Bool?

    enum CodingKeys: String, CodingKey {
        case model, temperature, seed, stop, stream, n
        case ignoreEOS = "ignore_eos"
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case topK = "top_k"
        case minP = "min_p"
        case repetitionPenalty = "repetition_penalty"
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case streamOptions = "stream_options"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        maxTokens = try container.decodeIntegerIfPresent(Int.self, forKey: .maxTokens)
        temperature = try container.decodeIfPresent(Float.self, forKey: .temperature)
        topP = try container.decodeIfPresent(Float.self, forKey: .topP)
        topK = try container.decodeIntegerIfPresent(Int.self, forKey: .topK)
        minP = try container.decodeIfPresent(Float.self, forKey: .minP)
        repetitionPenalty = try container.decodeIfPresent(Float.self, forKey: .repetitionPenalty)
        frequencyPenalty = try container.decodeIfPresent(Float.self, forKey: .frequencyPenalty)
        presencePenalty = try container.decodeIfPresent(Float.self, forKey: .presencePenalty)
        seed = try container.decodeIntegerIfPresent(Int64.self, forKey: .seed)
        stop = try container.decodeIfPresent(StopField.self, forKey: .stop)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try container.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        n = try container.decodeIntegerIfPresent(Int.self, forKey: .n)
        ignoreEOS = try container.decodeIfPresent(Bool.self, forKey: .ignoreEOS)
    }
}

extension KeyedDecodingContainer {
    /// An integer field, if present and not null. A number with a fraction, or one beyond the
    /// type's range, is refused under the field's path (JSONDecoder reports those as invalid
    /// JSON, naming no field).
    func decodeIntegerIfPresent<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        if let value = try? decodeIfPresent(T.self, forKey: key) { return value }
        guard let number = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        throw DecodingError.dataCorrupted(
            .init(codingPath: codingPath + [key], debugDescription: "expected an integer from \(T.min) to \(T.max), got \(number)"))
    }
}

/// `stream_options`: whether a stream ends with a chunk carrying the usage.
struct StreamOptions: Decodable {
    var includeUsage: Bool?

    enum CodingKeys: String, CodingKey {
        case includeUsage = "include_usage"
    }
}

/// `stop`: one string or a list of them.
struct StopField: Decodable {
    var sequences: [String]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) {
            sequences = [one]
        } else if let many = try? container.decode([String].self) {
            sequences = many
        } else {
            throw DecodingError.typeMismatch(
                [String].self, .init(codingPath: decoder.codingPath, debugDescription: "expected a string or an array of strings"))
        }
    }
}

/// `POST /v1/completions`'s body.
struct CompletionRequestBody: Decodable {
    var prompt: PromptField
    var logprobs: Int?
    var echo: Bool?
    var bestOf: Int?
    var suffix: String?
    var generation: GenerationFields

    enum CodingKeys: String, CodingKey {
        case prompt, logprobs, echo, suffix
        case bestOf = "best_of"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try container.decode(PromptField.self, forKey: .prompt)
        logprobs = try container.decodeIntegerIfPresent(Int.self, forKey: .logprobs)
        echo = try container.decodeIfPresent(Bool.self, forKey: .echo)
        bestOf = try container.decodeIntegerIfPresent(Int.self, forKey: .bestOf)
        suffix = try container.decodeIfPresent(String.self, forKey: .suffix)
        generation = try GenerationFields(from: decoder)
    }
}

/// `prompt`: text, a list holding one text, or token ids.
enum PromptField: Decodable {
    case text(String)
    case texts([String])
    case tokenIds([Int])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else if let texts = try? container.decode([String].self) {
            self = .texts(texts)
        } else if let ids = try? container.decode([Int].self) {
            self = .tokenIds(ids)
        } else {
            throw DecodingError.typeMismatch(
                String.self,
                .init(
                    codingPath: decoder.codingPath, debugDescription: "expected a string, an array of one string, or an array of token ids")
            )
        }
    }
}

/// `POST /v1/chat/completions`'s body.
struct ChatRequestBody: Decodable {
    var messages: [ChatMessageField]
    var maxCompletionTokens: Int?
    var logprobs: Bool?
    var topLogprobs: Int?
    var tools: IgnoredValue?
    var responseFormat: ResponseFormat?
    var generation: GenerationFields

    enum CodingKeys: String, CodingKey {
        case messages, logprobs, tools
        case maxCompletionTokens = "max_completion_tokens"
        case topLogprobs = "top_logprobs"
        case responseFormat = "response_format"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        messages = try container.decode([ChatMessageField].self, forKey: .messages)
        maxCompletionTokens = try container.decodeIntegerIfPresent(Int.self, forKey: .maxCompletionTokens)
        logprobs = try container.decodeIfPresent(Bool.self, forKey: .logprobs)
        topLogprobs = try container.decodeIntegerIfPresent(Int.self, forKey: .topLogprobs)
        tools = try container.decodeIfPresent(IgnoredValue.self, forKey: .tools)
        responseFormat = try container.decodeIfPresent(ResponseFormat.self, forKey: .responseFormat)
        generation = try GenerationFields(from: decoder)
    }
}

/// `response_format`: only `{"type": "text"}` is served.
struct ResponseFormat: Decodable {
    var type: String
}

/// A field whose presence matters and whose value is not read.
struct IgnoredValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

/// One message of `messages`.
struct ChatMessageField: Decodable {
    var role: String
    var content: String

    enum CodingKeys: String, CodingKey {
        case role, content
    }

    /// A text part of an array `content`.
    private struct ContentPart: Decodable {
        var type: String
        var text: String?
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        role = try container.decode(String.self, forKey: .role)
        if let text = try? container.decode(String.self, forKey: .content) {
            content = text
            return
        }
        var parts = try container.nestedUnkeyedContainer(forKey: .content)
        var text = ""
        while !parts.isAtEnd {
            let path = parts.codingPath + [IndexKey(parts.currentIndex)]
            let part = try parts.decode(ContentPart.self)
            guard part.type == "text", let piece = part.text else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: path, debugDescription: "only text parts ({\"type\": \"text\", \"text\": …}) are served"))
            }
            text += piece
        }
        content = text
    }
}

/// An array position in a coding path.
struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }

    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}
