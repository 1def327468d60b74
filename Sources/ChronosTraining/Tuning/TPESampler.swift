import ChronosTensor
import Foundation

/// The Tree-structured Parzen Estimator (Bergstra et al. 2011).
///
/// Finished trials are ordered best first (by value; in multi-objective mode by non-dominated
/// rank, then crowding distance; pruned trials after every complete one) and split into the
/// best ⌈γ·n⌉ (at most 25), "good", and the rest, "bad". l(x) is a Parzen estimator over the
/// good trials' values and g(x) over the bad ones'; the sampler draws `candidates` points from
/// l and keeps the one with the largest l(x)/g(x), which maximises expected improvement.
/// Independently, each active parameter has its own l and g (`ParzenEstimator`,
/// `CategoricalEstimator`); multivariately, the parameters without a condition share one joint
/// l and g (`JointParzenEstimator`) and are drawn together, so that the sampler sees how they
/// interact, and the conditional parameters, which not every trial has, are then drawn
/// independently. The first `startupTrials` trials are drawn uniformly (log-uniformly on a log
/// scale). A trial's draws depend only on the seed, its number and the finished trials.
public struct TPESampler: Sendable {
    /// How the sampler models the parameters.
    public enum Mode: String, Sendable, CaseIterable {
        /// One estimator per parameter.
        case independent
        /// One joint estimator over the parameters without a condition; conditional ones independently.
        case multivariate
    }

    /// Trials drawn at random before the estimators take over.
    public var startupTrials: Int
    /// Candidates drawn from l(x) per parameter, or per joint draw in multivariate mode.
    public var candidates: Int
    /// Fraction of finished trials that count as good.
    public var gamma: Double
    /// Weight of the prior kernel against one observation's.
    public var priorWeight: Double
    /// Independent or joint estimators.
    public var mode: Mode
    /// The study's seed.
    public var seed: UInt64

    /// A sampler with `startupTrials` random trials and Optuna's other defaults (24 candidates, γ
    /// 0.1, prior weight 1, multivariate).
    public init(
        startupTrials: Int = 10, candidates: Int = 24, gamma: Double = 0.1, priorWeight: Double = 1, mode: Mode = .multivariate,
        seed: UInt64 = 0
    ) {
        self.startupTrials = startupTrials
        self.candidates = candidates
        self.gamma = gamma
        self.priorWeight = priorWeight
        self.mode = mode
        self.seed = seed
    }

    /// The values of trial `number`'s active parameters, given the finished `trials` and the
    /// objectives' `directions`.
    public func suggest(in space: SearchSpace, trials: [TrialRecord], directions: [ObjectiveDirection], number: Int)
        -> [String: ParameterValue]
    {
        var random = SplitMix64(seed: seed ^ (UInt64(number) &* 0xD1B5_4A32_D192_ED03))
        _ = random.next()
        let ordered = Self.bestFirst(trials, directions: directions)
        let goodCount = min(Int((gamma * Double(ordered.count)).rounded(.up)), 25)
        let good = ordered.prefix(goodCount), bad = ordered.dropFirst(goodCount)
        let guided = ordered.count >= startupTrials
        var assignment: [String: ParameterValue] = [:]
        if guided && mode == .multivariate {
            assignment = chooseJointly(space.parameters.filter { $0.condition == nil }, good: good, bad: bad, &random)
        }
        for parameter in space.parameters where assignment[parameter.name] == nil && space.isActive(parameter, in: assignment) {
            assignment[parameter.name] =
                guided
                ? chooseByImprovement(
                    parameter, good: good.compactMap { $0.parameters[parameter.name] },
                    bad: bad.compactMap { $0.parameters[parameter.name] }, &random)
                : Self.uniform(parameter.domain, &random)
        }
        return assignment
    }

