import ChronosModel
import ChronosTensor
import Foundation

/// What is resized so that a conventional MoE has as many parameters as a Chronos model.
public enum ParameterMatching: String, CaseIterable, Codable, Sendable {
    /// Keep the Chronos model's routed-expert count and widen (or narrow) every routed expert.
    case width
    /// Keep the Chronos model's routed-expert width and add (or remove) routed experts.
    case experts
}

/// A conventional MoE sized to a Chronos model: the same vocabulary, attention and layers, no
/// shared experts and no lookahead head, its routed experts resized (by `matching`) so that
/// both models hold the same number of parameters within `tolerance`.
public struct ParameterMatch: Sendable, Equatable {
    /// The Chronos model's configuration, as given.
    public var chronos: ChronosConfiguration
    /// The conventional model's configuration.
    public var conventional: ChronosConfiguration
    /// What was resized.
    public var matching: ParameterMatching
    /// The largest relative difference of the two totals allowed.
    public var tolerance: Double
    /// Every parameter of the Chronos model, counted from its checkpoint layout.
    public var chronosParameters: Int
    /// Every parameter of the conventional model, counted from its checkpoint layout.
    public var conventionalParameters: Int

    /// The conventional model's total over the Chronos model's, less one (0.004 is 0.4 % more).
    public var relativeDifference: Double {
        Double(conventionalParameters - chronosParameters) / Double(chronosParameters)
    }

    /// The conventional model nearest in size to `chronos` that `matching` allows. Throws when
    /// `tolerance` is outside 0–0.5, when `chronos` is invalid or has no shared experts to
    /// compare against, or when the nearest model misses the Chronos total by more than
    /// `tolerance` (the error names `param_tolerance` and the difference reached).
    public init(chronos: ChronosConfiguration, matching: ParameterMatching, tolerance: Double) throws {
        try InvalidSetting.check("param_tolerance", tolerance, in: 0...0.5)
        try chronos.validate(file: "the model configuration")
        guard chronos.sharedExperts > 0 else {
            throw InvalidSetting(
                name: "num_shared_experts", value: "0",
                expected: "at least 1: the Chronos model of a comparison has shared experts, the conventional one none")
        }
        var base = chronos
        base.sharedExperts = 0
        base.lookaheadSteps = 0
        let target = try Self.parameters(chronos)
        let limits: ClosedRange<Int> =
            switch matching {
            case .width: ConfigurationLimits.width
            case .experts: max(chronos.expertsPerToken, 1)...ConfigurationLimits.experts.upperBound
            }
        func resized(_ size: Int) -> ChronosConfiguration {
            var configuration = base
            switch matching {
            case .width: configuration.moeIntermediateSize = size
            case .experts: configuration.experts = size
            }
            return configuration
        }
        // The count is linear in the resized size: two counts give the line, rounding its
        // solution gives the nearest size, and its neighbours are checked against rounding.
        let low = limits.lowerBound
        let atLow = try Self.parameters(resized(low)), slope = try Self.parameters(resized(low + 1)) - atLow
        let solution = low + Int((Double(target - atLow) / Double(max(slope, 1))).rounded())
        var best: (size: Int, parameters: Int)?
        for size in [solution - 1, solution, solution + 1] where limits.contains(size) {
            let parameters = try Self.parameters(resized(size))
            if best.map({ abs(parameters - target) < abs($0.parameters - target) }) ?? true { best = (size, parameters) }
        }
        guard let best else {
            throw InvalidSetting(
                name: "param_tolerance", value: String(tolerance),
                expected: "a model the \(matching.rawValue) of whose experts can match: it would need \(solution), outside \(limits)")
        }
        self.chronos = chronos
        self.conventional = resized(best.size)
        self.matching = matching
        self.tolerance = tolerance
        self.chronosParameters = target
        self.conventionalParameters = best.parameters
        guard abs(relativeDifference) <= tolerance else {
            throw InvalidSetting(
                name: "param_tolerance", value: String(tolerance),
                expected: String(
                    format: "at least %.4f: the nearest conventional model (%@ %d) has %d parameters against the Chronos model's %d",
                    abs(relativeDifference), matching.rawValue, best.size, best.parameters, target))
        }
    }

    /// Every parameter of a Chronos model of `configuration`, from its checkpoint layout.
    public static func parameters(_ configuration: ChronosConfiguration) throws -> Int {
        try TransformerLanguageModel.parameterShapes(configuration: configuration).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// The parameters one token uses: all but the routed experts it is not sent to.
    public static func activeParameters(_ configuration: ChronosConfiguration) throws -> Int {
        let routed = configuration.hiddenLayers * configuration.experts * 3 * configuration.hiddenSize * configuration.moeIntermediateSize
        let unused = routed / configuration.experts * (configuration.experts - configuration.expertsPerToken)
        return try parameters(configuration) - unused
    }

    /// The settings of the conventional run: `chronos`'s data, steps, seed, schedule and
    /// balance weight, with the conventional model and none of the Chronos terms (temporal,
    /// lookahead, router anchor) or fallback masking, writing into `output`.
    public func conventionalSettings(_ chronos: PretrainSettings, output: URL) -> PretrainSettings {
        var settings = chronos
        settings.model = conventional
        settings.model.vocabSize = chronos.model.vocabSize
        settings.optimization = Self.conventionalOptimization(chronos.optimization)
        settings.output = output
        return settings
    }

    /// `optimization` as a conventional MoE is trained with it: the balance weight kept, the
    /// Chronos terms (temporal, lookahead, router anchor) and fallback masking off.
    public static func conventionalOptimization(_ optimization: OptimizationSettings) -> OptimizationSettings {
        var conventional = optimization
        conventional.lambdas = ChronosLossWeights(balance: optimization.lambdas.balance, temporal: 0, lookahead: 0, routerKL: 0)
        conventional.fallbackMaskProbability = 0
        return conventional
    }
}
