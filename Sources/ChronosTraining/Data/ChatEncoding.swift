import ChronosFormats
import ChronosTensor
import Foundation

/// A tokenised conversation and which of its tokens carry loss.
public struct ChatSequence: Equatable, Sendable {
    /// Token ids of the rendered conversation.
    public var ids: [Int]
    /// Per token: whether it is an assistant token the model learns to produce.
    public var isTarget: [Bool]

    /// A sequence with the given ids and loss mask.
    public init(ids: [Int], isTarget: [Bool]) {
        precondition(ids.count == isTarget.count, "\(ids.count) ids with \(isTarget.count) mask entries")
        self.ids = ids
        self.isTarget = isTarget
    }

    /// The model's input: every id but the last.
    public var inputs: [Int] { Array(ids.dropLast()) }

    /// Next-token targets of `inputs`: the following id where it carries loss, else
    /// `CrossEntropy.ignoreIndex`.
    public var targets: [Int] {
        ids.indices.dropFirst().map { isTarget[$0] ? ids[$0] : CrossEntropy.ignoreIndex }
    }

    /// Tokens that carry loss.
    public var targetCount: Int { isTarget.lazy.filter { $0 }.count }

    /// The first `length` tokens.
    public func truncated(to length: Int) -> ChatSequence {
        ids.count <= length ? self : ChatSequence(ids: Array(ids.prefix(length)), isTarget: Array(isTarget.prefix(length)))
    }
}

/// Which assistant turns of a conversation carry loss.
public enum AssistantLoss: Sendable {
    /// Every assistant turn (supervised fine-tuning).
    case allTurns
    /// Only the final turn (the answers of a preference pair or a sampled completion).
    case finalTurn
}

/// Renders conversations through a ChatML chat template into token ids, marking the assistant
/// tokens. An assistant turn `<|im_start|>assistant\nCONTENT<|im_end|>\n` carries loss on the
/// tokens of CONTENT and on `<|im_end|>` (so the model learns to stop), not on the header or
/// the newline after it; system and user turns carry none.
///
/// Each piece is encoded on its own, so the mask falls exactly on token boundaries: the
/// headers and `<|im_end|>` as special tokens, the message text with special-token matching
/// off (a message cannot forge control tokens). The ids decode to exactly the text
/// `ChatTemplate.render` produces, after the BOS token when the tokenizer configuration names one.
public struct ChatEncoder: Sendable {
    /// The tokenizer.
    public let tokenizer: Tokenizer
    /// The template (its default system message, if any, is put first as `render` does).
    public let template: ChatTemplate
    /// Put before every sequence, when the tokenizer configuration names a BOS token.
    public let beginningOfSequence: Int?
    /// The id of `<|im_end|>`, which ends a turn.
    public let endOfTurn: Int

    /// An encoder over `tokenizer` and `template`.
    public init(tokenizer: Tokenizer, template: ChatTemplate, beginningOfSequence: Int?) throws(TokenizerError) {
        guard let endOfTurn = tokenizer.id(forToken: "<|im_end|>"), tokenizer.id(forToken: "<|im_start|>") != nil else {
            throw .unrenderableChatTemplate(reason: "the tokenizer has no <|im_start|> and <|im_end|> tokens")
        }
        self.tokenizer = tokenizer
        self.template = template
        self.beginningOfSequence = beginningOfSequence
        self.endOfTurn = endOfTurn
    }

    /// The encoder of a model directory: its `tokenizer.json`, and the chat template and BOS
    /// token of its `tokenizer_config.json` (the Chronos ChatML template when it has none).
    public init(directory: URL) throws {
        let tokenizer = try Tokenizer(contentsOf: ModelDirectory(directory).tokenizer)
        let configURL = ModelDirectory(directory).tokenizerConfig
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try TokenizerConfig(contentsOf: configURL) : nil
        let template = try ChatTemplate(config?.chatTemplate ?? TokenizerConfig.chatMLTemplate)
        let specials = try config.map { try SpecialTokenIds(config: $0, tokenizer: tokenizer) }
        try self.init(tokenizer: tokenizer, template: template, beginningOfSequence: specials?.bos)
    }

    /// The conversation's tokens with `loss` deciding which assistant turns carry loss.
    public func encode(_ messages: [ChatMessage], loss: AssistantLoss = .allTurns) throws(TokenizerError) -> ChatSequence {
        try validate(messages)
        var sequence = ChatSequence(ids: [], isTarget: [])
        if let beginningOfSequence { append([beginningOfSequence], target: false, to: &sequence) }
        let turns = withDefaultSystemMessage(messages)
        let lastAssistant = turns.lastIndex { $0.role == "assistant" }
        for (index, message) in turns.enumerated() {
            let target = message.role == "assistant" && (loss == .allTurns || index == lastAssistant)
            append(tokenizer.encode("<|im_start|>\(message.role)\n", matchSpecialTokens: true), target: false, to: &sequence)
            append(tokenizer.encode(message.content, matchSpecialTokens: false), target: target, to: &sequence)
            append([endOfTurn], target: target, to: &sequence)
            append(tokenizer.encode("\n", matchSpecialTokens: false), target: false, to: &sequence)
        }
        return sequence
    }

    /// The prompt ids for `messages` followed by an open assistant turn, to generate from.
    public func encodePrompt(_ messages: [ChatMessage]) throws(TokenizerError) -> [Int] {
        try validate(messages)
        var ids = beginningOfSequence.map { [$0] } ?? []
        for message in withDefaultSystemMessage(messages) {
            ids += tokenizer.encode("<|im_start|>\(message.role)\n", matchSpecialTokens: true)
            ids += tokenizer.encode(message.content, matchSpecialTokens: false)
            ids += [endOfTurn] + tokenizer.encode("\n", matchSpecialTokens: false)
        }
        return ids + tokenizer.encode("<|im_start|>assistant\n", matchSpecialTokens: true)
    }

    /// Prompt ids followed by completion ids, the loss on the completion only.
    public static func completion(prompt: [Int], completion: [Int]) -> ChatSequence {
        ChatSequence(
            ids: prompt + completion,
            isTarget: [Bool](repeating: false, count: prompt.count) + [Bool](repeating: true, count: completion.count))
    }

    private func validate(_ messages: [ChatMessage]) throws(TokenizerError) {
        // The template rejects roles it cannot render; rendering is cheap next to encoding.
        _ = try template.render(messages: messages, addGenerationPrompt: false)
    }

    private func withDefaultSystemMessage(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let system = template.defaultSystemMessage, let first = messages.first, first.role != "system" else { return messages }
        return [ChatMessage(role: "system", content: system)] + messages
    }

    private func append(_ ids: [Int], target: Bool, to sequence: inout ChatSequence) {
        sequence.ids += ids
        sequence.isTarget += [Bool](repeating: target, count: ids.count)
    }
}
