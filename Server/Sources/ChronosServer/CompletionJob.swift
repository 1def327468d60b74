import ChronosFormats
import ChronosModel
import Foundation

/// A checked generation request: what the generation loop runs and how the answer is shaped.
public struct CompletionJob: Sendable, Equatable {
    /// Which endpoint asked, and so which shape the answer takes.
    public enum Endpoint: Sendable, Equatable {
        /// `POST /v1/completions`: text in, text out.
        case completion
        /// `POST /v1/chat/completions`: messages rendered by the chat template, a message out.
        case chat
    }

    /// The endpoint.
    public var endpoint: Endpoint
    /// The prompt's token ids (after the chat template, for chat).
    public var promptIds: [Int]
    /// At most this many new tokens.
    public var maxTokens: Int
    /// How tokens are picked.
    public var sampling: SamplingParameters
    /// Texts that end the answer; none of them is ever sent.
    public var stop: [String]
    /// Whether the answer streams as server-sent events.
    public var stream: Bool
    /// Whether a stream ends with a chunk carrying the usage.
    public var includeUsage: Bool
    /// Keep generating past end-of-sequence tokens (`ignore_eos`, as llama.cpp's server names it).
    public var ignoreEOS = false
    /// When set, the answer carries each token's log-probability and this many alternatives'
    /// (`logprobs` of completions, `top_logprobs` of chat); nil: no log-probabilities.
    public var topLogprobs: Int? = nil
}

/// Turns request bodies into `CompletionJob`s, refusing each malformed field with OpenAI's error
/// object naming it: its type, its range, the model, the prompt's length against the context.
public struct RequestValidator: Sendable {
    /// The name of the served model, which requests must give as `model`.
    public let modelID: String
    /// The served model's tokenizer.
    public let tokenizer: Tokenizer
    /// The served model's chat template (nil: the chat endpoint is refused).
    public let chatTemplate: ChatTemplate?
    /// Positions the model's context holds (nil: unbounded).
    public let context: Int?
    /// The most new tokens one request may ask for, and what a request that names none gets.
    public let maxTokensLimit: Int

    /// Alternatives a completion request may ask for in `logprobs`, as OpenAI allows.
    public static let completionLogprobsRange = 0...5
    /// Stop texts one request may give.
    public static let maxStopSequences = 16
    /// The longest stop text, in characters.
    public static let maxStopLength = 1000

    /// A validator for requests to the model named `modelID`.
    public init(modelID: String, tokenizer: Tokenizer, chatTemplate: ChatTemplate?, context: Int?, maxTokensLimit: Int) {
        self.modelID = modelID
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.context = context
        self.maxTokensLimit = maxTokensLimit
    }

    /// The job a `POST /v1/completions` body asks for.
    public func completion(_ body: Data) throws(APIError) -> CompletionJob {
        let request = try Self.decode(CompletionRequestBody.self, from: body)
        if let logprobs = request.logprobs, !Self.completionLogprobsRange.contains(logprobs) {
            throw .invalid("logprobs", "logprobs \(logprobs) is invalid: expected null or 0 to \(Self.completionLogprobsRange.upperBound)")
        }
        if request.echo == true { throw .invalid("echo", "echo true is not supported by this server: expected false") }
        if let bestOf = request.bestOf, bestOf != 1 {
            throw .invalid("best_of", "best_of \(bestOf) is not supported by this server: expected 1")
        }
        if let suffix = request.suffix, !suffix.isEmpty {
            throw .invalid("suffix", "suffix is not supported by this server: expected null or an empty string")
        }
        let ids: [Int]
        switch request.prompt {
        case .text(let text): ids = try encode(text, param: "prompt")
        case .texts(let texts):
            guard texts.count == 1 else {
                throw .invalid("prompt", "prompt holds \(texts.count) texts: expected one (this server answers one prompt a request)")
            }
            ids = try encode(texts[0], param: "prompt")
        case .tokenIds(let given):
            if let id = given.first(where: { !(0..<tokenizer.vocabularySize).contains($0) }) {
                throw .invalid("prompt", "prompt token id \(id) is invalid: expected an id between 0 and \(tokenizer.vocabularySize - 1)")
            }
            ids = given
        }
        var job = try job(.completion, ids: ids, promptParam: "prompt", fields: request.generation, maxTokens: request.generation.maxTokens)
        job.topLogprobs = request.logprobs
        return job
    }

    /// The job a `POST /v1/chat/completions` body asks for.
    public func chat(_ body: Data) throws(APIError) -> CompletionJob {
        let request = try Self.decode(ChatRequestBody.self, from: body)
        guard let chatTemplate else {
            throw .invalid(
                "messages", "model \(modelID) has no chat template this server can render (tokenizer_config.json); use /v1/completions")
        }
        if let top = request.topLogprobs {
            guard request.logprobs == true else { throw .invalid("top_logprobs", "top_logprobs needs logprobs true") }
            guard GenerationRequest.topLogProbabilitiesRange.contains(top) else {
                throw .invalid(
                    "top_logprobs", "top_logprobs \(top) is invalid: expected 0 to \(GenerationRequest.topLogProbabilitiesRange.upperBound)"
                )
            }
        }
        if request.tools != nil { throw .invalid("tools", "tools are not supported by this server") }
        if let format = request.responseFormat, format.type != "text" {
            throw .invalid("response_format", "response_format \(format.type.debugDescription) is not supported: expected \"text\"")
        }
        guard !request.messages.isEmpty else { throw .invalid("messages", "messages is empty: expected at least one message") }
        var messages: [ChatMessage] = []
        for (index, message) in request.messages.enumerated() {
            // OpenAI's newer name for the system role.
            let role = message.role == "developer" ? "system" : message.role
            guard ChatTemplate.roles.contains(role) else {
                throw .invalid(
                    "messages[\(index)].role",
                    "messages[\(index)].role \(message.role.debugDescription) is invalid: expected system, user or assistant")
            }
            messages.append(ChatMessage(role: role, content: message.content))
        }
        let text: String
        do {
            text = try chatTemplate.render(messages: messages, addGenerationPrompt: true)
        } catch {
            throw .invalid("messages", "\(error)")
        }
        let ids = try encode(text, param: "messages")
        if let both = request.generation.maxTokens, let completion = request.maxCompletionTokens, both != completion {
            throw .invalid("max_completion_tokens", "max_tokens \(both) and max_completion_tokens \(completion) disagree: give one")
        }
        let maxTokens = request.maxCompletionTokens ?? request.generation.maxTokens
        let param = request.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        var job = try job(.chat, ids: ids, promptParam: "messages", fields: request.generation, maxTokens: maxTokens, maxTokensParam: param)
        if request.logprobs == true { job.topLogprobs = request.topLogprobs ?? 0 }
        return job
    }

