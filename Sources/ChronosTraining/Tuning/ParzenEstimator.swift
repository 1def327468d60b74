import ChronosTensor
import Foundation

/// A density on an interval: a mixture of Gaussians truncated to `[low, high]`, one on each
/// observation and one wide prior in the middle (Bergstra et al. 2011, "adaptive Parzen").
///
/// A kernel's width σ is the larger gap to its neighbours in the sorted list of observations
/// and prior mean, the interval's ends standing beyond the extremes; σ is clipped to
/// `[(high − low) / min(100, n + 2), high − low]`. The prior has σ = high − low. Observations
/// weigh 1 each and the prior `priorWeight`.
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
        let width = high - low
        let prior = (low + high) / 2
        let centres = observations + [prior]
        let order = centres.indices.sorted { centres[$0] < centres[$1] }
        let minimum = width / Double(min(100, observations.count + 2))
        var sigmas = [Double](repeating: width, count: centres.count)
        for (rank, index) in order.enumerated() where index < observations.count {
            let left = rank == 0 ? low : centres[order[rank - 1]]
            let right = rank == order.count - 1 ? high : centres[order[rank + 1]]
            let gap = max(centres[index] - left, right - centres[index])
            sigmas[index] = Swift.min(Swift.max(gap, minimum), width)
        }
        let total = Double(observations.count) + priorWeight
        means = centres
        self.sigmas = sigmas
        weights = observations.map { _ in 1 / total } + [priorWeight / total]
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

/// Probabilities of the categories of a categorical parameter: each observation adds 1 to its
/// category, the prior `priorWeight / K` to each of the K.
public struct CategoricalEstimator: Sendable {
    /// Probability of each category, in the domain's order.
    public let probabilities: [Double]

    /// The estimator over `observations` (category indices below `categories`).
    public init(observations: [Int], categories: Int, priorWeight: Double) {
        var counts = [Double](repeating: priorWeight / Double(categories), count: categories)
        for index in observations { counts[index] += 1 }
        let total = Double(observations.count) + priorWeight
        probabilities = counts.map { $0 / total }
    }

    /// A category index drawn by probability.
    public func sample(_ random: inout SplitMix64) -> Int { ParzenEstimator.choose(probabilities, &random) }
}