    /// The trials best first: complete ones by value (non-dominated rank, then crowding distance
    /// descending, with several objectives), then pruned ones by deepest step, then lowest last
    /// value, then failed ones.
    public static func bestFirst(_ trials: [TrialRecord], directions: [ObjectiveDirection]) -> [TrialRecord] {
        let complete = trials.filter { $0.state == .complete && $0.values.count == directions.count }
        let losses = complete.map { trial in zip(directions, trial.values).map { $0.loss($1) } }
        let order: [Int]
        if directions.count == 1 {
            order = complete.indices.sorted { (losses[$0][0], complete[$0].number) < (losses[$1][0], complete[$1].number) }
        } else {
            let ranks = ParetoFront.ranks(losses)
            var crowding = [Double](repeating: 0, count: complete.count)
            for rank in Set(ranks) {
                let members = complete.indices.filter { ranks[$0] == rank }
                for (member, distance) in zip(members, ParetoFront.crowding(members.map { losses[$0] })) { crowding[member] = distance }
            }
            order = complete.indices.sorted {
                if ranks[$0] != ranks[$1] { return ranks[$0] < ranks[$1] }
                if crowding[$0] != crowding[$1] { return crowding[$0] > crowding[$1] }
                return complete[$0].number < complete[$1].number
            }
        }
        let pruned = trials.filter { $0.state == .pruned }.sorted { a, b in
            let (sa, sb) = (a.intermediate.keys.max() ?? -1, b.intermediate.keys.max() ?? -1)
            if sa != sb { return sa > sb }
            let (va, vb) = (a.intermediate[sa] ?? .infinity, b.intermediate[sb] ?? .infinity)
            return (va, a.number) < (vb, b.number)
        }
        return order.map { complete[$0] } + pruned + trials.filter { $0.state == .failed }
    }

    /// A uniform draw from `domain` (log-uniform on a log scale).
    static func uniform(_ domain: ParameterDomain, _ random: inout SplitMix64) -> ParameterValue {
        switch domain {
        case .categorical(let choices):
            return choices[Int(random.next() % UInt64(choices.count))]
        case .float, .integer:
            let scale = NumericScale(domain)
            return scale.value(scale.low + random.nextUnit() * (scale.high - scale.low))
        }
    }

    /// Values of all of `parameters` at once: the candidate from the joint l(x) with the largest
    /// joint l(x)/g(x). Trials without one of the parameters are left out.
    func chooseJointly(
        _ parameters: [SearchParameter], good: ArraySlice<TrialRecord>, bad: ArraySlice<TrialRecord>, _ random: inout SplitMix64
    ) -> [String: ParameterValue] {
        let axes = parameters.map(JointAxis.init)
        let coordinates = { (trials: ArraySlice<TrialRecord>) -> [[Double]] in
            trials.compactMap { trial in
                var row: [Double] = []
                for (parameter, axis) in zip(parameters, axes) {
                    guard let value = trial.parameters[parameter.name], let position = axis.position(value) else { return nil }
                    row.append(position)
                }
                return row
            }
        }
        let l = JointParzenEstimator(observations: coordinates(good), axes: axes.map(\.axis), priorWeight: priorWeight)
        let g = JointParzenEstimator(observations: coordinates(bad), axes: axes.map(\.axis), priorWeight: priorWeight)
        var best: [ParameterValue] = [], bestScore = -Double.infinity
        for _ in 0..<candidates {
            let candidate = zip(axes, l.sample(&random)).map { axis, position in axis.value(position) }
            let point = zip(axes, candidate).map { axis, value in axis.coordinate(value) }
            let score = l.logDensity(point) - g.logDensity(point)
            if best.isEmpty || score > bestScore { (best, bestScore) = (candidate, score) }
        }
        return Dictionary(uniqueKeysWithValues: zip(parameters.map(\.name), best))
    }

    /// The candidate from l(x) with the largest l(x)/g(x).
    func chooseByImprovement(_ parameter: SearchParameter, good: [ParameterValue], bad: [ParameterValue], _ random: inout SplitMix64)
        -> ParameterValue
    {
        switch parameter.domain {
        case .categorical(let choices):
            let indices = { (values: [ParameterValue]) in values.compactMap { choices.firstIndex(of: $0) } }
            let l = CategoricalEstimator(observations: indices(good), categories: choices.count, priorWeight: priorWeight)
            let g = CategoricalEstimator(observations: indices(bad), categories: choices.count, priorWeight: priorWeight)
            var best = 0, bestScore = -Double.infinity
            for _ in 0..<candidates {
                let c = l.sample(&random)
                let score = Foundation.log(l.probabilities[c]) - Foundation.log(g.probabilities[c])
                if score > bestScore { (best, bestScore) = (c, score) }
            }
            return choices[best]
        case .float, .integer:
            let scale = NumericScale(parameter.domain)
            let positions = { (values: [ParameterValue]) in values.compactMap { $0.number.map(scale.position) } }
            let l = ParzenEstimator(observations: positions(good), low: scale.low, high: scale.high, priorWeight: priorWeight)
            let g = ParzenEstimator(observations: positions(bad), low: scale.low, high: scale.high, priorWeight: priorWeight)
            var best = ParameterValue.number(.nan), bestScore = -Double.infinity
            for _ in 0..<candidates {
                let candidate = scale.value(l.sample(&random))
                let score = scale.logRatio(candidate, l, g)
                if score > bestScore { (best, bestScore) = (candidate, score) }
            }
            return best
        }
    }
}

