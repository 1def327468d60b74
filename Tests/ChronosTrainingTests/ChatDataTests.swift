import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class ChatDataTests: XCTestCase {
    /// The repository's `data/wordnet` directory.
    static let wordnet = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/wordnet")

    func write(_ text: String, _ name: String = "data.jsonl") throws -> URL {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testTheChatTemplateMasksExactlyTheAssistantTokens() throws {
        let fixture = try FineTuneFixture()
        let encoder = try ChatEncoder(directory: fixture.base)
        let messages = [
            ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Define \"cat\"."),
            ChatMessage(role: "assistant", content: "cat (noun): a small domesticated feline."),
            ChatMessage(role: "user", content: "Define \"run\"."),
            ChatMessage(role: "assistant", content: "run (verb): move fast on foot.")
        ]
        let sequence = try encoder.encode(messages)
        let tokenizer = fixture.tokenizer
        // The ids are the template's text, after the BOS token, token for token.
        let rendered = try ChatTemplate(TokenizerConfig.chatMLTemplate).render(messages: messages, addGenerationPrompt: false)
        XCTAssertEqual(sequence.ids.first, tokenizer.id(forToken: "<|endoftext|>"))
        XCTAssertEqual(try tokenizer.decode(Array(sequence.ids.dropFirst())), rendered)
        XCTAssertEqual(Array(sequence.ids.dropFirst()), tokenizer.encode(rendered))
        // The masked tokens are the two answers, each with its <|im_end|>, and nothing else.
        let end = tokenizer.id(forToken: "<|im_end|>")!
        let masked = sequence.ids.indices.filter { sequence.isTarget[$0] }.map { sequence.ids[$0] }
        XCTAssertEqual(
            masked,
            tokenizer.encode("cat (noun): a small domesticated feline.") + [end]
                + tokenizer.encode("run (verb): move fast on foot.") + [end])
        // Masked runs are contiguous spans that start right after "<|im_start|>assistant\n".
        let header = tokenizer.encode("<|im_start|>assistant\n")
        var starts: [Int] = []
        for i in sequence.ids.indices where sequence.isTarget[i] && (i == 0 || !sequence.isTarget[i - 1]) { starts.append(i) }
        XCTAssertEqual(starts.count, 2)
        for start in starts { XCTAssertEqual(Array(sequence.ids[(start - header.count)..<start]), header) }
        // Targets are the next token where it is an assistant token, else ignored.
        let targets = sequence.targets
        XCTAssertEqual(targets.count, sequence.ids.count - 1)
        for t in targets.indices {
            XCTAssertEqual(targets[t], sequence.isTarget[t + 1] ? sequence.ids[t + 1] : CrossEntropy.ignoreIndex)
        }
        // Only the final answer for preference pairs and completions.
        let final = try encoder.encode(messages, loss: .finalTurn)
        XCTAssertEqual(
            final.ids.indices.filter { final.isTarget[$0] }.map { final.ids[$0] },
            tokenizer.encode("run (verb): move fast on foot.") + [end])
        // A prompt ends with the open assistant turn, and message text cannot forge special tokens.
        let prompt = try encoder.encodePrompt([ChatMessage(role: "user", content: "<|im_end|>")])
        XCTAssertEqual(Array(prompt.suffix(header.count)), header)
        XCTAssertEqual(prompt.filter { $0 == end }.count, 1, "only the template's own <|im_end|>")
    }

    func testRecordsOfEachFormatAreRead() throws {
        let fixture = try FineTuneFixture()
        let conversations = try ChatData.conversations(at: fixture.url("sft.jsonl"))
        XCTAssertEqual(conversations.count, FineTuneFixture.items.count)
        XCTAssertEqual(conversations[0].promptAndAnswer?.answer, "cat (noun): a small domesticated feline.")
        let pairs = try ChatData.preferencePairs(at: fixture.url("dpo.jsonl"))
        XCTAssertEqual(
            pairs[0],
            PreferencePair(
                prompt: [ChatMessage(role: "user", content: "Define \"cat\".")],
                chosen: "cat (noun): a small domesticated feline.", rejected: "cat (noun): a large wild dog."))
        let prompts = try ChatData.definitionPrompts(at: fixture.url("grpo.jsonl"))
        XCTAssertEqual(
            prompts[0],
            DefinitionPrompt(
                prompt: [ChatMessage(role: "user", content: "Define \"cat\".")],
                reference: "a small domesticated feline", word: "cat"))
    }

    func testMalformedRecordsNameTheFileAndLine() throws {
        let good = #"{"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#
        let cases: [(String, String)] = [
            ("{not json", "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            (#"{"text": "x"}"#, "no \"conversations\" field"),
            (#"{"conversations": [{"role": "narrator", "content": "x"}]}"#, "role \"narrator\""),
            (#"{"conversations": [{"role": "user", "content": 3}]}"#, "no string \"content\""),
            (#"{"conversations": [{"role": "user", "content": "Hi"}]}"#, "no non-empty assistant turn")
        ]
        for (bad, reason) in cases {
            let url = try write([good, "", bad].joined(separator: "\n"))
            XCTAssertThrowsError(try ChatData.conversations(at: url)) { error in
                guard case JSONLinesError.malformedLine(let file, let line, let message) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(file, url.path)
                XCTAssertEqual(line, 3, "blank lines count")
                XCTAssertTrue(message.contains(reason), "\(message) should say \(reason)")
                XCTAssertTrue("\(error)".hasPrefix("\(url.path):3: "))
            }
        }
        let pair =
            #"{"chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "x"}], "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "y"}]}"#
        XCTAssertThrowsError(try ChatData.preferencePairs(at: write(pair))) { error in
            XCTAssertTrue(
                "\(error)".contains(":1: malformed line: \"chosen\" and \"rejected\" do not share their prompt turns"), "\(error)")
        }
        let prompt = #"{"conversations": [{"role": "user", "content": "A"}, {"role": "assistant", "content": ""}], "reference": ""}"#
        XCTAssertThrowsError(try ChatData.definitionPrompts(at: write(prompt))) { error in
            XCTAssertTrue("\(error)".contains(":1: malformed line: no non-empty string \"reference\""), "\(error)")
        }
        XCTAssertThrowsError(try ChatData.conversations(at: write("\n\n"))) { error in
            guard case .empty = error as? JSONLinesError else { return XCTFail("\(error)") }
        }
    }

    func testTheWordNetFilesParse() throws {
        let directory = Self.wordnet
        XCTAssertEqual(try ChatData.conversations(at: directory.appendingPathComponent("sft_valid.jsonl")).count, 1000)
        XCTAssertEqual(try ChatData.preferencePairs(at: directory.appendingPathComponent("dpo_valid.jsonl")).count, 1000)
        let prompts = try ChatData.definitionPrompts(at: directory.appendingPathComponent("grpo_valid.jsonl"))
        XCTAssertEqual(prompts.count, 1000)
        XCTAssertNotNil(prompts[0].word)
        // A gzipped training split (dynamic Huffman blocks, CRC-checked).
        XCTAssertEqual(try ChatData.definitionPrompts(at: directory.appendingPathComponent("grpo_train.jsonl.gz")).count, 20000)
    }

    func testDefinitionF1AndRewards() {
        XCTAssertEqual(DefinitionScoring.definition(in: "cat (noun): a small feline. For example: \"the cat sat\"."), "a small feline")
        XCTAssertEqual(DefinitionScoring.definition(in: "a small feline"), "a small feline")
        // Shared {a, feline}: precision 2/3, recall 2/4, F1 = 2·(2/3)(1/2)/(2/3 + 1/2) = 4/7.
        XCTAssertEqual(
            DefinitionScoring.f1(prediction: "A feline, dog", reference: "a small domesticated feline"), 4.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(DefinitionScoring.f1(prediction: "the the", reference: "the"), 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(DefinitionScoring.f1(prediction: "", reference: "x"), 0)
        XCTAssertTrue(DefinitionScoring.hasAnswerFormat("Cat (noun): a feline.", word: "cat"))
        XCTAssertFalse(DefinitionScoring.hasAnswerFormat("dog (noun): a feline.", word: "cat"))
        XCTAssertFalse(DefinitionScoring.hasAnswerFormat("cat: a feline.", word: "cat"))
        let prompt = DefinitionPrompt(
            prompt: [ChatMessage(role: "user", content: "Define \"cat\".")],
            reference: "a small domesticated feline", word: "cat")
        let reward = DefinitionReward()
        XCTAssertEqual(reward.reward("cat (noun): a small domesticated feline.", for: prompt), 1.2, accuracy: 1e-12)
        XCTAssertEqual(reward.reward("A feline, dog", for: prompt), 4.0 / 7, accuracy: 1e-12)
        let shape = LengthDiversityReward(targetWords: 4)
        XCTAssertEqual(shape.reward("a b c d", for: prompt), 1, accuracy: 1e-12)
        XCTAssertEqual(shape.reward("a a", for: prompt), 0.5 * 0.5 + 0.5 * 0.5, accuracy: 1e-12)
        XCTAssertEqual(shape.reward("", for: prompt), 0)
        XCTAssertThrowsError(try Rewards.make("nonsense"))
        XCTAssertThrowsError(try Rewards.make(ModelLikelihoodReward.rewardName))
    }

    func testTheModelLikelihoodRewardPrefersAnswersThatPredictTheReference() throws {
        let fixture = try FineTuneFixture()
        let reward = try ModelLikelihoodReward(directory: fixture.base)
        let prompt = DefinitionPrompt(
            prompt: [ChatMessage(role: "user", content: "Define \"cat\".")], reference: "a small domesticated feline")
        let value = try reward.reward("cat (noun): a small domesticated feline.", for: prompt)
        XCTAssertGreaterThan(value, 0)
        XCTAssertLessThanOrEqual(value, 1)
        // exp(−mean CE) of the reference tokens after "QUESTION\nANSWER\n".
        let tokenizer = fixture.tokenizer
        let context =
            [tokenizer.id(forToken: "<|endoftext|>")!] + tokenizer.encode("Define \"cat\".\ncat (noun): a small domesticated feline.\n")
        let reference = tokenizer.encode("a small domesticated feline")
        let ids = context + reference
        let logits = try reward.model.forward(Array(ids.dropLast()), cache: reward.model.makeCache())
        let targets = ids.indices.dropFirst().map { $0 >= context.count ? ids[$0] : CrossEntropy.ignoreIndex }
        XCTAssertEqual(value, Foundation.exp(-Double(Tensor.crossEntropy(logits: logits, targets: targets).floats[0])), accuracy: 1e-6)
    }
}
