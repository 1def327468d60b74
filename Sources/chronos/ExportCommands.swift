import ArgumentParser
import ChronosStorage
import Foundation

extension ModelExport.Format: ExpressibleByArgument {}

/// `chronos export`: a Chronos-native model as a checkpoint PyTorch engines load.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a Chronos-native model as a transformers checkpoint, for training and serving elsewhere.",
        discussion: """
            --to transformers writes the checkpoint with config.json naming modeling_chronos.py \
            (written beside it) in auto_map: AutoModelForCausalLM.from_pretrained(OUT, \
            trust_remote_code=True) loads it, and scripts/train_distributed.py trains it under torchrun. \
            --to deepseek_v2 writes a plain DeepSeek-V2 checkpoint, which transformers, vLLM, SGLang and \
            llama.cpp's converter load with no custom code, for models whose every layer is latent \
            attention with DeepSeek-V2's routing (train pretrain --attention mla); the lookahead head \
            travels beside it as chronos_lookahead.safetensors. The tokenizer and the trained \
            predictors are copied. A stripped checkpoint's experts come from its expert cache.

            The directory is written into a temporary folder beside --out and renamed into place \
            when complete; --out must not exist. `chronos import` reads either layout back.
            """)

    @Argument(help: "Chronos-native model directory (float weights).") var directory: String
    @Option(name: .customLong("to"), help: "Layout: transformers or deepseek_v2.") var format: ModelExport.Format
    @Option(help: "The new directory (must not exist).") var out: String

    func validate() throws {
        if FileManager.default.fileExists(atPath: out) {
            throw ValidationError("--out '\(out)' exists: export writes a new directory and never replaces one")
        }
    }

    func run() throws {
        let progress = TensorProgress(verb: "exported")
        let outcome = try ModelExport.export(
            URL(fileURLWithPath: directory), as: format, to: URL(fileURLWithPath: out), progress: progress.report)
        print("exported \(directory) as \(format.rawValue) into \(out): \(outcome.tensors) tensors, \(InspectCommand.bytes(outcome.bytes))")
    }
}

/// `chronos import`: a transformers checkpoint of a Chronos model back into a Chronos model directory.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read a transformers checkpoint of a Chronos model (chronos or deepseek_v2) into a Chronos model directory.",
        discussion: """
            Reads what `chronos export` writes, and what PyTorch trained from it (scripts/train_distributed.py \
            or save_pretrained): model_type chronos, or deepseek_v2 in the shape --to deepseek_v2 writes \
            (no query latent, greedy softmax routing, no dense first layers). The result is ready for \
            pack, the predictors and offloaded generation. The directory is written into a temporary \
            folder beside --out and renamed into place when complete; --out must not exist.
            """)

    @Argument(help: "The transformers checkpoint directory.") var directory: String
    @Option(help: "The new Chronos model directory (must not exist).") var out: String

    func validate() throws {
        if FileManager.default.fileExists(atPath: out) {
            throw ValidationError("--out '\(out)' exists: import writes a new directory and never replaces one")
        }
    }

    func run() throws {
        let progress = TensorProgress(verb: "imported")
        let outcome = try ModelExport.importModel(URL(fileURLWithPath: directory), to: URL(fileURLWithPath: out), progress: progress.report)
        print("imported \(directory) into \(out): \(outcome.tensors) tensors, \(InspectCommand.bytes(outcome.bytes))")
        if outcome.initialisedLookahead {
            print(
                "the checkpoint had no chronos_lookahead.safetensors: the lookahead head is freshly initialised; train it with `chronos train lookahead`"
            )
        }
    }
}

/// A progress line on standard error every tenth of the tensors written.
final class TensorProgress {
    private let verb: String
    private let start = Date()
    private var reported = 0

    init(verb: String) { self.verb = verb }

    func report(written: Int, total: Int) {
        let percent = written * 100 / max(total, 1)
        guard percent >= reported + 10 || written == total else { return }
        reported = percent
        FileHandle.standardError.write(
            Data(
                String(format: "… %@ %d of %d tensors (%d%%) in %.1f s\n", verb, written, total, percent, Date().timeIntervalSince(start))
                    .utf8))
    }
}
