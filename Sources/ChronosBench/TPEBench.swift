import ChronosTensor
import ChronosTraining
import Foundation

/// `chronos bench tpe`: the TPE sampler against random search on standard test functions,
/// the best value after each trial averaged over seeds (`scripts/compare_tpe_optuna.py` runs
/// Optuna on the same functions).
public enum TPEBench {
    /// A function to minimise over a search space.
    public struct Problem: Sendable {
        /// The function's name.
        public let name: String
        /// Its domain.
        public let space: SearchSpace
        /// Its known minimum.
        public let minimum: Double
        /// The value at a point; `noise` is a standard normal draw the function may scale in.
        public let value: @Sendable ([String: ParameterValue], _ noise: Double) -> Double
    }

    static func x(_ p: [String: ParameterValue], _ name: String) -> Double { p[name]!.number! }

    /// Branin on x1 ∈ [−5, 10], x2 ∈ [0, 15]; minimum 0.397887.
    public static let branin = Problem(
        name: "branin",
        space: try! SearchSpace(parameters: [
            SearchParameter(name: "x1", domain: .float(low: -5, high: 10, log: false)),
            SearchParameter(name: "x2", domain: .float(low: 0, high: 15, log: false))
        ]), minimum: 0.397887
    ) { p, _ in
        let (x1, x2) = (x(p, "x1"), x(p, "x2"))
        let b = 5.1 / (4 * Double.pi * Double.pi), c = 5 / Double.pi, t = 1 / (8 * Double.pi)
        let r = x2 - b * x1 * x1 + c * x1 - 6
        return r * r + 10 * (1 - t) * cos(x1) + 10
    }

    /// Hartmann-6 on [0, 1]⁶; minimum −3.32237.
    public static let hartmann6 = Problem(
        name: "hartmann6",
        space: try! SearchSpace(parameters: (0..<6).map { SearchParameter(name: "x\($0)", domain: .float(low: 0, high: 1, log: false)) }),
        minimum: -3.32237
    ) { p, _ in
        let alpha = [1.0, 1.2, 3.0, 3.2]
        let a: [[Double]] = [
            [10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]
        ]
        let q: [[Double]] = [
            [1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]
        ]
        var sum = 0.0
        for i in 0..<4 {
            var inner = 0.0
            for j in 0..<6 {
                let d = x(p, "x\(j)") - q[i][j] * 1e-4
                inner += a[i][j] * d * d
            }
            sum += alpha[i] * exp(-inner)
        }
        return -sum
    }

    /// (x − 1)² + (y + 2)² + an offset per category (a 1, b 0, c 0.5, d 2) + 0.1·N(0, 1), on
    /// x, y ∈ [−5, 5]; minimum 0 (without the noise).
    public static let noisyQuadratic = Problem(
        name: "noisy-quadratic",
        space: try! SearchSpace(parameters: [
            SearchParameter(name: "x", domain: .float(low: -5, high: 5, log: false)),
            SearchParameter(name: "y", domain: .float(low: -5, high: 5, log: false)),
            SearchParameter(name: "c", domain: .categorical([.text("a"), .text("b"), .text("c"), .text("d")]))
        ]), minimum: 0
    ) { p, noise in
        let offsets = ["a": 1.0, "b": 0, "c": 0.5, "d": 2]
        guard case .text(let category) = p["c"]! else { return .nan }
        return pow(x(p, "x") - 1, 2) + pow(x(p, "y") + 2, 2) + offsets[category]! + 0.1 * noise
    }

    /// The problems the benchmark runs.
    public static let problems = [branin, hartmann6, noisyQuadratic]

    /// The best value after each of `trials` trials of `problem`, with `startupTrials` random
    /// trials first (random search when it is at least `trials`), the rest drawn in `mode`.
    public static func bestSoFar(_ problem: Problem, trials: Int, startupTrials: Int, mode: TPESampler.Mode, seed: UInt64) -> [Double] {
        let sampler = TPESampler(startupTrials: startupTrials, mode: mode, seed: seed)
        var noise = SplitMix64(seed: seed ^ 0x5EED)
        var history: [TrialRecord] = []
        var best = Double.infinity
        var curve: [Double] = []
        for number in 0..<trials {
            let parameters = sampler.suggest(in: problem.space, trials: history, directions: [.minimize], number: number)
            let u = 1 - noise.nextUnit(), v = noise.nextUnit()
            let value = problem.value(parameters, (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
            history.append(TrialRecord(number: number, parameters: parameters, state: .complete, values: [value]))
            best = min(best, value)
            curve.append(best)
        }
        return curve
    }
}
