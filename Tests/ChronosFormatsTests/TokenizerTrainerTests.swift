import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

final class TokenizerTrainerTests: XCTestCase {
    /// A few hundred words of English with a handful of very frequent words.
    static let corpus: [String] = {
        let sentences = [
            "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
            "However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
            "\"My dear Mr. Bennet,\" said his lady to him one day, \"have you heard that Netherfield Park is let at last?\"",
            "Mr. Bennet replied that he had not. \"But it is,\" returned she; \"for Mrs. Long has just been here, and she told me all about it.\"",
            "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite some of the best blessings of existence.",
            "The family of Dashwood had long been settled in Sussex. Their estate was large, and their residence was at Norland Park."
        ]
        return (0..<12).map { round in
            sentences.indices.map { sentences[($0 + round) % sentences.count] }.joined(separator: round % 2 == 0 ? " " : "\n\n")
        }
    }()

    static func trained(vocabularySize: Int = 400, corpus: [String] = corpus) throws -> Tokenizer {
        var trainer = TokenizerTrainer(vocabularySize: vocabularySize)
        trainer.add(contentsOf: corpus)
        return try trainer.train()
    }

    func testTrainingReachesTheRequestedVocabularySize() throws {
        var trainer = TokenizerTrainer(vocabularySize: 400)
        trainer.add(contentsOf: Self.corpus)
        var reports: [(Int, Int)] = []
        let tokenizer = try trainer.train { reports.append(($0, $1)) }
        XCTAssertEqual(tokenizer.vocabularySize, 400)
        XCTAssertEqual(reports.last?.0, 400 - 256 - 4)
        XCTAssertTrue(reports.allSatisfy { $0.1 == 140 })
        XCTAssertEqual(tokenizer.addedTokens.map(\.content), TokenizerTrainer.chatSpecialTokens)
        XCTAssertEqual(tokenizer.addedTokens.map(\.id), [396, 397, 398, 399])
        XCTAssertTrue(tokenizer.addedTokens.allSatisfy(\.special))
        for byte in 0..<256 { XCTAssertEqual(tokenizer.id(forToken: ByteLevel.encode([UInt8(byte)])), byte) }
        XCTAssertEqual(
            tokenizer.encode("<|im_start|>user\n<|im_end|><|pad|><|endoftext|>").filter { $0 >= 396 },
            [397, 398, 399, 396])
    }

    func testTrainingStopsWhenNoPairIsFrequentEnough() throws {
        var trainer = TokenizerTrainer(vocabularySize: 10_000, specialTokens: ["<|endoftext|>"])
        trainer.add("abab abab xy")
        let tokenizer = try trainer.train()
        // "ab" (4), then "abab" (2, as "ab"+"ab"), then " abab" (" " + "abab", 1) is too rare.
        XCTAssertEqual(tokenizer.vocabularySize, 256 + 2 + 1)
        XCTAssertEqual(tokenizer.encode("abab"), [tokenizer.id(forToken: "abab")!])
    }

    func testTiesGoToTheLexicographicallyFirstPair() throws {
        var trainer = TokenizerTrainer(vocabularySize: 257, specialTokens: [])
        trainer.add("yz ab yz ab")
        let tokenizer = try trainer.train()
        // (" ", "a"), ("a", "b") and ("y", "z") each occur twice; the space byte sorts first.
        XCTAssertEqual(tokenizer.token(forId: 256), "Ġa")
    }

    func testEncodeDecodeRoundTripsArbitraryText() throws {
        let tokenizer = try Self.trained()
        let texts = [
            "It is a truth universally acknowledged.",
            "Ünïcödé: 日本語のテキスト, emoji 👩‍👩‍👧 and ℵ₀ — never seen in training.",
            "tabs\tand  double  spaces\n\n\r\nand trailing   ",
            "<|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\n",
            "<|endoftext|>Mr. Bennet<|pad|><|pad|>",
            "bytes \u{0}\u{1}\u{7F} and 123456789 and don't won't I'll we've",
            ""
        ]
        for text in texts {
            let ids = tokenizer.encode(text)
            XCTAssertEqual(try tokenizer.decode(ids), text, text.debugDescription)
        }
        let special = tokenizer.encode("<|im_start|>user")
        XCTAssertEqual(special.first, tokenizer.id(forToken: "<|im_start|>"))
        XCTAssertTrue(tokenizer.isSpecialToken(special[0]))
        XCTAssertEqual(try tokenizer.decode(special, skipSpecialTokens: true), "user")
    }

    func testFrequentWordsBecomeSingleTokens() throws {
        let tokenizer = try Self.trained()
        for word in [" the", " of", " and", " a", " Bennet", " truth", " is"] {
            let ids = tokenizer.encode(word)
            XCTAssertEqual(ids.count, 1, "\(word.debugDescription) is \(ids)")
            XCTAssertEqual(try tokenizer.decode(ids), word)
        }
        let text = Self.corpus.joined()
        XCTAssertLessThan(tokenizer.encode(text).count, text.utf8.count / 2)
    }

