import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos eval`: held-out quality of a model and of its expert predictions.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Held-out cross-entropy of a model, and the recall of its lookahead head beside controls.")

    @Option(help: "Model directory (with tokenizer.json), or a GGUF file.") var model: String
    @Option(help: "Held-out JSONL ({\"text\": …} per line).") var data: String?
    @Option(help: "Instead of --data: the perplexity of this UTF-8 text file as llama.cpp's llama-perplexity measures it.")
    var text: String?
    @Option(parsing: .unconditional, help: "With --text: tokens per chunk (llama-perplexity's -c); the second half of each is scored.")
    var ctx = 512
    @Option(parsing: .unconditional, help: "With --text: at most this many chunks (default: all).") var chunks: Int?
    @Flag(help: "With --text: start the text and each chunk with the BOS token, as llama.cpp does where the vocabulary adds one.")
    var bos = false
    @Option(help: "Reference JSONL for the frequency baseline of expert use (default: --data).") var reference: String?
    @Option(parsing: .unconditional, help: "Tokens per evaluated sequence.") var seqLen = 256
    @Option(parsing: .unconditional, help: "Sequences to evaluate.") var sequences = 32
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var backend: BackendOption

    func validate() throws {
        guard (data == nil) != (text == nil) else { throw ValidationError("give exactly one of --data and --text") }
        try checkingOptions {
            try InvalidSetting.check("--ctx", ctx, in: 4...(1 << 20))
            try InvalidSetting.check("--chunks", chunks, in: 1...Int(Int32.max))
        }
    }

    func run() throws {
        try backend.apply()
        let loaded = try ModelArgument.load(model)
        guard let tokenizer = try ModelDirectory(path: model).loadTokenizer() else {
            throw ValidationError("\(model) has no \(ModelDirectory.Name.tokenizer)")
        }
        if let text { return try perplexity(of: text, model: loaded, tokenizer: tokenizer) }
        guard let data else { return }
        func packed(_ path: String) throws -> PackedSequences {
            let corpus = try TokenizedCorpus(
                jsonl: [URL(fileURLWithPath: path)], tokenizer: tokenizer, endOfText: loaded.summary.eosTokenIds.first)
            return PackedSequences(tokens: corpus.tokens, sequenceLength: seqLen)
        }
        let heldOut = try packed(data)
        let count = min(sequences, heldOut.count)
        let crossEntropy = try HeldOutScoring.crossEntropy(loaded, sequences: heldOut, count: count)
        var result: [String: Double] = ["heldout_cross_entropy": crossEntropy, "sequences": Double(count)]
        if let steps = loaded.summary.lookaheadSteps, steps > 0 {
            // Expert frequencies come from other text: the reference file, else the held-out
            // sequences after the evaluated ones.
            let referenceSequences = try reference.map(packed) ?? heldOut
            let start = reference == nil ? count : 0
            let referenceInputs = (start..<min(start + count, referenceSequences.count)).map(referenceSequences.inputs)
            for offset in 1...steps {
                let row = try LookaheadEvaluation.evaluate(
                    loaded, sequences: (0..<count).map(heldOut.inputs), reference: referenceInputs,
                    offset: offset)
                result["lookahead_t\(offset)_recall"] = row.head.recall ?? 0
                result["lookahead_t\(offset)_shuffled_recall"] = row.shuffled.recall ?? 0
                result["lookahead_t\(offset)_frequency_recall"] = row.frequency.recall ?? 0
                result["lookahead_t\(offset)_reuse_recall"] = row.reuse.recall ?? 0
            }
        }
        if json {
            return try printJSON(result)
        }
        print(
            String(
                format: "held-out cross-entropy %.4f nats/token (perplexity %.1f) over %d sequences of %d tokens",
                crossEntropy, Foundation.exp(crossEntropy), count, seqLen))
        if let steps = loaded.summary.lookaheadSteps, steps > 0 {
            print("lookahead recall@\(loaded.summary.expertsPerToken) of the experts each MoE layer chose at t+k:")
            print("  k   head    shuffled future   most frequent   reuse of t's experts")
            for k in 1...steps {
                print(
                    String(
                        format: "  %d   %.3f   %.3f             %.3f           %.3f", k,
                        result["lookahead_t\(k)_recall"]!, result["lookahead_t\(k)_shuffled_recall"]!,
                        result["lookahead_t\(k)_frequency_recall"]!, result["lookahead_t\(k)_reuse_recall"]!))
            }
        }
    }

    /// `--text`: llama.cpp's perplexity protocol on a plain text file.
    private func perplexity(of path: String, model: any LanguageModel, tokenizer: Tokenizer) throws {
        let contents = try TextInput.read(path: path)
        var bosId: Int?
        if bos {
            guard let id = model.summary.bosTokenId else { throw ValidationError("--bos: \(self.model) names no BOS token") }
            bosId = id
        }
        let tokens = (bosId.map { [$0] } ?? []) + tokenizer.encode(contents, matchSpecialTokens: false)
        guard tokens.count >= 2 * ctx else {
            throw ValidationError("\(path) holds \(tokens.count) tokens; --ctx \(ctx) needs at least \(2 * ctx)")
        }
        let result = try HeldOutScoring.chunkedCrossEntropy(model, tokens: tokens, context: ctx, chunks: chunks, bos: bosId) {
            done, total in
            FileHandle.standardError.write(Data("\r… chunk \(done)/\(total)".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        if json {
            return try printJSON([
                "cross_entropy": result.crossEntropy, "perplexity": Foundation.exp(result.crossEntropy),
                "chunks": Double(result.chunks), "scored_tokens": Double(result.tokens)
            ])
        }
        print(
            String(
                format: "perplexity %.4f (%.5f nats/token) over %d chunks of %d tokens, %d tokens scored",
                Foundation.exp(result.crossEntropy), result.crossEntropy, result.chunks, ctx, result.tokens))
    }

    /// Prints `object` as one pretty-printed JSON object with sorted keys.
    private func printJSON(_ object: [String: Double]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
