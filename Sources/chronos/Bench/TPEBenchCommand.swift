import ArgumentParser
import ChronosBench
import ChronosTensor
import ChronosTraining
import Foundation

extension Bench {
    /// `chronos bench tpe`.
    struct TPE: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tpe",
            abstract: "The tuner's TPE sampler against random search on Branin, Hartmann-6 and a noisy quadratic with a categorical.",
            discussion: """
                Each function is minimised --seeds times with TPE (--startup random trials first, then joint estimators with \
                --multivariate or one per parameter with --independent) and with random search; \
                the table shows the best value after --trials trials, mean and standard deviation over the seeds. \
                --json prints every run's best-so-far curve (scripts/compare_tpe_optuna.py compares them with Optuna's).
                """)

        @Option(parsing: .unconditional, help: "Trials per run.") var trials = 60
        @Option(parsing: .unconditional, help: "Runs (seeds 0..<N) per function and sampler.") var seeds = 20
        @Option(parsing: .unconditional, help: "Random trials before TPE takes over.") var startup = 10
        @Flag var sampler = TPESampler.Mode.multivariate
        @Flag(help: "Print one JSON object with every best-so-far curve instead of a table.") var json = false

        func validate() throws {
            try checkingOptions {
                try InvalidSetting.check("trials", trials, in: 1...10_000)
                try InvalidSetting.check("seeds", seeds, in: 1...10_000)
                try InvalidSetting.check("startup", startup, in: 0...trials)
            }
        }

        func run() throws {
            var results: [String: [String: [[Double]]]] = [:]
            for problem in TPEBench.problems {
                let runs = { (startup: Int) in
                    (0..<seeds).map { TPEBench.bestSoFar(problem, trials: trials, startupTrials: startup, mode: sampler, seed: UInt64($0)) }
                }
                results[problem.name] = ["tpe": runs(startup), "random": runs(trials)]
                FileHandle.standardError.write(Data("… \(problem.name) done\n".utf8))
            }
            if json {
                let object: [String: Any] = [
                    "trials": trials, "seeds": seeds, "startup": startup, "sampler": sampler.rawValue, "results": results
                ]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print(
                "best after \(trials) trials, mean ± sd over \(seeds) seeds (\(sampler.rawValue) TPE with \(startup) random trials first)")
            print("function          minimum      tpe                    random")
            for problem in TPEBench.problems {
                let cell = { (name: String) -> String in
                    let finals = results[problem.name]![name]!.map { $0.last! }
                    let mean = finals.reduce(0, +) / Double(finals.count)
                    let sd = (finals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(finals.count)).squareRoot()
                    return String(format: "%9.4f ± %-9.4f", mean, sd)
                }
                print(
                    problem.name.padding(toLength: 17, withPad: " ", startingAt: 0) + String(format: "%9.4f", problem.minimum) + "  "
                        + cell("tpe") + "  " + cell("random"))
            }
        }
    }
}
