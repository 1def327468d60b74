import ChronosFormats
import ChronosTraining
import Foundation

/// `chronos bench tokenizer`: encoding and decoding MB/s of a tokenizer on a real corpus, and
/// the time to train a BPE vocabulary on it.
public struct TokenizerBench {
    /// Where the measurements go.
    public let report: BenchReport

    /// A tokenizer benchmark reporting to `report`.
    public init(report: BenchReport) {
        self.report = report
    }

    /// Encodes and decodes the corpus at `corpus` with `tokenizer` (checking that decoding gives
    /// it back), then trains a `vocabularySize`-token vocabulary on it.
    public func run(tokenizer: Tokenizer, corpus: URL, vocabularySize: Int) throws {
        report.progress("reading \(corpus.path)")
        let texts = try Self.texts(at: corpus)
        let text = texts.joined(separator: "\n\n")
        let megabytes = Double(text.utf8.count) / 1e6
        var ids: [Int] = []
        report.progress(String(format: "encoding %.2f MB", megabytes))
        let cold = Stopwatch.time { ids = tokenizer.encode(text) }
        let warm = Stopwatch.time { ids = tokenizer.encode(text) }
        var decoded = ""
        let decoding = try Stopwatch.timeThrowing { decoded = try tokenizer.decode(ids) }
        guard decoded == text else { throw BenchError.failed("decoding the encoded corpus did not give the corpus back") }
        report.add(Measurement(name: "encode, first pass", value: megabytes / cold, unit: "MB/s"))
        report.add(Measurement(name: "encode, word cache warm", value: megabytes / warm, unit: "MB/s"))
        report.add(Measurement(name: "decode", value: megabytes / decoding, unit: "MB/s"))
        report.progress("training a \(vocabularySize)-token BPE vocabulary")
        var trainer = TokenizerTrainer(vocabularySize: vocabularySize)
        let training = try Stopwatch.timeThrowing {
            trainer.add(contentsOf: texts)
            _ = try trainer.train()
        }
        report.add(Measurement(name: "train \(vocabularySize)-token BPE", value: training, unit: "s"))
    }

    /// The documents of a `.jsonl` file, a text file, or a directory of `.txt` files.
    public static func texts(at url: URL) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw BenchError.failed("\(url.path) does not exist")
        }
        if isDirectory.boolValue {
            return try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "txt" }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
                .map { try String(contentsOf: $0, encoding: .utf8) }
        }
        guard url.pathExtension == "jsonl" else { return [try String(contentsOf: url, encoding: .utf8)] }
        let reader = try JSONLTextReader(url: url)
        var texts: [String] = []
        while let text = try reader.next() { texts.append(text) }
        return texts
    }
}
