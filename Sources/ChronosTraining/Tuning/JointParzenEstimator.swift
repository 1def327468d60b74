import ChronosTensor
import Foundation

/// A density over several parameters at once: a mixture of product kernels, one on each
/// observation and one wide prior kernel (multivariate TPE, Falkner et al. 2018; Optuna's
/// `TPESampler(multivariate=True)`).
///
/// Kernel k is a product over the axes: on a continuous axis a Gaussian truncated to
/// `[low, high]`, centred on the observation's coordinate, on a categorical axis a distribution
/// over the categories. On each continuous axis an observation's width is the one
/// `ParzenEstimator.neighbourWidths` gives it among the observations' coordinates on that axis,
/// as Optuna 5's multivariate TPE does (Scott's rule, one width 0.2 · n^(−1/(D+4)) · (high −
/// low) per axis as older multivariate TPEs used, did worse on Hartmann-6: docs/tuning.md).
/// On a categorical axis an
/// observation's kernel is `CategoricalEstimator`'s smoothed one. The prior kernel sits in the
/// middle of every continuous axis with σ = high − low and is uniform over categories.
/// Observations weigh 1 each and the prior `priorWeight`.
public struct JointParzenEstimator: Sendable {
    /// One axis of the joint space.
    public enum Axis: Sendable, Equatable {
        /// Positions in `low...high`.
        case continuous(low: Double, high: Double)
        /// Category indices below `count`.
        case categorical(count: Int)
    }

    /// Where a point lies on one axis, for the density.
    public enum Coordinate: Sendable, Equatable {
        /// A position on a continuous axis: its density counts.
        case point(Double)
        /// A stretch `[a, b]` of a continuous axis (an integer's unit cell): its mass counts.
        case cell(Double, Double)
        /// A category index.
        case category(Int)
    }

    /// The axes, in the order of each observation's coordinates.
    public let axes: [Axis]
    /// Kernel centres, one row per kernel and one coordinate per axis (a category index on a
    /// categorical axis), prior last.
    public let means: [[Double]]
    /// Kernel widths on each axis, in the order of `means` (0 on categorical axes).
    public let sigmas: [[Double]]
    /// Kernel probabilities of each category on each categorical axis, in the order of `means`
    /// (empty on continuous axes).
    public let categoryProbabilities: [[[Double]]]
    /// Kernel weights, summing to 1, in the order of `means`.
    public let weights: [Double]
    /// log of each kernel's mass inside the support on each axis (0 on categorical axes).
    let logInside: [[Double]]

    /// The estimator over `observations` (one coordinate per axis, a category index on a
    /// categorical axis, each within its axis).
    public init(observations: [[Double]], axes: [Axis], priorWeight: Double) {
        self.axes = axes
        let n = observations.count
        let axisWidths: [[Double]] = axes.enumerated().map { d, axis in
            guard case .continuous(let low, let high) = axis else { return [] }
            return ParzenEstimator.neighbourWidths(observations.map { $0[d] }, low: low, high: high)
        }
        var means = observations, sigmas: [[Double]] = [], categories: [[[Double]]] = []
        var prior: [Double] = [], priorSigmas: [Double] = [], priorCategories: [[Double]] = []
        for axis in axes {
            switch axis {
            case .continuous(let low, let high):
                prior.append((low + high) / 2)
                priorSigmas.append(high - low)
                priorCategories.append([])
            case .categorical(let count):
                prior.append(0)
                priorSigmas.append(0)
                priorCategories.append([Double](repeating: 1 / Double(count), count: count))
            }
        }
        for (i, observation) in observations.enumerated() {
            var rowSigmas: [Double] = [], rowCategories: [[Double]] = []
            for (d, axis) in axes.enumerated() {
                switch axis {
                case .continuous:
                    rowSigmas.append(axisWidths[d][i])
                    rowCategories.append([])
                case .categorical(let count):
                    rowSigmas.append(0)
                    rowCategories.append(
                        CategoricalEstimator.kernel(on: Int(observation[d]), categories: count, observations: n, priorWeight: priorWeight))
                }
            }
            sigmas.append(rowSigmas)
            categories.append(rowCategories)
        }
        means.append(prior)
        sigmas.append(priorSigmas)
        categories.append(priorCategories)
        self.means = means
        self.sigmas = sigmas
        categoryProbabilities = categories
        let total = Double(n) + priorWeight
        weights = observations.map { _ in 1 / total } + [priorWeight / total]
        logInside = means.indices.map { k in
            axes.enumerated().map { d, axis in
                guard case .continuous(let low, let high) = axis else { return 0 }
                let (mu, sigma) = (means[k][d], sigmas[k][d])
                return Foundation.log(ParzenEstimator.cdf(high, mu, sigma) - ParzenEstimator.cdf(low, mu, sigma))
            }
        }
    }

    /// log of the density (or, on cell coordinates, the mass) at `point`, one coordinate per axis:
    /// log Σ_k w_k Π_d K_kd(x_d).
    public func logDensity(_ point: [Coordinate]) -> Double {
        var terms = [Double](repeating: 0, count: means.count)
        for k in means.indices {
            var term = Foundation.log(weights[k])
            for (d, coordinate) in point.enumerated() {
                let (mu, sigma) = (means[k][d], sigmas[k][d])
                switch coordinate {
                case .point(let x):
                    let z = (x - mu) / sigma
                    term += -z * z / 2 - Foundation.log(sigma * (2 * Double.pi).squareRoot()) - logInside[k][d]
                case .cell(let a, let b):
                    term += Foundation.log(ParzenEstimator.cdf(b, mu, sigma) - ParzenEstimator.cdf(a, mu, sigma)) - logInside[k][d]
                case .category(let c):
                    term += Foundation.log(categoryProbabilities[k][d][c])
                }
            }
            terms[k] = term
        }
        let largest = terms.max()!
        guard largest.isFinite else { return largest }
        return largest + Foundation.log(terms.reduce(0) { $0 + Foundation.exp($1 - largest) })
    }

    /// A draw: a kernel chosen by weight, then one coordinate from it on each axis (a
    /// category index on a categorical axis).
    public func sample(_ random: inout SplitMix64) -> [Double] {
        let k = ParzenEstimator.choose(weights, &random)
        return axes.enumerated().map { d, axis in
            switch axis {
            case .continuous(let low, let high):
                while true {
                    let x = means[k][d] + sigmas[k][d] * ParzenEstimator.standardNormal(&random)
                    if x >= low && x <= high { return x }
                }
            case .categorical:
                return Double(ParzenEstimator.choose(categoryProbabilities[k][d], &random))
            }
        }
    }
}
