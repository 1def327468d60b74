import ArgumentParser
import ChronosFormats
import ChronosTraining
import Foundation

/// `chronos data …`: preparing training corpora.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Prepare training corpora.", subcommands: [Austen.self])

    /// `chronos data austen`.
    struct Austen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn Jane Austen's novels (*.txt) into pretraining JSONL with a held-out split.")

        @Option(help: "Directory of the novels as plain text.") var source: String
        @Option(help: "Directory to write train.jsonl and heldout.jsonl into.") var out: String
        @Option(parsing: .unconditional, help: "Fraction of each novel's paragraphs (its end) held out.") var heldOut = 0.05

        func run() throws {
            let summary = try AustenCorpus.build(
                from: URL(fileURLWithPath: source), into: URL(fileURLWithPath: out),
                heldOutFraction: heldOut)
            print(
                "\(summary.novels.count) novels: \(summary.trainDocuments) training documents (\(summary.trainBytes) bytes), "
                    + "\(summary.heldOutDocuments) held out (\(summary.heldOutBytes) bytes) in \(out)")
        }
    }
}

/// `chronos tokenizer …`: building tokenizers.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Build tokenizers.", subcommands: [Train.self])

    /// `chronos tokenizer train`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a byte-level BPE tokenizer on a JSONL corpus and write tokenizer.json and tokenizer_config.json.")

        @Option(help: "JSONL file whose lines are {\"text\": …}.") var data: String
        @Option(parsing: .unconditional, help: "Vocabulary size, special tokens included.") var vocabSize: Int
        @Option(help: "Directory to write the tokenizer into.") var out: String
        @Flag(help: "Skip malformed JSONL lines (counted and reported) instead of failing.") var skipBadLines = false

        func validate() throws {
            let minimum = 256 + TokenizerTrainer.chatSpecialTokens.count
            guard vocabSize >= minimum else {
                throw ValidationError("--vocab-size must be at least \(minimum): 256 byte tokens plus the special tokens")
            }
        }

        /// The tokenizer in `directory`, trained there on `data` first unless it already holds
        /// one: what a training command uses when it is given no tokenizer.
        static func trainedTokenizer(data: String, vocabSize: Int, skipBadLines: Bool = false, into directory: URL) throws -> URL {
            if ModelDirectory(directory).hasTokenizer { return directory }
            print("training a \(vocabSize)-token tokenizer on \(data)")
            let command = try parse(
                ["--data", data, "--vocab-size", String(vocabSize), "--out", directory.path] + (skipBadLines ? ["--skip-bad-lines"] : []))
            try command.validate()
            try command.run()
            return directory
        }

        func run() throws {
            var trainer = TokenizerTrainer(vocabularySize: vocabSize)
            let read = try trainer.add(jsonl: URL(fileURLWithPath: data), skipBadLines: skipBadLines)
            if read.skippedLines > 0 { print("skipped \(read.skippedLines) malformed lines of \(data)") }
            print("\(read.documents) documents, \(trainer.distinctWordCount) distinct words")
            let progress = ProgressLine()
            let tokenizer = try trainer.train { learned, wanted in
                progress.update("merges \(learned)/\(wanted)", fraction: Double(learned) / Double(max(wanted, 1)))
            }
            progress.finish("merges done")
            let directory = URL(fileURLWithPath: out)
            try tokenizer.writeChatTokenizer(into: directory)
            print("wrote \(directory.path)/tokenizer.json (\(tokenizer.vocabularySize) tokens) and tokenizer_config.json")
        }
    }
}

/// A single status line on standard error, redrawn in place at most ten times a second.
final class ProgressLine {
    private var lastDraw = 0.0
    private let start = Date()

    /// Redraws the line with `text` and, when known, the elapsed time and an estimate of the rest.
    func update(_ text: String, fraction: Double? = nil, force: Bool = false) {
        let now = Date().timeIntervalSince(start)
        guard force || now - lastDraw >= 0.1 else { return }
        lastDraw = now
        var line = "\r\u{1B}[2K\(text)  \(Self.duration(now))"
        if let fraction, fraction > 0.001, fraction < 1 {
            line += " elapsed, ETA \(Self.duration(now / fraction - now))"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Draws `text` as the final state of the line and moves to a fresh one.
    func finish(_ text: String) {
        update(text, force: true)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
