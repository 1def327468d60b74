import ArgumentParser
import ChronosTensor

/// `chronos bench …`: performance measurements with their bounds.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure performance against bounds measured in the same run.",
        subcommands: [Kernels.self, Decode.self, Train.self])

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

    /// `chronos bench decode`.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode tokens/s with every weight resident, beside the memory-bandwidth bound.",
            discussion: "Without --model, writes a random Mixtral-shaped bf16 model (hidden 1024, 8 layers, 8 experts top-2, expert width 2816) to a temporary directory and removes it afterwards.")

        @Option(help: "Benchmark this model directory instead of a synthetic model.") var model: String?
        @Option(help: "Tokens to decode.") var tokens = 64
        @OptionGroup var backend: BackendOption
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            try backend.apply()
            let report = BenchReport(json: json)
            var bench = DecodeBench(report: report)
            bench.decodeTokens = tokens
            try bench.run(directory: model, shape: DecodeBench.Shape())
            try report.finish(context: ["threads": String(ThreadPool.shared.threadCount), "backend": Backends.current.name])
        }
    }

    /// `chronos bench train`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training tokens/s of the reference configuration on every available backend, and peak memory.",
            discussion: "Reference: vocab 6400, hidden 256, 4 layers, 8 heads / 4 KV heads, 8 experts top-2 of width 512, sequence 256, batch 8, f32.")

        @Option(help: "Timed optimiser steps per backend (after one warm-up step).") var steps = 3
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            let report = BenchReport(json: json)
            try TrainBench(report: report, steps: steps).run()
            try report.finish(context: ["threads": String(ThreadPool.shared.threadCount)])
        }
    }
}
