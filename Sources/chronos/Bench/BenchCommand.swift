import ArgumentParser
import ChronosTensor

/// `chronos bench …`: performance measurements with their bounds.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure performance against bounds measured in the same run.",
        subcommands: [Kernels.self])

    /// `chronos bench kernels`.
    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Memory bandwidth, matrix-vector GB/s per dtype, GEMM GFLOP/s per backend.")

        @OptionGroup var backend: BackendOption
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            try backend.apply()
            let report = BenchReport(json: json)
            KernelBench(report: report).run()
            try report.finish(context: [
                "threads": String(ThreadPool.shared.threadCount),
                "backend": Backends.current.name,
            ])
        }
    }
}
