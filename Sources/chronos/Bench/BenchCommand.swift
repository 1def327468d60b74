import ArgumentParser
import ChronosBench
import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosOptions
import ChronosStorage
import ChronosTensor
import Foundation

extension SyntheticModel.Shape: ExpressibleByArgument {}

/// `chronos bench …`: performance measurements with their bounds.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure performance against bounds measured in the same run.",
        subcommands: [Kernels.self, Decode.self, Train.self, Offload.self, TokenizerSpeed.self, TPE.self])

    /// `chronos bench kernels`.
    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Memory bandwidth, matrix-vector GB/s per weight type, GEMM GFLOP/s per backend.")

        @Option(
            help: ArgumentHelp(
                "Weight types whose matrix-vector GB/s is measured, comma-separated: f32, bf16, f16 and the block formats (q8_0 … q6_k).",
                valueName: "types"))
        var matvecTypes = KernelBench.defaultMatvecTypes.map(\.rawValue).joined(separator: ",")
        @Flag(help: "Measure only bandwidth and matrix-vector products, not compute peaks or GEMMs.") var matvecOnly = false
        @OptionGroup var backend: BackendOption
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        /// The types `--matvec-types` names.
        var types: [DType] {
            get throws {
                try matvecTypes.split(separator: ",").map { name in
                    let name = name.trimmingCharacters(in: .whitespaces).lowercased()
                    guard let type = DType(rawValue: name), type.isWeight else {
                        throw ValidationError(
                            "--matvec-types: '\(name)' is not a weight type (f32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k … q6_k)")
                    }
                    return type
                }
            }
        }

        func validate() throws {
            guard try !types.isEmpty else { throw ValidationError("--matvec-types names no type") }
        }

        func run() throws {
            try backend.apply()
            let report = BenchReport.console(json: json)
            var bench = KernelBench(report: report)
            bench.matvecTypes = try types
            bench.matvecOnly = matvecOnly
            bench.run()
            try report.finish(
                json: json,
                context: [
                    "threads": String(ThreadPool.shared.threadCount),
                    "backend": Backends.current.name
                ])
        }
    }

    /// `chronos bench decode`.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode tokens/s with every weight resident, beside the memory-bandwidth bound.",
            discussion:
                "Without --model, writes a random model of --shape in --dtype to a temporary directory and removes it afterwards, or to --synthetic-directory and keeps it: mixtral (vocab 32000, hidden 1024, 8 layers, 8 experts top-2, expert width 2816) or deepseek-v3 (vocab 32000, hidden 1024, 8 latent-attention layers, the first dense, then 64 experts top-6 of width 512 and one shared). --type quantises the model first (as `chronos quantize` does), into a directory beside --synthetic-directory named after the recipe and kept, or else a temporary one."
        )

        @Option(help: "Benchmark this model directory instead of a synthetic model.") var model: String?
        @Option(help: "Without --model: write the synthetic model here and keep it (reused when already there).")
        var syntheticDirectory: String?
        @Option(help: "Weight type of the synthetic model: bf16, f16 or f32.") var dtype = "bf16"
        @Option(help: "Shape of the synthetic model: mixtral or deepseek-v3.") var shape: SyntheticModel.Shape = .mixtral
        @Option(
            name: .customLong("type"),
            help: "Quantise the model with this llama-quantize recipe (q4_k_m, q8_0, q4_0, …) before measuring it.")
        var recipe: QuantizationRecipe?
        @Option(parsing: .unconditional, help: "Prompt tokens processed before decoding.") var promptTokens = 16
        @Option(parsing: .unconditional, help: "Tokens to decode.") var tokens = 64
        @OptionGroup var backend: BackendOption
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func validate() throws {
            try checkingOptions {
                try InvalidSetting.check("tokens", tokens, in: GenerationRequest.maxTokensRange)
                try InvalidSetting.check("prompt-tokens", promptTokens, in: 1...4096)
            }
            guard let type = DType(rawValue: dtype), type.isFloatingPoint else {
                throw ValidationError("--dtype '\(dtype)' is not one of bf16, f16, f32")
            }
        }

        func run() throws {
            try backend.apply()
            let report = BenchReport.console(json: json)
            var bench = DecodeBench(report: report)
            bench.decodeTokens = tokens
            bench.promptTokens = promptTokens
            bench.recipe = recipe
            try bench.run(
                directory: model.map { URL(fileURLWithPath: $0) }, shape: shape, dtype: DType(rawValue: dtype) ?? .bf16,
                keepingAt: syntheticDirectory.map { URL(fileURLWithPath: $0) })
            try report.finish(
                json: json,
                context: [
                    "threads": String(ThreadPool.shared.threadCount), "backend": Backends.current.name,
                    "isa": InstructionSet.current.rawValue
                ])
        }
    }

    /// `chronos bench train`.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training tokens/s of the reference configuration on every available backend, and peak memory.",
            discussion:
                "Reference: vocab 6400, hidden 256, 4 layers, 8 heads / 4 KV heads, 8 experts top-2 of width 512, sequence 256, batch 8, f32."
        )

        @Option(parsing: .unconditional, help: "Timed optimiser steps per backend (after one warm-up step).") var steps = 3
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func validate() throws {
            try checkingOptions { try InvalidSetting.check("steps", steps, in: 1...10_000) }
        }

        func run() throws {
            let report = BenchReport.console(json: json)
            try TrainBench(report: report, steps: steps).run()
            try report.finish(json: json, context: ["threads": String(ThreadPool.shared.threadCount)])
        }
    }

    /// `chronos bench offload`.
    struct Offload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Offloaded decoding: the resident, mmap, lru and chronos baselines on the same prompts, budget and disk.",
            discussion: """
                Greedy decoding of the same prompts under each baseline: resident (every expert in memory), mmap \
                (experts read through memory maps of the cluster files; with a simulated disk, charged on first touch \
                and after a budget-sized LRU page-cache model drops them), lru (load on miss, LRU eviction, no \
                prediction) and chronos (next-layer previews, the repetition of earlier text, the lookahead head and the \
                prompt-level set, prefetch, scored eviction); lru and chronos use --policy. Each row shows the bound \
                max(compute, missed bytes / disk bandwidth), compute being the resident run's time per token. Repeat is \
                the share of the decode's experts that the repetition of earlier text named before their token ran. \
                Recall@1 is the lookahead's for token t+1 (the repetition's predictions where the text repeats, the \
                head's elsewhere), beside the same predictions scored against a random other token (shuf), the most \
                used experts so far (freq) and the previous token's experts (prev).

                Without --model, a random Chronos-native model (8 layers × 8 experts, hidden 512, bf16, ~200 MB of \
                experts) is written to a temporary directory, packed, and removed afterwards. The model directory \
                must have been packed (chronos pack) otherwise. --prompts FILE: one prompt per line (text, or \
                comma-separated ids for a model without tokenizer.json).
                """)

        @Option(help: "Model directory (packed with chronos pack).") var model: String?
        @Option(help: "Without --model: write the synthetic model here and keep it (reused when already there).")
        var syntheticDirectory: String?
        @Option(help: "Expert budget: a fraction (0.3) or a size (300MB).") var budget = "0.3"
        @Option(help: "Prompts, one per line.") var prompts: String?
        @Option(parsing: .unconditional, help: "Tokens to decode per prompt.") var tokens = 32
        @Option(
            parsing: .unconditional,
            help:
                "With --prompts: cut each line to its first N tokens and score lossy runs' cross-entropy on the line's next --tokens tokens (held-out text) instead of on resident's greedy continuation."
        )
        var promptTokens: Int?
        @Flag(help: "Print one JSON object {\"runs\": [...]} instead of a table.") var json = false
        @Flag(help: "Run budgets 10, 20, 30, 50, 75, 100 % for every baseline and policy.") var sweep = false
        @Option(
            help:
                "With --sweep: the CSV file to write (one row per budget × baseline × policy); its chart, tokens/s and stall against the budget, goes beside it as an .svg file."
        )
        var csv: String?
        @OptionGroup var offload: OffloadOptions
        @OptionGroup var backend: BackendOption

        func validate() throws {
            if sweep && csv == nil { throw ValidationError("--sweep needs --csv FILE") }
            if let csv, URL(fileURLWithPath: csv).pathExtension == "svg" {
                throw ValidationError("--csv '\(csv)' ends in .svg, the name of the chart written beside it: name it FILE.csv")
            }
            if promptTokens != nil && prompts == nil { throw ValidationError("--prompt-tokens needs --prompts FILE") }
            if let promptTokens, promptTokens < 1 { throw ValidationError("--prompt-tokens must be positive") }
            if offload.expertBudget != nil { throw ValidationError("use --budget for the benchmark's expert budget") }
            if ExpertBudget(parsing: budget) == nil {
                throw ValidationError(
                    "--budget '\(budget)' is invalid: expected a fraction in (0, 1] (0.3), a percentage up to 100% (30%) or a size from 1 B to 1 PB (300MB)"
                )
            }
            try checkingOptions { try InvalidSetting.check("tokens", tokens, in: GenerationRequest.maxTokensRange) }
        }

        func run() throws {
            try backend.apply()
            let progress = { (text: String) in FileHandle.standardError.write(Data("… \(text)\n".utf8)) }
            let (directory, temporary) = try OffloadBench.modelDirectory(
                model.map { URL(fileURLWithPath: $0) },
                synthetic: syntheticDirectory.map { URL(fileURLWithPath: $0) },
                progress: progress)
            defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
            guard let budget = ExpertBudget(parsing: self.budget) else { throw ValidationError("--budget '\(self.budget)' is invalid") }
            let summary = try ModelLoader.load(directory: directory).summary
            var promptIds =
                try prompts.map { try OffloadBench.prompts(file: URL(fileURLWithPath: $0), directory: directory, vocab: summary.vocabSize) }
                ?? OffloadBench.defaultPrompts(directory: directory, vocab: summary.vocabSize)
            var references: [[Int]]?
            if let promptTokens {
                guard let split = OffloadBench.heldOutSplit(promptIds, promptTokens: promptTokens, tokens: tokens) else {
                    throw ValidationError("no prompt line holds --prompt-tokens + --tokens = \(promptTokens + tokens) tokens")
                }
                (promptIds, references) = (split.prompts, split.references)
            }
            let disk = try offload.diskModel()
            var bench = OffloadBench(
                directory: directory, prompts: promptIds, tokens: tokens, disk: disk,
                settings: { [offload] in try offload.settings(mode: $0.mode, budget: $0.budget, policy: $0.policy) },
                progress: progress)
            bench.references = references
            var context: [String: Any] = [
                "threads": ThreadPool.shared.threadCount, "backend": Backends.current.name, "model": directory.path,
                "model_type": summary.modelType, "prompts": promptIds.count, "tokens": tokens, "cold": offload.cold,
                "cross_entropy_of": references == nil ? "resident greedy continuations" : "held-out continuations",
                "disk": disk.map { String(format: "simulated %.3f ms, %.0f MB/s", $0.latency * 1000, $0.bandwidth / 1e6) } ?? "real"
            ]
            if sweep, let csv {
                let chart = URL(fileURLWithPath: csv).deletingPathExtension().appendingPathExtension("svg")
                var budgets: [(budget: Double, runs: [OffloadBench.Run])] = []
                try bench.sweep { fraction, runs in
                    budgets.append((fraction, runs))
                    try OffloadBench.csv(budgets).write(toFile: csv, atomically: true, encoding: .utf8)
                    try AtomicFile.write(Data(OffloadBench.chart(budgets).utf8), to: chart)
                    if !json { print("budget \(Int(fraction * 100))%\n" + OffloadBench.table(runs) + "\n") }
                }
                if json {
                    let runs = budgets.flatMap { fraction, runs in runs.map { OffloadBench.json($0, budget: .fraction(fraction)) } }
                    print(try OffloadBench.jsonDocument(runs: runs, context: context))
                }
                progress("wrote \(csv) and \(chart.path)")
            } else {
                let runs = try bench.run(budget: budget, policies: [offload.policy])
                context["budget"] = budget.description
                if json {
                    print(try OffloadBench.jsonDocument(runs: runs.map { OffloadBench.json($0, budget: budget) }, context: context))
                } else {
                    print(OffloadBench.table(runs))
                    for run in runs where !run.metrics.faultLog.isEmpty {
                        for line in run.metrics.faultLog.prefix(5) { print("fault (\(run.metrics.name)): \(line)") }
                    }
                }
            }
        }
    }

    /// `chronos bench tokenizer`.
    struct TokenizerSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tokenizer",
            abstract: "Tokenizer encode/decode MB/s and BPE training time on a real corpus.")

        @Option(help: "tokenizer.json to measure (default: the shipped model's).") var tokenizer: String?
        @Option(help: "Corpus: a .jsonl of {\"text\": …}, a text file, or a directory of .txt files.")
        var corpus = "data/austen/train.jsonl"
        @Option(parsing: .unconditional, help: "Vocabulary size of the training measurement.") var vocabSize = 6400
        @Flag(help: "Print one JSON object instead of a table.") var json = false

        func run() throws {
            let path = try tokenizer ?? ModelDirectory(path: ModelArgument.shippedModel()).tokenizer.path
            let report = BenchReport.console(json: json)
            try TokenizerBench(report: report).run(
                tokenizer: Tokenizer(contentsOf: URL(fileURLWithPath: path)),
                corpus: URL(fileURLWithPath: corpus), vocabularySize: vocabSize)
            try report.finish(json: json, context: ["tokenizer": path, "corpus": corpus])
        }
    }
}

extension BenchReport {
    /// A report for the terminal: table rows on standard output as they are measured (none
    /// when the command prints JSON), progress on standard error so it never mixes into JSON.
    static func console(json: Bool) -> BenchReport {
        BenchReport(
            show: json
                ? nil
                : { line in
                    print(line)
                    fflush(nil)
                }, progress: { FileHandle.standardError.write(Data("… \($0)\n".utf8)) })
    }

    /// Prints the JSON report when the command prints JSON.
    func finish(json: Bool, context: [String: String]) throws {
        if json { print(try self.json(context: context)) }
    }
}
