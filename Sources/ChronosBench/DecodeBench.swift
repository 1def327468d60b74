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

    /// A decode benchmark reporting to `report`.
    public init(report: BenchReport) {
        self.report = report
    }

    /// Benchmarks the model in `directory`, or a synthetic one of `shape` written to `keepingAt`
    /// (reused when it already holds one) or else to a temporary directory.
    public func run(directory: URL?, shape: SyntheticModel.MixtralShape, keepingAt kept: URL? = nil) throws {
        var temporary: URL?
        defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
        let modelDirectory: URL
        if let directory {
            modelDirectory = directory
        } else if let kept, FileManager.default.fileExists(atPath: ModelDirectory(kept).checkpoint.path) {
            modelDirectory = kept
        } else {
            let dir = kept ?? FileManager.default.temporaryDirectory.appendingPathComponent("chronos-bench-\(UUID().uuidString)")
            report.progress(
                "writing a random Mixtral-shaped model (hidden \(shape.hidden), \(shape.layers) layers, \(shape.experts) experts top-\(shape.topK), width \(shape.expertWidth), \(shape.dtype)) to \(dir.path)"
            )
            try SyntheticModel.writeMixtral(shape, to: dir)
            if kept == nil { temporary = dir }
            modelDirectory = dir
        }
        report.progress("loading \(modelDirectory.path)")
        let model = try ModelLoader.load(directory: modelDirectory)
        report.progress("streaming read over 1 GiB")
        let bandwidth = MemoryBandwidth.streamingRead()
        report.add(Measurement(name: "streaming read", value: bandwidth, unit: "GB/s"))

        let bytesPerToken = Self.bytesReadPerToken(model)
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

    /// Weight bytes one decode step must read: every dense weight except the embedding table
    /// (of which it reads one row, unless the output head shares it), plus top-k experts per MoE layer.
    public static func bytesReadPerToken(_ model: any LanguageModel) -> Int {
        let s = model.summary, p = model.parameterCounts
        let elementBytes = p.total > 0 ? Double(p.totalBytes) / Double(p.total) : 4
        let embedding = Int(Double(s.vocabSize * s.hiddenSize) * elementBytes)
        let embeddingRead = s.tiedEmbeddings ? 0 : embedding - Int(Double(s.hiddenSize) * elementBytes)
        let expertsTotal = s.expertsPerLayer.reduce(0, +)
        let moeLayers = s.expertsPerLayer.filter { $0 > 0 }.count
        let expertBytesPerToken = expertsTotal == 0 ? 0 : p.expertBytes / expertsTotal * s.expertsPerToken * moeLayers
        return p.denseBytes - embeddingRead + expertBytesPerToken
    }
}
