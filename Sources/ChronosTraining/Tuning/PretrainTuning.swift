import ChronosModel
import ChronosTensor
import Foundation

/// The pretraining settings a search space may tune, named as `chronos train pretrain`'s flags
/// (`--lambda-balance` is `lambda_balance`), and how a trial's values become a run's settings.
public enum PretrainTuning {
    /// A tunable setting: whether it is whole and the values it may take.
    struct Tunable {
        let integer: Bool
        let range: ClosedRange<Double>
    }

    /// Every tunable setting with the range training accepts.
    static let tunables: [String: Tunable] = [
        "lambda_balance": Tunable(integer: false, range: 0...1000),
        "lambda_temporal": Tunable(integer: false, range: 0...1000),
        "lambda_lookahead": Tunable(integer: false, range: 0...1000),
        "lambda_anchor": Tunable(integer: false, range: 0...1000),
        "lr": Tunable(integer: false, range: 1e-8...10),
        "experts": Tunable(integer: true, range: 1...Double(ConfigurationLimits.experts.upperBound)),
        "top_k": Tunable(integer: true, range: 1...Double(ConfigurationLimits.experts.upperBound)),
        "expert_width": Tunable(integer: true, range: 1...Double(ConfigurationLimits.width.upperBound)),
        "shared_width": Tunable(integer: true, range: 1...Double(ConfigurationLimits.width.upperBound)),
        "lookahead": Tunable(integer: true, range: 0...Double(ConfigurationLimits.layers.upperBound)),
        "window": Tunable(integer: true, range: 1...Double(ConfigurationLimits.positions.upperBound))
    ]

    /// The names a search space may use.
    public static var names: [String] { tunables.keys.sorted() }

    /// Throws the first parameter that is not a tunable setting, whose values lie outside what
    /// training accepts, or that could pick more experts per token than there are experts.
    public static func validate(_ space: SearchSpace, base: PretrainSettings) throws(InvalidSetting) {
        for (index, parameter) in space.parameters.enumerated() {
            let field = "parameters[\(index)] (\(parameter.name))"
            guard let tunable = tunables[parameter.name] else {
                throw InvalidSetting(
                    name: "\(field).name", value: "\"\(parameter.name)\"", expected: "one of \(names.joined(separator: ", "))")
            }
            let range = tunable.range
            let kind = tunable.integer ? "a whole number" : "a number"
            let describe = "\(kind) between \(ParameterValue.number(range.lowerBound)) and \(ParameterValue.number(range.upperBound))"
            switch parameter.domain {
            case .float(let low, let high, _):
                guard !tunable.integer else {
                    throw InvalidSetting(
                        name: "\(field).type", value: "\"float\"", expected: "\"int\" or \"categorical\": \(parameter.name) is whole")
                }
                try InvalidSetting.check("\(field).low", low, in: range)
                try InvalidSetting.check("\(field).high", high, in: range)
            case .integer(let low, let high, _):
                try InvalidSetting.check("\(field).low", Double(low), in: range)
                try InvalidSetting.check("\(field).high", Double(high), in: range)
            case .categorical(let choices):
                for choice in choices {
                    guard let x = choice.number, range.contains(x), !tunable.integer || x.rounded() == x else {
                        throw InvalidSetting(name: "\(field).choices", value: choice.description, expected: describe)
                    }
                }
            }
        }
        let experts = bounds("experts", space) ?? (low: Double(base.model.experts), high: Double(base.model.experts))
        let topK = bounds("top_k", space) ?? (low: Double(base.model.expertsPerToken), high: Double(base.model.expertsPerToken))
        if topK.high > experts.low {
            throw InvalidSetting(
                name: "top_k", value: "up to \(Int(topK.high))",
                expected: "at most the fewest experts the space allows (\(Int(experts.low)))")
        }
    }

