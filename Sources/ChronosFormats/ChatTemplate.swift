/// One turn of a conversation.
public struct ChatMessage: Codable, Equatable, Sendable {
    /// Who speaks: `system`, `user` or `assistant`.
    public var role: String
    /// What is said.
    public var content: String

    /// A message from `role`.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Renders conversations for models whose chat template is ChatML (the Qwen and SmolLM
/// families), without a Jinja interpreter:
///
///     <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
///     <|im_start|>user\nHi!<|im_end|>\n
///     <|im_start|>assistant\n                      (the generation prompt)
///
/// A template counts as ChatML when it contains both `<|im_start|>` and `<|im_end|>`; any other
/// template is refused when the `ChatTemplate` is made. If the template writes a literal system
/// turn (Qwen's `'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'`), that text is
/// the default system message, put first when the conversation does not start with a system
/// message, as such templates do. Template logic beyond this (tools, reasoning traces) is not
/// interpreted, so only the roles `system`, `user` and `assistant` are rendered.
public struct ChatTemplate: Equatable, Sendable {
    /// The system message put first when a conversation has none, if the template has one.
    public let defaultSystemMessage: String?

    /// The roles that render the same under every ChatML template.
    public static let roles: Set<String> = ["system", "user", "assistant"]

    /// A renderer for the Jinja `template`; throws if it is not ChatML.
    public init(_ template: String) throws(TokenizerError) {
        guard template.contains("<|im_start|>"), template.contains("<|im_end|>") else {
            throw .unrenderableChatTemplate(
                reason: "only ChatML templates (with <|im_start|> and <|im_end|>) can be rendered")
        }
        defaultSystemMessage = Self.literalSystemMessage(in: template)
    }

    /// A renderer for the chat template of `config`; throws if it has none or it is not ChatML.
    public init(config: TokenizerConfig) throws(TokenizerError) {
        guard let template = config.chatTemplate else {
            throw .unrenderableChatTemplate(reason: "\(config.file) has no chat_template")
        }
        try self.init(template)
    }

    /// The prompt text for `messages`, ending with an open assistant turn if `addGenerationPrompt`.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool) throws(TokenizerError) -> String {
        if let message = messages.first(where: { !Self.roles.contains($0.role) }) {
            throw .unrenderableChatTemplate(reason: "role \(message.role.debugDescription) is not system, user or assistant")
        }
        var prompt = ""
        if let defaultSystemMessage, let first = messages.first, first.role != "system" {
            prompt += "<|im_start|>system\n\(defaultSystemMessage)<|im_end|>\n"
        }
        for message in messages {
            prompt += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
        }
        if addGenerationPrompt { prompt += "<|im_start|>assistant\n" }
        return prompt
    }

    /// The text of the first system turn that the template writes as one string literal, with
    /// its escapes resolved; nil if every system turn is built from the messages.
    private static func literalSystemMessage(in template: String) -> String? {
        var rest = template[...]
        while let opening = rest.range(of: "<|im_start|>system") {
            rest = rest[opening.upperBound...]
            let body: Substring
            if rest.hasPrefix("\n") {
                body = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                body = rest.dropFirst(2)
            } else {
                continue
            }
            guard let closing = body.range(of: "<|im_end|>") else { return nil }
            if let message = unescapedLiteral(body[..<closing.lowerBound]) { return message }
        }
        return nil
    }

    /// The text of a Jinja string literal's inside, or nil if it is not all literal (a quote or
    /// a brace ends the literal or starts an expression).
    private static func unescapedLiteral(_ text: Substring) -> String? {
        var result = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if "'\"{}".contains(character) {
                return nil
            } else {
                result.append(character)
            }
        }
        return escaped ? nil : result
    }
}
