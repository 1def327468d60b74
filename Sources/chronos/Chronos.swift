import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor

/// The `chronos` command-line tool.
@main
struct Chronos: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chronos",
        abstract: "Storage-aware Mixture-of-Experts inference and training.",
        subcommands: [
            GenerateCommand.self, PackCommand.self, TokenizeCommand.self, InspectCommand.self, DataCommand.self, TokenizerCommand.self,
            TrainCommand.self, PipelineCommand.self, EvalCommand.self, TraceCommand.self, ClusterCommand.self, BackendsCommand.self,
            QuantizeCommand.self, ExportCommand.self, ImportCommand.self, TuneCommand.self, CompareCommand.self,
            Bench.self, DocsCommand.self
        ])

    /// Refuses invalid `CHRONOS_*` environment variables before any command reads them, then
    /// parses and runs the command; a file-system error is reported as its path and reason.
    static func main() {
        do {
            _ = try Backends.environmentBackend()
            _ = try InstructionSet.environmentSet()
            _ = try ThreadPool.environmentThreadCount()
            _ = try DiskModel.fromEnvironment()
        } catch {
            exit(withError: ValidationError("\(error)"))
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: FileSystemError(error) ?? error)
        }
    }
}

/// The command-line names of settings that library types check under their configuration
/// names; a name not listed here is its configuration name in kebab case (`top_p` → `--top-p`).
private let optionNames: [String: String] = [
    "batch_size": "--batch", "accumulation": "--accumulate", "learning_rate": "--lr", "warmup_steps": "--warmup",
    "clip_norm": "--clip", "fallback_mask_probability": "--fallback-mask-prob", "generation_examples": "--gen-examples",
    "staging_fraction": "--staging", "latency_ms": "--ssd-ms", "bandwidth_mbps": "--ssd-mbps",
    "hidden_size": "--hidden", "num_hidden_layers": "--layers", "num_attention_heads": "--heads",
    "num_key_value_heads": "--kv-heads", "kv_latent_dim": "--kv-latent", "sliding_window": "--window",
    "num_experts": "--experts", "num_experts_per_tok": "--top-k", "num_shared_experts": "--shared-experts",
    "moe_intermediate_size": "--expert-width", "shared_expert_intermediate_size": "--shared-width",
    "lookahead_steps": "--lookahead", "vocab_size": "--vocab-size", "model size": "model size"
]

/// Runs `body`, which checks settings that came from command-line options, and rethrows a
/// setting or configuration-field error as a usage error under the option's name.
func checkingOptions(_ body: () throws -> Void) throws {
    func option(_ name: String) -> String { optionNames[name] ?? InvalidSetting.optionName(name) }
    do {
        try body()
    } catch let invalid as InvalidSetting {
        throw ValidationError(invalid.renamed(option).description)
    } catch let ModelError.malformedConfig(_, field, reason) {
        throw ValidationError("\(option(field)) \(reason)")
    }
}
