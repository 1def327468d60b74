import ArgumentParser
import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosRouting
import ChronosTraining
import Foundation

/// `chronos trace`: record a model's routing over text as an activation trace.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Record, per token and MoE layer, the router's top-k experts and probabilities over JSONL text.",
        discussion: """
            Writes a binary activation trace (layout in ActivationTrace): per token, the top-k experts \
            of every MoE layer with their router probabilities and the hidden state after one decoder \
            layer (--hidden-layer), which the predictors trained from the trace then read at run time. \
            `chronos cluster`, `chronos train intent` and `chronos train lookahead` read it. \
            With `--decode N` the last N tokens of every sequence are the model's own greedy \
            continuation of the text before them: the routing a lookahead head meets while the \
            model generates, rather than while it reads.
            """)

    @Option(help: "Model directory (with tokenizer.json).") var model: String
    @Option(help: "JSONL text ({\"text\": …} per line).") var data: String
    @Option(help: "Where to write the trace.") var out: String
    @Option(parsing: .unconditional, help: "Tokens per traced sequence.") var seqLen = 256
    @Option(parsing: .unconditional, help: "Sequences to trace (at most as many as the text holds).") var sequences = 32
    @Option(parsing: .unconditional, help: "End each sequence with this many tokens the model decodes greedily in place of the text's.")
    var decode = 0
    @Option(
        help: ArgumentHelp(
            "Decoder layer after which the hidden state is recorded (default: 1, or 0 in a one-layer model).",
            discussion: "A later layer predicts better; an earlier one leaves more of each pass to load under."))
    var hiddenLayer: Int?
    @OptionGroup var backend: BackendOption

    func validate() throws {
        guard seqLen > 0 else { throw ValidationError("--seq-len must be positive") }
        guard sequences > 0 else { throw ValidationError("--sequences must be positive") }
        guard decode >= 0, decode < seqLen else { throw ValidationError("--decode must be at least 0 and below --seq-len") }
        guard hiddenLayer.map({ $0 >= 0 }) ?? true else { throw ValidationError("--hidden-layer must be at least 0") }
    }

    func run() throws {
        try backend.apply()
        let loaded = try ModelArgument.load(model)
        guard loaded.summary.isMixtureOfExperts else { throw ValidationError("\(model) has no MoE layers to trace") }
        guard let tokenizer = try ModelDirectory(path: model).loadTokenizer() else {
            throw ValidationError("\(model) has no \(ModelDirectory.Name.tokenizer)")
        }
        let corpus = try TokenizedCorpus(
            jsonl: [URL(fileURLWithPath: data)], tokenizer: tokenizer, endOfText: loaded.summary.eosTokenIds.first)
        let packed = PackedSequences(tokens: corpus.tokens, sequenceLength: seqLen)
        let count = min(sequences, packed.count)
        guard count > 0 else { throw ValidationError("\(data) holds fewer than \(seqLen + 1) tokens") }
        var inputs = (0..<count).map(packed.inputs)
        if decode > 0 {
            let generator = Generator(model: loaded, tokenizer: nil)
            for index in inputs.indices {
                let prompt = Array(inputs[index].prefix(seqLen - decode))
                let request = GenerationRequest(promptIds: prompt, maxTokens: decode, ignoreEOS: true)
                inputs[index] = prompt + (try generator.generate(request).ids)
                FileHandle.standardError.write(Data("… decoded \(index + 1)/\(count) continuations\n".utf8))
            }
        }
        let layer = hiddenLayer ?? min(1, loaded.summary.expertsPerLayer.count - 1)
        let trace = try ActivationTracer.trace(loaded, sequences: inputs, hiddenLayer: layer) { done in
            FileHandle.standardError.write(Data("… traced \(done)/\(count) sequences\n".utf8))
        }
        try trace.write(to: URL(fileURLWithPath: out))
        print(
            "traced \(trace.tokens.count) tokens in \(count) sequences over \(trace.layers.count) MoE layers (top-\(trace.expertsPerToken)), hidden state after layer \(layer) of width \(trace.hiddenSize), into \(out)"
        )
    }
}
