import ChronosFormats
import ChronosModel
import ChronosRouting
import ChronosStorage
import ChronosTraining
import Foundation

/// libFuzzer entry points for every file format Chronos reads, built only by `scripts/fuzz.sh`
/// (with `-sanitize=fuzzer,address`). `CHRONOS_FUZZ_TARGET` picks the format and
/// `CHRONOS_FUZZ_MODEL` names a packed model directory that the file-based targets copy into
/// a scratch directory once and then overwrite one file of per input. Every input must end in
/// a value or a thrown error: a trap, a leak of memory safety or a hang is a finding.

/// The formats, by `CHRONOS_FUZZ_TARGET`.
enum FuzzTarget: String, CaseIterable {
    case safetensors, gguf, config, tokenizer, manifest, trace, predictor, jsonl, pipeline
}

/// What the targets share, made once before the first input.
final class FuzzSetup: @unchecked Sendable {
    static let shared = FuzzSetup()

    let target: FuzzTarget
    /// A scratch copy of the model directory (on /dev/shm where it exists).
    let model: URL
    let scratch: URL
    let summary: ModelSummary

    private init() {
        let environment = ProcessInfo.processInfo.environment
        guard let name = environment["CHRONOS_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set CHRONOS_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue))\n".utf8))
            exit(2)
        }
        self.target = target
        let source = URL(fileURLWithPath: environment["CHRONOS_FUZZ_MODEL"] ?? "models/austen-moe")
        let base =
            FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        scratch = base.appendingPathComponent("chronos-fuzz-\(target.rawValue)-\(getpid())")
        model = scratch.appendingPathComponent("model")
        try? FileManager.default.removeItem(at: scratch)
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: source, to: model)
            summary = try ModelLoader.load(directory: model).summary
        } catch {
            FileHandle.standardError.write(Data("cannot prepare \(source.path): \(error)\n".utf8))
            exit(2)
        }
        atexit { try? FileManager.default.removeItem(at: FuzzSetup.shared.scratch) }
    }

    /// Writes `data` over `name` in the scratch model directory and returns its URL.
    func replace(_ name: String, with data: Data) -> URL {
        let url = model.appendingPathComponent(name)
        try? data.write(to: url)
        return url
    }

    /// Runs the target on one input; every error it throws is an accepted outcome.
    func run(_ data: Data) {
        switch target {
        case .safetensors:
            let url = scratch.appendingPathComponent("input.safetensors")
            try? data.write(to: url)
            if let file = try? SafetensorsFile(url: url) {
                for name in file.tensorNames { _ = try? file.tensor(named: name).floats.first }
            }
        case .gguf:
            let url = scratch.appendingPathComponent("input.gguf")
            try? data.write(to: url)
            if let file = try? GGUFFile(url: url) {
                for name in file.tensorNames { _ = try? file.tensor(named: name).floats.first }
                if let tokenizer = try? Tokenizer(gguf: file) {
                    _ = try? tokenizer.decode(tokenizer.encode("It is a truth universally acknowledged, ü 🎉 \u{0}"))
                }
                if let model = try? ModelRegistry.load(directory: url) {
                    _ = try? model.forward([0, 1], cache: model.makeCache())
                }
            }
        case .config:
            _ = replace("config.json", with: data)
            _ = try? ModelLoader.load(directory: model)
        case .tokenizer:
            if let tokenizer = try? Tokenizer(data: data) {
                let ids = tokenizer.encode("It is a truth universally acknowledged, ü 🎉 \u{0}")
                _ = try? tokenizer.decode(ids)
            }
        case .manifest:
            _ = replace("expert_cache/cluster_manifest.json", with: data)
            if let cache = try? ExpertCache.open(modelDirectory: model) {
                _ = try? cache.readAllExperts()
            }
        case .trace:
            if let trace = try? ActivationTrace.decode(data, path: "input.trace") {
                _ = ExpertClustering.perLayer(trace)
                _ = PredictorEvaluation.usage(trace)
            }
        case .predictor:
            _ = replace("lookahead.safetensors", with: data)
            _ = try? TrainedLookaheadHead.load(from: model, summary: summary)
            _ = replace("intent.safetensors", with: data)
            _ = try? IntentClassifier.load(from: model, summary: summary)
        case .jsonl:
            let url = scratch.appendingPathComponent("input.jsonl")
            try? data.write(to: url)
            try? JSONLinesFile.forEachObject(at: url) { _, _ in }
            if let reader = try? JSONLTextReader(url: url) {
                while let line = try? reader.next() { _ = line }
            }
        case .pipeline:
            _ = try? PipelineConfiguration(json: data, baseDirectory: scratch)
        }
    }
}
