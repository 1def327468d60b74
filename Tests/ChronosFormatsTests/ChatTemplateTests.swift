import ChronosFormats
import Foundation
import XCTest

final class ChatTemplateTests: XCTestCase {
    /// `tokenizer_config.json` of Qwen2-7B-Instruct, abridged: the template writes `\n` escapes
    /// inside Jinja strings and has a default system message.
    static let qwen2Config = #"""
        {
          "bos_token": null,
          "eos_token": "<|im_end|>",
          "pad_token": {"__type": "AddedToken", "content": "<|endoftext|>", "lstrip": false, "normalized": false},
          "chat_template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        }
        """#

    /// SmolLM2's template writes real newlines inside its Jinja strings.
    static let smolLMTemplate =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    /// Qwen2.5's template builds a system turn from the messages before its literal default.
    static let qwen25Template =
        #"{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You\'re a helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#

    static let plainChatMLTemplate =
        #"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#

    static let llama3Template =
        #"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"#

    func testRendersTheOracleChatPromptWithItsIds() throws {
        let config = try TokenizerConfig(data: Data(Self.qwen2Config.utf8))
        let template = try ChatTemplate(config: config)
        XCTAssertEqual(template.defaultSystemMessage, "You are a helpful assistant.")
        let prompt = try template.render(
            messages: [ChatMessage(role: "system", content: "You are helpful."), ChatMessage(role: "user", content: "Hi there!")],
            addGenerationPrompt: true)
        let expected = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n"
        XCTAssertEqual(prompt, expected)
        let oracle = try XCTUnwrap(OracleTokenizers.cases("qwen2").first { $0.text == expected })
        XCTAssertEqual(OracleTokenizers.qwen2.encode(prompt), oracle.ids)
    }

    func testDefaultSystemMessageIsInsertedWhenTheConversationHasNone() throws {
        let template = try ChatTemplate(Self.smolLMTemplate)
        let prompt = try template.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: false)
        XCTAssertEqual(
            prompt,
            """
            <|im_start|>system
            You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
            <|im_start|>user
            Hi<|im_end|>

            """)
        XCTAssertEqual(try template.render(messages: [], addGenerationPrompt: true), "<|im_start|>assistant\n")
    }

    func testDefaultSystemMessageIsTheFirstLiteralSystemTurn() throws {
        XCTAssertEqual(
            try ChatTemplate(Self.qwen25Template).defaultSystemMessage,
            "You are Qwen, created by Alibaba Cloud. You're a helpful assistant.")
        XCTAssertNil(try ChatTemplate(Self.plainChatMLTemplate).defaultSystemMessage)
    }

    func testNonChatMLTemplatesRenderWithTheConfigsSpecialTokens() throws {
        let config = TokenizerConfig(chatTemplate: Self.llama3Template, bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>")
        let prompt = try ChatTemplate(config: config).render(
            messages: [ChatMessage(role: "user", content: " Hi \n")], addGenerationPrompt: true)
        XCTAssertEqual(
            prompt,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertThrowsError(try ChatTemplate(config: TokenizerConfig(file: "tiny/tokenizer_config.json"))) { error in
            XCTAssertEqual(error as? TokenizerError, .unrenderableChatTemplate(reason: "tiny/tokenizer_config.json has no chat_template"))
        }
    }

    func testConfigGivesSpecialTokenIds() throws {
        let config = try TokenizerConfig(data: Data(Self.qwen2Config.utf8))
        XCTAssertNil(config.bosToken)
        XCTAssertEqual(config.eosToken, "<|im_end|>")
        XCTAssertEqual(config.padToken, "<|endoftext|>")
        let ids = try SpecialTokenIds(config: config, tokenizer: OracleTokenizers.qwen2)
        XCTAssertEqual(ids, SpecialTokenIds(bos: nil, eos: 151645, pad: 151643))

        let unknown = TokenizerConfig(eosToken: "<|eot_id|>", file: "qwen2/tokenizer_config.json")
        XCTAssertThrowsError(try SpecialTokenIds(config: unknown, tokenizer: OracleTokenizers.qwen2)) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownToken("<|eot_id|>", file: "qwen2/tokenizer_config.json"))
        }
    }

    func testConfigReadsNamedTemplatesAndReportsMalformedFiles() throws {
        let named = #"{"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "y"}]}"#
        XCTAssertEqual(try TokenizerConfig(data: Data(named.utf8)).chatTemplate, "y")
        XCTAssertThrowsError(try TokenizerConfig(data: Data("{".utf8), file: "broken/tokenizer_config.json")) { error in
            guard case .malformedFile(let file, _) = error as? TokenizerError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(file, "broken/tokenizer_config.json")
        }
    }
}
