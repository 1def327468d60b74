import ArgumentParser
import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosOptions
import ChronosStorage
import ChronosTensor
import Foundation

/// `chronos generate`: stream a continuation of a prompt.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming tokens as they are produced.",
        discussion: """
            Without --model, runs the Austen MoE model that ships in models/austen-moe with its \
            experts streamed from its packed expert cache under a budget of half their bytes \
            (--expert-budget 0.5). To run another model, point --model at a Hugging Face-style \
            directory (config.json, model.safetensors or shards with model.safetensors.index.json, \
            tokenizer.json, tokenizer_config.json); add --expert-budget to offload its experts \
            after `chronos pack DIR`. Supported model types: \(ModelRegistry.modelTypes.joined(separator: ", ")).
            """)

    @Option(help: "Model directory (default: the shipped models/austen-moe).") var model: String?
    @Argument(help: "The prompt text.") var prompt: String?
    @Option(help: "Feed these comma-separated token ids instead of text (for models without a tokenizer).")
    var promptIds: String?
    @Flag(help: "Wrap the prompt in the model's chat template as a user message.") var chat = false
    @Option(parsing: .unconditional, help: "At most this many new tokens.") var maxTokens = 128
    @Flag(help: "Keep generating past end-of-sequence tokens.") var ignoreEos = false
    @Option(parsing: .unconditional, help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0.8
    @Option(parsing: .unconditional, help: "Sample from the k most likely tokens only (0 = all).") var topK = 0
    @Option(parsing: .unconditional, help: "Nucleus sampling: the smallest set of tokens reaching this probability.") var topP: Float = 1
    @Option(parsing: .unconditional, help: "Drop tokens less likely than this fraction of the most likely one.") var minP: Float = 0
    @Option(parsing: .unconditional, help: "Penalise tokens already present (1 = off).") var repetitionPenalty: Float = 1
    @Option(parsing: .unconditional, help: "Random seed, for reproducible sampling.") var seed: UInt64 = 0
    @Option(help: "Stop when this string appears (repeatable).") var stop: [String] = []
    @Flag(help: "Print the generated ids, comma-separated on one line, instead of text.") var printIds = false
    @Option(help: "Where experts live when offloaded: chronos (prediction + prefetch), lru, mmap or resident.")
    var experts: ExpertResidencyMode = .chronos
    @OptionGroup var offload: OffloadOptions
    @OptionGroup var backend: BackendOption

    /// The sampling settings the options give.
    var sampling: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty, seed: seed)
    }

    func validate() throws {
        try checkingOptions {
            try sampling.validate()
            try InvalidSetting.check("max_tokens", maxTokens, in: GenerationRequest.maxTokensRange)
        }
    }

    func run() throws {
        try backend.apply()
        let directory = try model ?? ModelArgument.shippedModel()
        let budget = try offload.budget() ?? (model == nil ? .fraction(0.5) : nil)
        guard budget != nil || (offload.fault.isEmpty && !offload.cold && offload.ssdMs == nil && offload.ssdMbps == nil) else {
            throw ValidationError("--fault, --cold and --ssd-* apply to offloaded experts; give --expert-budget too")
        }
        let offloaded = try budget.map {
            try OffloadedModel(
                directory: URL(fileURLWithPath: directory),
                settings: offload.settings(mode: experts, budget: $0))
        }
        defer { offloaded?.close() }
        let model = try offloaded?.model ?? ModelArgument.load(directory)
        let tokenizer = try ModelDirectory(path: directory).loadTokenizer()
        let ids: [Int]
        if let promptIds {
            ids = try parseIds(promptIds)
        } else {
            guard let prompt else { throw ValidationError("give a prompt, or --prompt-ids") }
            guard let tokenizer else { throw ValidationError("\(directory) has no tokenizer.json; use --prompt-ids") }
            let text =
                chat
                ? try ModelArgument.chatTemplate(in: directory).render(
                    messages: [ChatMessage(role: "user", content: prompt)],
                    addGenerationPrompt: true)
                : prompt
            ids = try tokenizer.encodeEveryByte(text)
        }
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        let request = GenerationRequest(
            promptIds: ids, maxTokens: maxTokens,
            sampling: sampling,
            stopStrings: stop, ignoreEOS: ignoreEos)
        if !printIds, promptIds == nil, let prompt, !chat { write(prompt) }
        let stream = { (token: GeneratedToken) -> Bool in
            if !printIds { write(token.text) }
            return true
        }
        let result: GenerationResult
        var offloadMetrics: OffloadRunMetrics?
        if let offloaded {
            let outcome = try OffloadedGenerator(offloaded: offloaded, tokenizer: printIds ? nil : tokenizer)
                .generate(request, onToken: stream)
            result = outcome.generation
            offloadMetrics = outcome.metrics
        } else {
            result = try Generator(model: model, tokenizer: printIds ? nil : tokenizer).generate(request, onToken: stream)
        }
        write(printIds ? result.ids.map(String.init).joined(separator: ",") + "\n" : "\n")
        let m = result.metrics
        FileHandle.standardError.write(
            Data(
                String(
                    format: "prompt %d tokens, generated %d tokens, time to first token %.1f ms, %.2f tokens/s (%@)\n",
                    m.promptTokens, m.generatedTokens, m.timeToFirstToken * 1000, m.decodeTokensPerSecond,
                    result.stopReason.rawValue
                ).utf8))
        if let offloaded, let offloadMetrics {
            let metrics = offloaded.close(finalising: offloadMetrics)
            FileHandle.standardError.write(Data((metrics.summaryLine + "\n").utf8))
            for line in metrics.faultLog.prefix(5) { FileHandle.standardError.write(Data("fault: \(line)\n".utf8)) }
        }
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// `chronos tokenize`: print the token ids of a text.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids of a text, comma-separated on one line.",
        discussion: """
            The text comes from exactly one of: the TEXT argument, --file PATH (the whole file), or \
            --stdin (standard input, read to its end: `cat book.txt | chronos tokenize --model DIR --stdin`). \
            Files and standard input are read as UTF-8 with every byte kept; use them for long texts \
            and for texts holding a NUL byte, which no command-line argument can carry.
            """)

    @Option(help: "Model directory holding tokenizer.json.") var model: String?
    @Option(help: "A tokenizer.json file.") var tokenizer: String?
    @Argument(help: "The text to encode (or give --file or --stdin).") var text: String?
    @Option(help: "Encode the whole of this UTF-8 file.") var file: String?
    @Flag(help: "Encode standard input, read to its end.") var stdin = false

    func validate() throws {
        let sources = [text != nil, file != nil, stdin].filter { $0 }.count
        guard sources == 1 else {
            throw ValidationError(
                "give exactly one text to encode: TEXT, --file PATH or --stdin (\(sources == 0 ? "none" : "\(sources)") given)")
        }
    }

    func run() throws {
        let loaded: Tokenizer
        if let tokenizer {
            loaded = try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
        } else if let model, let found = try ModelDirectory(path: model).loadTokenizer() {
            loaded = found
        } else {
            throw ValidationError("give --tokenizer FILE or --model DIR with a tokenizer.json")
        }
        let input = try file.map { try TextInput.read(path: $0) } ?? text ?? TextInput.readStandardInput()
        print(try loaded.encodeEveryByte(input).map(String.init).joined(separator: ","))
    }
}