    /// The job from the prompt's ids and the shared fields, each checked.
    private func job(
        _ endpoint: CompletionJob.Endpoint, ids: [Int], promptParam: String, fields: GenerationFields, maxTokens: Int?,
        maxTokensParam: String = "max_tokens"
    ) throws(APIError) -> CompletionJob {
        guard let model = fields.model else { throw .invalid("model", "model is required: this server serves \(modelID.debugDescription)") }
        guard model == modelID else { throw .unknownModel(model, served: modelID) }
        if let n = fields.n, n != 1 { throw .invalid("n", "n \(n) is not supported by this server: expected 1") }
        for (name, penalty) in [("frequency_penalty", fields.frequencyPenalty), ("presence_penalty", fields.presencePenalty)] {
            if let penalty, penalty != 0 { throw .invalid(name, "\(name) \(penalty) is not supported by this server: expected 0") }
        }
        if let maxTokens, !(1...maxTokensLimit).contains(maxTokens) {
            throw .invalid(maxTokensParam, "\(maxTokensParam) \(maxTokens) is invalid: expected 1 to \(maxTokensLimit)")
        }
        if let temperature = fields.temperature, !(0...2).contains(temperature) {
            throw .invalid("temperature", "temperature \(temperature) is invalid: expected 0 to 2")
        }
        let sampling = SamplingParameters(
            temperature: fields.temperature ?? 1, topK: fields.topK ?? 0, topP: fields.topP ?? 1, minP: fields.minP ?? 0,
            repetitionPenalty: fields.repetitionPenalty ?? 1,
            seed: fields.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max))
        do {
            try sampling.validate()
        } catch {
            throw .invalid(error.name, error.description)
        }
        let stop = fields.stop?.sequences ?? []
        guard stop.count <= Self.maxStopSequences else {
            throw .invalid("stop", "stop holds \(stop.count) texts: expected at most \(Self.maxStopSequences)")
        }
        for (index, text) in stop.enumerated() where text.isEmpty || text.count > Self.maxStopLength {
            throw .invalid("stop", "stop text \(index) is \(text.count) characters long: expected 1 to \(Self.maxStopLength)")
        }
        guard !ids.isEmpty else { throw .invalid(promptParam, "\(promptParam) encodes to no tokens: expected at least one") }
        if let context, ids.count >= context {
            throw .invalid(
                promptParam,
                "\(promptParam) is \(ids.count) tokens long: expected at most \(context - 1), the model's context being \(context) tokens",
                code: "context_length_exceeded")
        }
        if fields.streamOptions != nil && fields.stream != true {
            throw .invalid("stream_options", "stream_options is only allowed when stream is true")
        }
        return CompletionJob(
            endpoint: endpoint, promptIds: ids, maxTokens: maxTokens ?? maxTokensLimit, sampling: sampling, stop: stop,
            stream: fields.stream ?? false, includeUsage: fields.streamOptions?.includeUsage ?? false, ignoreEOS: fields.ignoreEOS ?? false)
    }

    /// The token ids of `text`, every byte kept.
    private func encode(_ text: String, param: String) throws(APIError) -> [Int] {
        do {
            return try tokenizer.encodeEveryByte(text)
        } catch {
            throw .invalid(param, "\(param) cannot be encoded: \(error)")
        }
    }

    /// `body` decoded as `T`, a decoding failure turned into an error naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws(APIError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw .malformedJSON("\(error)")
        }
    }

    /// The API error for a decoding failure: the field's path and what was wrong with it.
    static func describe(_ error: DecodingError) -> APIError {
        switch error {
        case .typeMismatch(_, let context):
            guard !context.codingPath.isEmpty else {
                return .invalid("", "the request body must be a JSON object")
            }
            let field = path(context.codingPath)
            return .invalid(field, "\(field) has the wrong type: \(context.debugDescription)")
        case .valueNotFound(_, let context):
            let field = path(context.codingPath)
            return .invalid(field, "\(field) must not be null")
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .invalid(field, "\(field) is required")
        case .dataCorrupted(let context):
            guard !context.codingPath.isEmpty else {
                return .malformedJSON(context.underlyingError.map { "\($0)" } ?? context.debugDescription)
            }
            let field = path(context.codingPath)
            return .invalid(field, "\(field) is invalid: \(context.debugDescription)")
        @unknown default:
            return .malformedJSON("\(error)")
        }
    }

    /// `messages[1].content` for the coding path of that field.
    static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }
}
