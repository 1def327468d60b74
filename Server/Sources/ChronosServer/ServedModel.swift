import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import Foundation

/// What one generation did: why it ended, its token counts and timing.
public struct GenerationOutcome: Sendable {
    /// Why it ended; nil when it was cancelled.
    public var finishReason: FinishReason?
    /// Tokens of the prompt and of the answer.
    public var usage: Usage
    /// Time to first token and decode rate, as the generation loop measured them.
    public var metrics: GenerationMetrics
}

/// The model a server answers with: the offloaded model, its tokenizer, the checks its requests
/// pass, and the generation of one request on the calling thread.
public final class ServedModel: Sendable {
    /// The name requests give as `model`: the model directory's name.
    public let id: String
    /// The model with its experts kept as the settings say.
    public let offloaded: OffloadedModel
    /// Turns ids into text.
    public let tokenizer: Tokenizer
    /// Checks requests against this model.
    public let validator: RequestValidator
    /// Seconds since 1970 when it was loaded: `created` in `GET /v1/models`.
    public let created = Int(Date().timeIntervalSince1970)
    /// Where the generations decoding at once run their passes as one (nil: each on its own).
    public let batcher: PassBatcher?
    /// The offload benchmarks run in the background on this model's experts.
    public let benchmarks: BenchmarkJobs

    /// Loads the model in `directory` (a model directory or a GGUF file) with `settings`; requests may ask for up to
    /// `maxTokensLimit` new tokens; generations decoding at once share their forward passes
    /// when `batching`.
    public init(directory: URL, settings: OffloadSettings, maxTokensLimit: Int, batching: Bool = true) throws {
        let modelDirectory = ModelDirectory(directory)
        guard let tokenizer = try modelDirectory.loadTokenizer() else {
            throw ServerSetupError("\(modelDirectory.tokenizer.path) does not exist: the server needs the model's tokenizer")
        }
        // A model without a template this renderer reproduces is served on /v1/completions only;
        // the chat endpoint refuses its requests, saying so.
        var chatTemplate: ChatTemplate?
        if GGUFFile.isGGUF(directory) {
            chatTemplate = try? ChatTemplate(config: TokenizerConfig(gguf: GGUFFile(url: directory)))
        } else if FileManager.default.fileExists(atPath: modelDirectory.tokenizerConfig.path) {
            chatTemplate = try? ChatTemplate(config: TokenizerConfig(contentsOf: modelDirectory.tokenizerConfig))
        }
        let offloaded = try OffloadedModel(directory: directory, settings: settings)
        // A GGUF file is named without its extension, as a model directory is by its name.
        let name = directory.standardizedFileURL.lastPathComponent
        id = GGUFFile.isGGUF(directory) && name.hasSuffix(".gguf") ? String(name.dropLast(5)) : name
        self.offloaded = offloaded
        self.tokenizer = tokenizer
        batcher = batching ? PassBatcher(model: offloaded.model) : nil
        benchmarks = BenchmarkJobs(directory: directory, template: settings)
        validator = RequestValidator(
            modelID: id, tokenizer: tokenizer, chatTemplate: chatTemplate, context: offloaded.model.summary.maxPositionEmbeddings,
            maxTokensLimit: maxTokensLimit)
    }

    /// Generates for `job` on the calling thread, handing each piece of text that may be sent to
    /// `emit` (stop texts held back and never sent) with the log-probabilities of the tokens
    /// whose text it completes (when the job asks for them), each forward pass's snapshot to
    /// `onSnapshot`, and stopping as soon as `isCancelled` says so (checked before every pass,
    /// the prompt's included).
    public func generate(
        _ job: CompletionJob, isCancelled: () -> Bool, onSnapshot: @escaping (OffloadSnapshot) -> Void = { _ in },
        emit: (String, [TokenLogprob]) -> Void
    ) throws -> GenerationOutcome {
        let request = GenerationRequest(
            promptIds: job.promptIds, maxTokens: job.maxTokens, sampling: job.sampling, ignoreEOS: job.ignoreEOS,
            topLogProbabilities: job.topLogprobs)
        var filter = StopSequenceFilter(stops: job.stop)
        // Each token's log-probabilities wait until its text is sent: the unicode scalars of the
        // answer before it and through it.
        var waiting: [(entry: TokenLogprob, start: Int, end: Int)] = []
        var received = 0, sent = 0
        func send(_ text: String, final: Bool = false) {
            sent += text.unicodeScalars.count
            // A token is sent once all its text is; when a stop text cut the answer, once any of it is.
            let count = waiting.prefix { final || $0.end <= sent || (filter.isStopped && $0.start < sent) }.count
            let entries = waiting.prefix(count).map(\.entry)
            waiting.removeFirst(count)
            if !text.isEmpty || !entries.isEmpty { emit(text, entries) }
        }
        let generator = OffloadedGenerator(offloaded: offloaded, tokenizer: tokenizer)
        generator.onSnapshot = onSnapshot
        generator.batcher = batcher
        let outcome = try generator.generate(request, isCancelled: isCancelled) { token in
            // The generator asks `isCancelled` before each pass; asking here too keeps the token
            // of the pass that ran meanwhile, and the decoder's last bytes, unsent.
            guard !filter.isStopped, !isCancelled() else { return false }
            let start = received
            received += token.text.unicodeScalars.count
            if let probabilities = token.logProbabilities {
                waiting.append((TokenLogprob(probabilities, id: token.id, tokenizer: tokenizer), start, received))
            }
            send(filter.append(token.text))
            return !filter.isStopped
        }
        let generation = outcome.generation
        // The generator reports a stop text (its callback said stop) as cancelled too.
        let cancelled = generation.stopReason == .cancelled && !filter.isStopped
        if !cancelled && !filter.isStopped { send(filter.finish(), final: true) }
        let reason: FinishReason? =
            cancelled
            ? nil : filter.isStopped || generation.stopReason == .stopToken || generation.stopReason == .stopString ? .stop : .length
        return GenerationOutcome(
            finishReason: reason, usage: Usage(promptTokens: job.promptIds.count, completionTokens: generation.ids.count),
            metrics: generation.metrics)
    }
}

/// A server that cannot start: a missing file, an invalid option.
public struct ServerSetupError: Error, CustomStringConvertible {
    /// What is wrong.
    public var description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}
