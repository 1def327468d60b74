import Foundation

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

/// Renders conversations with a model's Jinja chat template, as transformers'
/// `apply_chat_template` does (`trim_blocks`, `lstrip_blocks`, its `raise_exception`,
/// `strftime_now` and `tojson`), for the subset of Jinja that published chat templates use:
/// `if`/`for`/`set`/`macro`, namespaces, loop variables, filters such as `trim` and `tojson`,
/// tests, Python string and dictionary methods. A template using anything else is refused when
/// the `ChatTemplate` is made, with the construct and its line named.
public struct ChatTemplate: Equatable, Sendable {
    /// The template's source text.
    public let source: String
    /// The text the template's `bos_token` stands for; undefined in the template when nil.
    public let bosToken: String?
    /// The text the template's `eos_token` stands for; undefined in the template when nil.
    public let eosToken: String?
    /// For ChatML encoders: the system message the template writes as a literal when a
    /// conversation starts without one, if it does.
    public let defaultSystemMessage: String?
    private let nodes: [JinjaNode]

    /// The roles of the plain conversations that the command line, the server and chat data
    /// give (tool turns need the `JinjaValue` form of `render`).
    public static let roles: Set<String> = ["system", "user", "assistant"]

    /// A renderer for the Jinja `template`; throws if it does not parse or uses a construct
    /// outside the subset.
    public init(_ template: String, bosToken: String? = nil, eosToken: String? = nil) throws(TokenizerError) {
        do {
            nodes = try JinjaParser.parse(template)
        } catch {
            throw Self.describe(error)
        }
        source = template
        self.bosToken = bosToken
        self.eosToken = eosToken
        defaultSystemMessage = Self.literalSystemMessage(in: template)
    }

    /// A renderer for the chat template and special tokens of `config`; throws if it has no
    /// template or the template is refused.
    public init(config: TokenizerConfig) throws(TokenizerError) {
        guard let template = config.chatTemplate else {
            throw .unrenderableChatTemplate(reason: "\(config.file) has no chat_template")
        }
        try self.init(template, bosToken: config.bosToken, eosToken: config.eosToken)
    }

    /// Two renderers are equal when they render the same template with the same tokens.
    public static func == (lhs: ChatTemplate, rhs: ChatTemplate) -> Bool {
        lhs.source == rhs.source && lhs.bosToken == rhs.bosToken && lhs.eosToken == rhs.eosToken
    }

    /// The prompt text for `messages`, ending with an open assistant turn if `addGenerationPrompt`.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool) throws(TokenizerError) -> String {
        try render(
            messages: messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) },
            addGenerationPrompt: addGenerationPrompt)
    }

    /// The prompt text for `messages` (objects with `role`, `content` and optionally
    /// `tool_calls`, `reasoning_content`, `tool_call_id`), offering `tools` (their JSON schemas)
    /// if given. `variables` are further template inputs (`enable_thinking`, …); `now` is the
    /// time `strftime_now` prints.
    public func render(
        messages: [JinjaValue], tools: [JinjaValue]? = nil, addGenerationPrompt: Bool, variables: [String: JinjaValue] = [:],
        now: Date = Date()
    ) throws(TokenizerError) -> String {
        // The inputs apply_chat_template gives: special tokens that are unset stay undefined.
        var inputs: [String: JinjaObject] = [
            "messages": .list(messages.map(JinjaObject.init)), "tools": tools.map { .list($0.map(JinjaObject.init)) } ?? .none,
            "documents": .none, "add_generation_prompt": .bool(addGenerationPrompt)
        ]
        if let bosToken { inputs["bos_token"] = .string(bosToken) }
        if let eosToken { inputs["eos_token"] = .string(eosToken) }
        for (name, value) in variables { inputs[name] = JinjaObject(value) }
        do {
            return try JinjaInterpreter(variables: inputs, now: now).render(nodes)
        } catch {
            throw Self.describe(error)
        }
    }

    private static func describe(_ error: JinjaError) -> TokenizerError {
        .unrenderableChatTemplate(
            reason: error.raised
                ? "the template raised an exception at line \(error.line): \(error.message)" : "line \(error.line): \(error.message)")
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