    /// The smallest and largest value `name` can take in `space`, if it is there.
    static func bounds(_ name: String, _ space: SearchSpace) -> (low: Double, high: Double)? {
        switch space.parameter(name)?.domain {
        case .float(let low, let high, _): (low, high)
        case .integer(let low, let high, _): (Double(low), Double(high))
        case .categorical(let choices):
            (choices.compactMap(\.number).min() ?? 0, choices.compactMap(\.number).max() ?? 0)
        case nil: nil
        }
    }

    /// `base` with the trial's values in place of its own.
    public static func apply(_ assignment: [String: ParameterValue], to base: PretrainSettings) -> PretrainSettings {
        var settings = base
        for (name, value) in assignment {
            guard let x = value.number else { continue }
            switch name {
            case "lambda_balance": settings.optimization.lambdas.balance = Float(x)
            case "lambda_temporal": settings.optimization.lambdas.temporal = Float(x)
            case "lambda_lookahead": settings.optimization.lambdas.lookahead = Float(x)
            case "lambda_anchor": settings.optimization.lambdas.routerKL = Float(x)
            case "lr": settings.optimization.learningRate = Float(x)
            case "experts": settings.model.experts = Int(x)
            case "top_k": settings.model.expertsPerToken = Int(x)
            case "expert_width": settings.model.moeIntermediateSize = Int(x)
            case "shared_width": settings.model.sharedExpertIntermediateSize = Int(x)
            case "lookahead": settings.model.lookaheadSteps = Int(x)
            case "window": settings.model.slidingWindow = Int(x)
            default: continue
            }
        }
        return settings
    }

    /// Pretrains `trial`: `base` with its values, into `STUDY/trials/N`, each held-out evaluation
    /// reported to the trial (which throws to prune it) after `onEvent` hears it. Returns the
    /// trial's settings and its last held-out cross-entropy.
    public static func train(
        _ trial: TrialContext, base: PretrainSettings, study directory: URL, onEvent: (PretrainEvent) throws -> Void = { _ in }
    ) throws -> (settings: PretrainSettings, crossEntropy: Double) {
        var settings = apply(trial.parameters, to: base)
        settings.output = directory.appendingPathComponent("trials").appendingPathComponent(String(trial.number))
        var crossEntropy = Double.nan
        try PretrainRun(settings: settings).run(start: .overwrite) { event in
            try onEvent(event)
            if case .evaluated(let step, let value) = event {
                crossEntropy = value
                try trial.report(step: step, value: value)
            }
        }
        return (settings, crossEntropy)
    }

    /// A pipeline configuration (`chronos pipeline --config`) with one pretraining stage of `settings`.
    public static func pipelineConfiguration(_ settings: PretrainSettings) throws -> Data {
        let model = try JSONSerialization.jsonObject(with: JSONEncoder().encode(settings.model))
        let o = settings.optimization
        var stage: [String: Any] = [
            "stage": TrainingStage.pretrain.rawValue, "data": settings.data.path, "steps": o.steps, "batch_size": o.batchSize,
            "accumulation": o.accumulation, "learning_rate": shortest(o.learningRate), "warmup_steps": o.warmupSteps,
            "weight_decay": shortest(o.adam.weightDecay), "clip_norm": shortest(o.clipNorm), "seed": NSNumber(value: o.seed),
            "lambda_balance": shortest(o.lambdas.balance), "lambda_temporal": shortest(o.lambdas.temporal),
            "lambda_lookahead": shortest(o.lambdas.lookahead), "lambda_anchor": shortest(o.lambdas.routerKL),
            "fallback_mask_probability": shortest(o.fallbackMaskProbability), "eval_every": settings.evaluateEvery,
            "checkpoint_every": settings.checkpointEvery, "seq_len": settings.sequenceLength,
            "eval_sequences": settings.evaluationSequences
        ]
        stage["heldout"] = settings.heldOut?.path
        let root: [String: Any] = [
            "output": settings.output.path, "model": model, "tokenizer": settings.tokenizer.path, "stages": [stage]
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The `Double` whose decimal form is `value`'s shortest one, so 3e-3 is written 0.003.
    static func shortest(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
}
