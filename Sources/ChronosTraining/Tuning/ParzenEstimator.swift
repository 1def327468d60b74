import ChronosTensor
import Foundation

/// A density on an interval: a mixture of Gaussians truncated to `[low, high]`, one on each
/// observation and one wide prior in the middle (Bergstra et al. 2011, "adaptive Parzen").
///
/// An observation's kernel width σ is the larger gap to its neighbours among the sorted
/// observations (`neighbourWidths`); the prior has σ = high − low. Observations weigh 1 each
/// and the prior `priorWeight`.
public struct ParzenEstimator: Sendable {
    /// Lower end of the support.
    public let low: Double
    /// Upper end of the support.
    public let high: Double
    /// Kernel centres, prior last.
    public let means: [Double]
    /// Kernel widths, in the order of `means`.
    public let sigmas: [Double]
    /// Kernel weights, summing to 1, in the order of `means`.
    public let weights: [Double]

    /// The estimator over `observations` (each in `low...high`) on `[low, high]`.
    public init(observations: [Double], low: Double, high: Double, priorWeight: Double) {
        self.low = low
        self.high = high
        means = observations + [(low + high) / 2]
        sigmas = Self.neighbourWidths(observations, low: low, high: high) + [high - low]
        let total = Double(observations.count) + priorWeight
        weights = observations.map { _ in 1 / total } + [priorWeight / total]
    }

    /// Kernel widths for `observations` in `[low, high]`, in their order: each the larger gap
    /// to its neighbours in sorted order, with `low` and `high` beyond the ends; the smallest
    /// and largest of two or more observations take the gap to their one inner neighbour, so
    /// that an observation near an end is not widened by the empty stretch beyond it. Widths
    /// are clipped to `[(high − low) / min(100, n + 2), high − low]`. The prior's centre is
    /// no neighbour: where it sits says nothing about the observations.
    static func neighbourWidths(_ observations: [Double], low: Double, high: Double) -> [Double] {
        let width = high - low, n = observations.count
        let order = observations.indices.sorted { observations[$0] < observations[$1] }
        let sorted = [low] + order.map { observations[$0] } + [high]
        let minimum = width / Double(min(100, n + 2))
        var sigmas = [Double](repeating: width, count: n)
        for (rank, index) in order.enumerated() {
            let i = rank + 1
            let gap =
                n >= 2 && rank == 0
                ? sorted[2] - sorted[1]
                : n >= 2 && rank == n - 1
                    ? sorted[n] - sorted[n - 1]
                    : max(sorted[i] - sorted[i - 1], sorted[i + 1] - sorted[i])
            sigmas[index] = Swift.min(Swift.max(gap, minimum), width)
        }
        return sigmas
    }

    /// Probability that a draw lies in `[a, b]` (within the support).
    public func mass(from a: Double, to b: Double) -> Double {
        var sum = 0.0
        for k in means.indices {
            let inside = Self.cdf(high, means[k], sigmas[k]) - Self.cdf(low, means[k], sigmas[k])
            sum += weights[k] * (Self.cdf(b, means[k], sigmas[k]) - Self.cdf(a, means[k], sigmas[k])) / inside
        }
        return sum
    }

    /// The density at `x` in the support.
    public func density(_ x: Double) -> Double {
        var sum = 0.0
        for k in means.indices {
            let inside = Self.cdf(high, means[k], sigmas[k]) - Self.cdf(low, means[k], sigmas[k])
            let z = (x - means[k]) / sigmas[k]
            sum += weights[k] * Foundation.exp(-z * z / 2) / (sigmas[k] * (2 * Double.pi).squareRoot()) / inside
        }
        return sum
    }

    /// A draw: a kernel chosen by weight, then a value from it by rejection (each try lands in
    /// the support with probability above 1/3, since every centre is inside and σ ≤ high − low).
    public func sample(_ random: inout SplitMix64) -> Double {
        let k = Self.choose(weights, &random)
        while true {
            let x = means[k] + sigmas[k] * Self.standardNormal(&random)
            if x >= low && x <= high { return x }
        }
    }

    /// The normal distribution function Φ((x − μ) / σ).
    static func cdf(_ x: Double, _ mean: Double, _ sigma: Double) -> Double {
        0.5 * erfc(-(x - mean) / (sigma * 2.0.squareRoot()))
    }

    /// A standard normal draw (Box–Muller).
    static func standardNormal(_ random: inout SplitMix64) -> Double {
        let u = 1 - random.nextUnit()
        let v = random.nextUnit()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }

    /// An index drawn with probability proportional to `weights`.
    static func choose(_ weights: [Double], _ random: inout SplitMix64) -> Int {
        var target = random.nextUnit() * weights.reduce(0, +)
        for (index, weight) in weights.enumerated() {
            target -= weight
            if target < 0 { return index }
        }
        return weights.count - 1
    }
}

/// Probabilities of the categories of a categorical parameter: a mixture of one kernel per
/// observation and a uniform prior kernel, weighing 1 each and `priorWeight`.
///
/// An observation's kernel is smoothed: with s = priorWeight / (n + 1) for n observations, it
/// gives its own category (1 + s) / (K·s + 1) and each other one s / (K·s + 1) of K. Without
/// the smoothing one good trial would hold most of l's mass on its category, and l/g would
/// keep choosing the category of whichever trial happened to be best first.
public struct CategoricalEstimator: Sendable {
    /// Probability of each category, in the domain's order.
    public let probabilities: [Double]

    /// The estimator over `observations` (category indices below `categories`).
    public init(observations: [Int], categories: Int, priorWeight: Double) {
        let total = Double(observations.count) + priorWeight
        var probabilities = [Double](repeating: priorWeight / total / Double(categories), count: categories)
        for index in observations {
            for (category, probability) in Self.kernel(
                on: index, categories: categories, observations: observations.count, priorWeight: priorWeight
            )
            .enumerated() {
                probabilities[category] += probability / total
            }
        }
        self.probabilities = probabilities
    }

    /// The smoothed kernel of one of `observations` observations, on category `index` of `categories`.
    static func kernel(on index: Int, categories: Int, observations: Int, priorWeight: Double) -> [Double] {
        let spread = priorWeight / Double(observations + 1)
        return (0..<categories).map { (($0 == index ? 1 : 0) + spread) / (Double(categories) * spread + 1) }
    }

    /// A category index drawn by probability.
    public func sample(_ random: inout SplitMix64) -> Int { ParzenEstimator.choose(probabilities, &random) }
}
