import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// `chronos bench decode`: decode tokens/s with every weight resident, beside the bound set
/// by the bytes one token must read and the streaming-read bandwidth measured in the same run.
public struct DecodeBench {
    /// Where the measurements go.
    public let report: BenchReport
    /// Prompt tokens processed before decoding.
    public var promptTokens = 16
    /// Tokens decoded after the prompt.
    public var decodeTokens = 64
    /// A recipe to quantise the model with before it is measured (into a directory beside a
    /// kept synthetic model, reused when there, or else a temporary one); nil measures it as stored.
    public var recipe: QuantizationRecipe?

    /// A decode benchmark reporting to `report`.
    public init(report: BenchReport) {
        self.report = report
    }

    /// Benchmarks the model in `directory`, or a synthetic one of `shape` in `dtype` written to
    /// `keepingAt` (reused when it already holds one) or else to a temporary directory.
    public func run(directory: URL?, shape: SyntheticModel.Shape, dtype: DType, keepingAt kept: URL? = nil) throws {
        var temporary: URL?
        defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
        let modelDirectory: URL
        if let directory {
            modelDirectory = directory
        } else if let kept, FileManager.default.fileExists(atPath: ModelDirectory(kept).checkpoint.path) {
            modelDirectory = kept
        } else {
            let dir = kept ?? FileManager.default.temporaryDirectory.appendingPathComponent("chronos-bench-\(UUID().uuidString)")
            report.progress("writing a random \(shape.summary) model in \(dtype) to \(dir.path)")
            try SyntheticModel.write(config: shape.config, dtype: dtype, to: dir)
            if kept == nil { temporary = dir }
            modelDirectory = dir
        }
        let measured = try quantizedCopy(of: modelDirectory, keptBeside: directory == nil ? kept : nil, temporary: &temporary)
        report.progress("loading \(measured.path)")
        let model = try ModelLoader.load(directory: measured)
        report.progress("streaming read over 1 GiB")
        let bandwidth = MemoryBandwidth.streamingRead()
        report.add(Measurement(name: "streaming read", value: bandwidth, unit: "GB/s"))

        let bytesPerToken = model.weightBytesPerToken
        report.add(Measurement(name: "weight bytes read per token", value: Double(bytesPerToken) / 1e6, unit: "MB"))
        let bound = bandwidth * 1e9 / Double(bytesPerToken)

        report.progress("decoding \(decodeTokens) tokens after a \(promptTokens)-token prompt")
        let vocab = model.summary.vocabSize
        let prompt = (0..<promptTokens).map { ($0 * 7919 + 13) % vocab }
        let generator = Generator(model: model, tokenizer: nil)
        _ = try generator.generate(GenerationRequest(promptIds: prompt, maxTokens: 4, ignoreEOS: true))  // warm-up
        let result = try generator.generate(GenerationRequest(promptIds: prompt, maxTokens: decodeTokens, ignoreEOS: true))
        report.add(Measurement(name: "prefill", value: result.metrics.prefillTokensPerSecond, unit: "tokens/s"))
        report.add(
            Measurement(
                name: "decode (all resident)", value: result.metrics.decodeTokensPerSecond, unit: "tokens/s",
                bound: bound, boundName: "bytes per token / read bandwidth"))
    }

    /// `directory` quantised by `recipe` (the directory itself without one): a copy beside
    /// `kept` named after the recipe, reused when already there, or else a temporary copy that
    /// `temporary` (or a folder holding it) then names for removal.
    private func quantizedCopy(of directory: URL, keptBeside kept: URL?, temporary: inout URL?) throws -> URL {
        guard let recipe else { return directory }
        let target: URL
        if let kept {
            target = kept.deletingLastPathComponent().appendingPathComponent("\(kept.lastPathComponent)-\(recipe.rawValue)")
            if FileManager.default.fileExists(atPath: ModelDirectory(target).checkpoint.path) { return target }
        } else {
            let folder = temporary ?? FileManager.default.temporaryDirectory.appendingPathComponent("chronos-bench-\(UUID().uuidString)")
            if temporary == nil {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                temporary = folder
            }
            target = folder.appendingPathComponent(recipe.rawValue)
        }
        report.progress("quantising \(directory.path) with \(recipe.rawValue) to \(target.path)")
        var reported = 0
        let outcome = try ModelQuantizer.quantize(directory, recipe: recipe, to: target) { written, total in
            let percent = written * 100 / total
            guard percent >= reported + 20 || written == total else { return }
            reported = percent
            report.progress("quantised \(written) of \(total) tensors")
        }
        report.progress(String(format: "%.2f bits a weight", outcome.bitsPerWeight))
        return target
    }
}