    func testSameInputGivesAnIdenticalFile() throws {
        let first = try Self.trained().jsonData()
        let second = try Self.trained(corpus: Self.corpus).jsonData()
        XCTAssertEqual(first, second)
        // The order in which texts are added does not matter: only word counts do.
        XCTAssertEqual(try Self.trained(corpus: Self.corpus.reversed()).jsonData(), first)
        let renamed = Self.corpus.map { $0.replacingOccurrences(of: "Bennet", with: "Darcy") }
        XCTAssertNotEqual(try Self.trained(corpus: renamed).jsonData(), first)
    }

    func testMergesAreListedInPriorityOrderAndSpellTheirTokens() throws {
        let tokenizer = try Self.trained()
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try tokenizer.jsonData()) as? [String: Any])
        let model = try XCTUnwrap(json["model"] as? [String: Any])
        let merges = try XCTUnwrap(model["merges"] as? [[String]])
        let vocabulary = try XCTUnwrap(model["vocab"] as? [String: Int])
        XCTAssertEqual(merges.count, 400 - 256 - 4)
        for (rank, merge) in merges.enumerated() {
            XCTAssertEqual(vocabulary[merge[0] + merge[1]], 256 + rank, "\(merge)")
        }
        XCTAssertEqual(vocabulary["<|endoftext|>"], 396)
    }

    func testWrittenFileReadsBackWithIdenticalEncodings() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tokenizer.json")
        let tokenizer = try Self.trained()
        try tokenizer.write(to: url)
        let reread = try Tokenizer(contentsOf: url)
        XCTAssertEqual(reread.vocabularySize, tokenizer.vocabularySize)
        XCTAssertEqual(reread.addedTokens, tokenizer.addedTokens)
        for text in Self.corpus + Self.probes {
            XCTAssertEqual(reread.encode(text), tokenizer.encode(text), text.debugDescription)
        }
    }

    func testConfigHasAChatTemplateThatRendersAndSpecialTokensThatResolve() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tokenizer_config.json")
        let tokenizer = try Self.trained()
        try TokenizerConfig.chronosChat.write(to: url, addedTokens: tokenizer.addedTokens)

        let config = try TokenizerConfig(contentsOf: url)
        XCTAssertEqual(config.chatTemplate, TokenizerConfig.chatMLTemplate)
        XCTAssertEqual(try SpecialTokenIds(config: config, tokenizer: tokenizer), SpecialTokenIds(bos: 396, eos: 398, pad: 399))
        let template = try ChatTemplate(config: config)
        XCTAssertNil(template.defaultSystemMessage)
        let prompt = try template.render(
            messages: [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi!")],
            addGenerationPrompt: true)
        XCTAssertEqual(prompt, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(try tokenizer.decode(tokenizer.encode(prompt)), prompt)

        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        XCTAssertEqual(json["tokenizer_class"] as? String, "PreTrainedTokenizerFast")
        XCTAssertEqual(json["add_bos_token"] as? Bool, false)
        let decoder = try XCTUnwrap(json["added_tokens_decoder"] as? [String: [String: Any]])
        XCTAssertEqual(decoder["398"]?["content"] as? String, "<|im_end|>")
        XCTAssertEqual(decoder["398"]?["special"] as? Bool, true)
        XCTAssertNil(decoder["398"]?["id"])
    }

    /// Texts beyond the training corpus, for comparing encoders.
    static let probes = [
        "Pride and Prejudice, by Jane Austen.",
        "  leading spaces, 12345 digits, don't, she'll, THEY'RE",
        "Ünïcödé 日本語 👩‍👩‍👧 ℵ₀\ttab\r\nCRLF",
        "<|im_start|>user\nWhat is a truth universally acknowledged?<|im_end|>\n<|im_start|>assistant\n",
        "two docs<|endoftext|>joined<|pad|>"
    ]

    /// The Hugging Face `tokenizers` library loads the written file and encodes as this one
    /// does. Skipped when `python3` with `tokenizers` is not installed.
    func testHuggingFaceLibraryEncodesTheSame() throws {
        guard Python.canImport("tokenizers") else {
            throw XCTSkip("python3 with the tokenizers package is not installed")
        }
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tokenizer.json")
        let tokenizer = try Self.trained()
        try tokenizer.write(to: url)
        let texts = Self.probes + Self.corpus.prefix(2)
        let script = """
            import json, sys
            from tokenizers import Tokenizer
            tokenizer = Tokenizer.from_file(sys.argv[1])
            texts = json.loads(sys.argv[2])
            print(json.dumps({"size": tokenizer.get_vocab_size(),
                              "ids": [tokenizer.encode(text).ids for text in texts],
                              "decoded": [tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) for text in texts]}))
            """
        let arguments = [url.path, String(decoding: try JSONEncoder().encode(texts), as: UTF8.self)]
        let (status, output) = try Python.run(script, arguments)
        XCTAssertEqual(status, 0, "python could not load the file")
        struct Report: Decodable {
            let size: Int
            let ids: [[Int]]
            let decoded: [String]
        }
        let report = try JSONDecoder().decode(Report.self, from: output)
        XCTAssertEqual(report.size, tokenizer.vocabularySize)
        for (index, text) in texts.enumerated() {
            XCTAssertEqual(report.ids[index], tokenizer.encode(text), text.debugDescription)
            XCTAssertEqual(report.decoded[index], text, text.debugDescription)
        }
    }
}
