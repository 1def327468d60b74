import ChronosFormats
import Foundation

/// One supervised conversation (`{"conversations": [{"role", "content"}, …]}`): the loss
/// falls on its assistant turns.
public struct ChatConversation: Equatable, Sendable {
    /// The turns in order.
    public var messages: [ChatMessage]

    /// A conversation of `messages`.
    public init(messages: [ChatMessage]) {
        self.messages = messages
    }

    /// The turns before the last assistant turn and that turn's text: a prompt and its
    /// reference answer, for scoring generations.
    public var promptAndAnswer: (prompt: [ChatMessage], answer: String)? {
        guard let last = messages.lastIndex(where: { $0.role == "assistant" }) else { return nil }
        return (Array(messages[..<last]), messages[last].content)
    }
}

/// A preference pair (`{"chosen": [turns], "rejected": [turns]}`): the same prompt turns,
/// then a preferred and a dispreferred final assistant answer.
public struct PreferencePair: Equatable, Sendable {
    /// The turns both answers follow.
    public var prompt: [ChatMessage]
    /// The preferred answer.
    public var chosen: String
    /// The dispreferred answer.
    public var rejected: String

    /// A pair with the given prompt and answers.
    public init(prompt: [ChatMessage], chosen: String, rejected: String) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
    }
}

/// A prompt to generate for, with what a good answer says
/// (`{"conversations": [turns…, {"role": "assistant", "content": ""}], "reference": …, "word": …}`).
public struct DefinitionPrompt: Equatable, Sendable {
    /// The turns to answer (without the empty assistant turn of the file).
    public var prompt: [ChatMessage]
    /// The reference definition.
    public var reference: String
    /// The word defined, when the record names it.
    public var word: String?

    /// A prompt with its reference.
    public init(prompt: [ChatMessage], reference: String, word: String? = nil) {
        self.prompt = prompt
        self.reference = reference
        self.word = word
    }
}

/// Reading the chat-format datasets of the fine-tuning stages (SFT and distillation
/// conversations, DPO/ORPO preference pairs, GRPO prompts), plain or gzipped JSON Lines.
/// Every record is checked; the first malformed one is an error naming its file and line.
public enum ChatData {
    /// Conversations with at least one non-empty assistant turn.
    public static func conversations(at url: URL) throws -> [ChatConversation] {
        try records(at: url) { fields in
            let messages = try turns(fields, "conversations")
            guard messages.contains(where: { $0.role == "assistant" && !$0.content.isEmpty }) else {
                throw RecordProblem("\"conversations\" has no non-empty assistant turn")
            }
            return ChatConversation(messages: messages)
        }
    }

    /// Preference pairs whose `chosen` and `rejected` share every turn but a final assistant one.
    public static func preferencePairs(at url: URL) throws -> [PreferencePair] {
        try records(at: url) { fields in
            let chosen = try turns(fields, "chosen"), rejected = try turns(fields, "rejected")
            for (name, turns) in [("chosen", chosen), ("rejected", rejected)] {
                guard turns.count >= 2, turns.last!.role == "assistant" else {
                    throw RecordProblem("\"\(name)\" must be prompt turns followed by one assistant turn")
                }
                guard !turns.last!.content.isEmpty else { throw RecordProblem("the \"\(name)\" answer is empty") }
            }
            guard chosen.dropLast() == rejected.dropLast() else {
                throw RecordProblem("\"chosen\" and \"rejected\" do not share their prompt turns")
            }
            return PreferencePair(prompt: Array(chosen.dropLast()), chosen: chosen.last!.content, rejected: rejected.last!.content)
        }
    }

    /// Prompts with a non-empty `reference`; a final empty assistant turn is dropped.
    public static func definitionPrompts(at url: URL) throws -> [DefinitionPrompt] {
        try records(at: url) { fields in
            var messages = try turns(fields, "conversations")
            if let last = messages.last, last.role == "assistant" {
                guard last.content.isEmpty else { throw RecordProblem("the final assistant turn must be empty (it is generated)") }
                messages.removeLast()
            }
            guard messages.last?.role == "user" else { throw RecordProblem("\"conversations\" must end with a user turn to answer") }
            guard let reference = fields["reference"] as? String, !reference.isEmpty else {
                throw RecordProblem("no non-empty string \"reference\"")
            }
            if fields["word"] != nil && !(fields["word"] is String) { throw RecordProblem("\"word\" is not a string") }
            return DefinitionPrompt(prompt: messages, reference: reference, word: fields["word"] as? String)
        }
    }

    /// Each line decoded by `decode`; fails on an empty file.
    static func records<Record>(at url: URL, _ decode: ([String: Any]) throws -> Record) throws -> [Record] {
        var records: [Record] = []
        try JSONLinesFile.forEachObject(at: url) { _, fields in records.append(try decode(fields)) }
        guard !records.isEmpty else { throw JSONLinesError.empty(file: url.path) }
        return records
    }

    /// The non-empty list of `{"role", "content"}` turns under `key`, roles checked.
    static func turns(_ fields: [String: Any], _ key: String) throws -> [ChatMessage] {
        guard let value = fields[key] else { throw RecordProblem("no \"\(key)\" field") }
        guard let list = value as? [Any], !list.isEmpty else { throw RecordProblem("\"\(key)\" is not a non-empty list of turns") }
        return try list.enumerated().map { index, item in
            guard let turn = item as? [String: Any] else { throw RecordProblem("\(key)[\(index)] is not an object") }
            guard let role = turn["role"] as? String else { throw RecordProblem("\(key)[\(index)] has no string \"role\"") }
            guard ChatTemplate.roles.contains(role) else {
                throw RecordProblem("\(key)[\(index)] has role \(role.debugDescription), not system, user or assistant")
            }
            guard let content = turn["content"] as? String else { throw RecordProblem("\(key)[\(index)] has no string \"content\"") }
            return ChatMessage(role: role, content: content)
        }
    }
}
