import ChronosFormats
import ChronosModel
import ChronosTestSupport
import ChronosTraining
import Foundation

/// A tiny definitions task in a temporary directory: SFT, DPO and GRPO files in the WordNet
/// formats, a tokenizer trained on them, and a randomly initialised tiny Chronos model saved
/// with that tokenizer, to fine-tune from in a second of debug-build time.
struct FineTuneFixture {
    let directory: URL
    let base: URL
    let tokenizer: Tokenizer

    static let items: [(word: String, pos: String, definition: String, other: String)] = [
        ("cat", "noun", "a small domesticated feline", "a large wild dog"),
        ("run", "verb", "move fast on foot", "stay in one place"),
        ("red", "adjective", "of the colour of blood", "of the colour of grass"),
        ("slowly", "adverb", "without speed", "very quickly"),
        ("tree", "noun", "a tall woody plant", "a small flying insect"),
        ("sing", "verb", "produce musical tones with the voice", "remain silent"),
        ("blue", "adjective", "of the colour of the clear sky", "of the colour of coal"),
        ("river", "noun", "a large natural stream of water", "a dry sandy desert"),
        ("eat", "verb", "take in food", "give away food"),
        ("happy", "adjective", "feeling or showing pleasure", "feeling or showing sorrow")
    ]

    static func question(_ word: String) -> String { "Define \"\(word)\"." }
    static func answer(_ word: String, _ pos: String, _ definition: String) -> String { "\(word) (\(pos)): \(definition)." }

    static let model = ChronosConfiguration(
        hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8,
        kvLatentDim: 8, ropeDim: 4, slidingWindow: 16, experts: 4, expertsPerToken: 2,
        sharedExperts: 1, moeIntermediateSize: 16, sharedExpertIntermediateSize: 16, lookaheadSteps: 2)

    init() throws {
        directory = try Fixtures.temporaryDirectory()
        func line(_ object: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        func user(_ word: String) -> [String: String] { ["role": "user", "content": Self.question(word)] }
        var sft: [String] = [], dpo: [String] = [], grpo: [String] = []
        for item in Self.items {
            let chosen = Self.answer(item.word, item.pos, item.definition)
            sft.append(try line(["conversations": [user(item.word), ["role": "assistant", "content": chosen]]]))
            dpo.append(
                try line([
                    "chosen": [user(item.word), ["role": "assistant", "content": chosen]],
                    "rejected": [user(item.word), ["role": "assistant", "content": Self.answer(item.word, item.pos, item.other)]]
                ]))
            grpo.append(
                try line([
                    "conversations": [user(item.word), ["role": "assistant", "content": ""]],
                    "reference": item.definition, "word": item.word
                ]))
        }
        for (name, lines) in [("sft", sft), ("dpo", dpo), ("grpo", grpo)] {
            try (lines.joined(separator: "\n") + "\n").write(
                to: directory.appendingPathComponent("\(name).jsonl"), atomically: true, encoding: .utf8)
        }
        var trainer = TokenizerTrainer(vocabularySize: 320)
        trainer.add(contentsOf: Self.items.flatMap { [Self.question($0.word), Self.answer($0.word, $0.pos, $0.definition), $0.other] })
        tokenizer = try trainer.train()
        base = directory.appendingPathComponent("base")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        try tokenizer.write(to: base.appendingPathComponent("tokenizer.json"))
        try TokenizerConfig.chronosChat.write(to: base.appendingPathComponent("tokenizer_config.json"), addedTokens: tokenizer.addedTokens)
        var configuration = Self.model
        configuration.vocabSize = tokenizer.vocabularySize
        configuration.eosTokenId = [tokenizer.id(forToken: "<|endoftext|>")!, tokenizer.id(forToken: "<|im_end|>")!]
        configuration.bosTokenId = tokenizer.id(forToken: "<|endoftext|>")
        let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 3)
        try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: base)
    }

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// Settings for a few steps of `objective` from the base model into a fresh directory.
    func settings(_ objective: StageObjectiveSettings, data: String, steps: Int = 3, output: URL? = nil) throws -> StageSettings {
        var settings = StageSettings(
            objective: objective, start: base, output: try output ?? Fixtures.temporaryDirectory(),
            data: url(data))
        settings.optimization.steps = steps
        settings.optimization.batchSize = 2
        settings.optimization.warmupSteps = 1
        settings.optimization.learningRate = 3e-3
        settings.evaluateEvery = 2
        settings.checkpointEvery = 2
        settings.evaluationExamples = 2
        settings.generationExamples = 2
        settings.maxNewTokens = 6
        return settings
    }
}