/// The internal axis of a numeric parameter: its value, or the value's logarithm on a log
/// scale; an integer k owns the cell `[k − ½, k + ½]` of that axis.
struct NumericScale {
    let low: Double
    let high: Double
    let log: Bool
    let isInteger: Bool
    let bounds: ClosedRange<Double>

    init(_ domain: ParameterDomain) {
        switch domain {
        case .float(let low, let high, let log):
            (self.log, isInteger, bounds) = (log, false, low...high)
        case .integer(let low, let high, let log):
            (self.log, isInteger, bounds) = (log, true, (Double(low) - 0.5)...(Double(high) + 0.5))
        case .categorical:
            preconditionFailure("a categorical parameter has no numeric axis")
        }
        low = log ? Foundation.log(bounds.lowerBound) : bounds.lowerBound
        high = log ? Foundation.log(bounds.upperBound) : bounds.upperBound
    }

    /// A value's position on the axis.
    func position(_ value: Double) -> Double { log ? Foundation.log(value) : value }

    /// The parameter value at axis position `u`: rounded to an integer and kept in range for integers.
    func value(_ u: Double) -> ParameterValue {
        let x = Swift.min(Swift.max(log ? Foundation.exp(u) : u, bounds.lowerBound), bounds.upperBound)
        guard isInteger else { return .number(x) }
        return .number(Swift.min(Swift.max(x.rounded(), bounds.lowerBound + 0.5), bounds.upperBound - 0.5))
    }

    /// log l(x) − log g(x): of densities for a float, of the masses of its cell for an integer.
    func logRatio(_ value: ParameterValue, _ l: ParzenEstimator, _ g: ParzenEstimator) -> Double {
        let x = value.number!
        guard isInteger else { return Foundation.log(l.density(position(x))) - Foundation.log(g.density(position(x))) }
        let (a, b) = (position(x - 0.5), position(x + 0.5))
        return Foundation.log(l.mass(from: a, to: b)) - Foundation.log(g.mass(from: a, to: b))
    }
}

/// A parameter as an axis of a joint estimator: its numeric axis, or its category indices.
struct JointAxis {
    let axis: JointParzenEstimator.Axis
    let scale: NumericScale?
    let choices: [ParameterValue]

    init(_ parameter: SearchParameter) {
        if case .categorical(let choices) = parameter.domain {
            (axis, scale, self.choices) = (.categorical(count: choices.count), nil, choices)
        } else {
            let scale = NumericScale(parameter.domain)
            (axis, self.scale, choices) = (.continuous(low: scale.low, high: scale.high), scale, [])
        }
    }

    /// A value's coordinate on the axis, if the value is one the parameter can take.
    func position(_ value: ParameterValue) -> Double? {
        guard let scale else { return choices.firstIndex(of: value).map(Double.init) }
        return value.number.map(scale.position)
    }

    /// The parameter value at coordinate `u`.
    func value(_ u: Double) -> ParameterValue { scale?.value(u) ?? choices[Int(u)] }

    /// Where `value` counts for the density: its position for a float, its unit cell for an
    /// integer, its index for a category.
    func coordinate(_ value: ParameterValue) -> JointParzenEstimator.Coordinate {
        guard let scale else { return .category(choices.firstIndex(of: value)!) }
        let x = value.number!
        guard scale.isInteger else { return .point(scale.position(x)) }
        return .cell(scale.position(x - 0.5), scale.position(x + 0.5))
    }
}
