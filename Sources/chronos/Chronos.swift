import ArgumentParser

/// The `chronos` command-line tool.
@main
struct Chronos: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chronos",
        abstract: "Storage-aware Mixture-of-Experts inference and training.",
        subcommands: [GenerateCommand.self, PackCommand.self, TokenizeCommand.self, InspectCommand.self, DataCommand.self, TokenizerCommand.self, TrainCommand.self, PipelineCommand.self, EvalCommand.self, TraceCommand.self, ClusterCommand.self, BackendsCommand.self, Bench.self])
}
