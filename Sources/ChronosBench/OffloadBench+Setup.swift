import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// What the offload benchmark runs on: the packed model and the prompts.
extension OffloadBench {
    /// The packed model to benchmark: `model` when given; else a random Chronos-native model in
    /// `synthetic` (reused when it already holds a packed one) or in a new temporary directory,
    /// written and packed here. `temporary` is the directory the caller removes afterwards.
    public static func modelDirectory(_ model: URL?, synthetic: URL?, progress: (String) -> Void) throws -> (
        directory: URL, temporary: URL?
    ) {
        if let model { return (model, nil) }
        if let synthetic, (try? ExpertCache.open(modelDirectory: synthetic)) != nil { return (synthetic, nil) }
        let directory = synthetic ?? FileManager.default.temporaryDirectory.appendingPathComponent("chronos-offload-\(UUID().uuidString)")
        progress("writing a random Chronos-native model to \(directory.path)")
        try SyntheticModel.writeChronos(to: directory)
        progress("packing its experts")
        try ExpertCachePacker.pack(directory: directory, model: ModelRegistry.load(directory: directory))
        return (directory, synthetic == nil ? directory : nil)
    }

    /// The built-in prompts: held-out-looking snippets tokenised with the model's tokenizer, or
    /// seeded random ids when it has none.
    public static func defaultPrompts(directory: URL, vocab: Int) throws -> [[Int]] {
        let snippets = [
            "The committee met again on Thursday to review the survey of the northern coastline, where erosion had",
            "def merge_intervals(intervals):\n    intervals.sort(key=lambda x: x[0])\n    merged = []\n    for",
            "She folded the letter twice, set it beside the candle, and for a long while said nothing to her sister about",
            "In a mixture-of-experts layer, each token is routed to a small number of feed-forward networks chosen by"
        ]
        let url = ModelDirectory(directory).tokenizer
        if FileManager.default.fileExists(atPath: url.path) {
            let tokenizer = try Tokenizer(contentsOf: url)
            let encoded = snippets.map { tokenizer.encode($0).filter { $0 < vocab } }.filter { !$0.isEmpty }
            if !encoded.isEmpty { return encoded }
        }
        var generator = SplitMix64(seed: 2024)
        return (0..<snippets.count).map { _ in (0..<24).map { _ in Int(generator.next() % UInt64(vocab)) } }
    }

    /// Prompts from `file`, one per line (blank lines skipped): text encoded with the model's
    /// tokenizer, or comma-separated ids for a model without `tokenizer.json`.
    public static func prompts(file: URL, directory: URL, vocab: Int) throws -> [[Int]] {
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init).filter {
            !$0.trimmingCharacters(in: .whitespaces).isEmpty
        }
        let url = ModelDirectory(directory).tokenizer
        guard FileManager.default.fileExists(atPath: url.path) else {
            return try lines.map { line in
                try line.split(separator: ",").map { part in
                    guard let id = Int(part.trimmingCharacters(in: .whitespaces)) else {
                        throw BenchError.failed(
                            "\(file.path): '\(part)' is not a token id (the model has no tokenizer.json, so each line must be comma-separated integers)"
                        )
                    }
                    return id
                }
            }
        }
        let tokenizer = try Tokenizer(contentsOf: url)
        return lines.map { tokenizer.encode($0) }.filter { !$0.isEmpty }
    }

    /// The prompts that hold at least `promptTokens + tokens` tokens, each cut to its first
    /// `promptTokens`, with the `tokens` after them as its held-out reference continuation; nil
    /// when no prompt is that long.
    public static func heldOutSplit(_ prompts: [[Int]], promptTokens: Int, tokens: Int) -> (prompts: [[Int]], references: [[Int]])? {
        let long = prompts.filter { $0.count >= promptTokens + tokens }
        guard !long.isEmpty else { return nil }
        return (long.map { Array($0.prefix(promptTokens)) }, long.map { Array($0[promptTokens..<(promptTokens + tokens)]) })
    }
}
