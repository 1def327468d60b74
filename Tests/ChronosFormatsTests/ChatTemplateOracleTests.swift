import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

/// Published chat templates rendered by Python jinja2 as transformers' `apply_chat_template`
/// renders them (`scripts/make_chat_template_fixtures.py`); Chronos must agree byte for byte,
/// including on the conversations a template refuses with `raise_exception`.
final class ChatTemplateOracleTests: XCTestCase {
    static let families = [
        "Qwen-Qwen3-0.6B", "Qwen-Qwen2.5-7B-Instruct", "Mistral-Small-3.2-24B-Instruct-2506", "deepseek-ai-DeepSeek-V3.1",
        "meta-llama-Llama-3.1-8B-Instruct", "google-gemma-2-2b-it", "HuggingFaceTB-SmolLM3-3B", "openai-gpt-oss-120b", "zai-org-GLM-4.6",
        "austen-moe"
    ]

    func testEveryFamilyRendersAsJinja2Does() throws {
        for family in Self.families {
            let fixture = try JinjaValue(json: String(contentsOf: Fixtures.url("chat-templates/\(family).json"), encoding: .utf8))
            guard case .string(let file)? = fixture["template"], case .array(let cases)? = fixture["cases"],
                case .string(let now)? = fixture["now"]
            else { return XCTFail("\(family): malformed fixture") }
            let source = try String(contentsOf: Fixtures.url("chat-templates/\(file)"), encoding: .utf8)
            let template = try ChatTemplate(source, bosToken: fixture["bos_token"]?.text, eosToken: fixture["eos_token"]?.text)
            let date = try Self.date(now)
            var rendered = 0
            for (index, conversation) in cases.enumerated() {
                guard case .array(let messages)? = conversation["messages"] else { return XCTFail("\(family)[\(index)]: no messages") }
                var tools: [JinjaValue]?
                if case .array(let given)? = conversation["tools"] { tools = given }
                var variables: [String: JinjaValue] = [:]
                if case .object(let given)? = conversation["variables"] {
                    for (name, value) in given { variables[name] = value }
                }
                let result = Result { () throws(TokenizerError) in
                    try template.render(
                        messages: messages, tools: tools, addGenerationPrompt: conversation["add_generation_prompt"] == .bool(true),
                        variables: variables, now: date)
                }
                if let expected = conversation["expected"]?.text {
                    XCTAssertEqual(try result.get(), expected, "\(family) case \(index)")
                    rendered += 1
                } else if let message = conversation["error"]?.text {
                    XCTAssertThrowsError(try result.get(), "\(family) case \(index)") { error in
                        XCTAssertTrue("\(error)".contains("the template raised an exception at line"), "\(error)")
                        XCTAssertTrue("\(error)".hasSuffix(": " + message), "\(error)")
                    }
                }
            }
            XCTAssertGreaterThanOrEqual(rendered, 20, family)
        }
    }

    /// The naive local time of an ISO 8601 `YYYY-MM-DDTHH:MM:SS`, as Python's `datetime` holds it.
    static func date(_ text: String) throws -> Date {
        let numbers = text.split { $0 == "-" || $0 == "T" || $0 == ":" }.compactMap { Int($0) }
        let components = DateComponents(
            calendar: Calendar(identifier: .gregorian), timeZone: .current, year: numbers[0], month: numbers[1], day: numbers[2],
            hour: numbers[3], minute: numbers[4], second: numbers[5])
        return try XCTUnwrap(components.date)
    }
}

extension JinjaValue {
    /// The string, if this is one.
    fileprivate var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}
