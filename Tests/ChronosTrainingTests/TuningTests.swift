import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTraining

final class ParzenEstimatorTests: XCTestCase {
    /// Observations 0.2 and 0.6 on [0, 1]: each, as the smallest or largest of two, takes the
    /// gap to the other, σ = 0.4 (above the clip (1 − 0); min(100, 2 + 2) = 0.25); the prior sits
    /// at 0.5 with σ = 1; each weighs 1/3. Values from the closed form with erf.
    func testDensityOfTwoTruncatedGaussiansAndThePrior() {
        let estimator = ParzenEstimator(observations: [0.2, 0.6], low: 0, high: 1, priorWeight: 1)
        XCTAssert(zip(estimator.sigmas, [0.4, 0.4, 1.0]).allSatisfy { abs($0 - $1) < 1e-15 }, "\(estimator.sigmas)")
        XCTAssert(estimator.weights.allSatisfy { abs($0 - 1.0 / 3) < 1e-15 })
        XCTAssert(abs(estimator.density(0.5) - 1.138567016145225) < 1e-12)
        XCTAssert(abs(estimator.density(0) - 0.8845550672727142) < 1e-12)
        XCTAssert(abs(estimator.mass(from: 0.4, to: 0.6) - 0.22645018352930257) < 1e-12)
        XCTAssert(abs(estimator.mass(from: 0, to: 1) - 1) < 1e-12)
    }

    /// Crowded observations are widened to (high − low) / min(100, n + 2) = 10 / 5 = 2; the
    /// empty stretches out to 0 and 10 do not widen the outer two.
    func testNarrowKernelsAreClippedToTheMinimumWidth() {
        let estimator = ParzenEstimator(observations: [4.9, 5.0, 5.1], low: 0, high: 10, priorWeight: 1)
        XCTAssert(zip(estimator.sigmas, [2, 2, 2, 10]).allSatisfy { abs($0 - $1) < 1e-12 }, "\(estimator.sigmas)")
    }

    /// A lone observation has only the interval's ends for neighbours: σ = max(0.3, 0.7).
    func testALoneObservationReachesTheFartherEnd() {
        XCTAssertEqual(ParzenEstimator(observations: [0.3], low: 0, high: 1, priorWeight: 1).sigmas, [0.7, 1])
    }

    func testDrawsStayInTheSupportAndFollowTheDensity() {
        let estimator = ParzenEstimator(observations: [0.1, 0.12, 0.15], low: 0, high: 1, priorWeight: 1)
        var random = SplitMix64(seed: 1)
        let draws = (0..<4000).map { _ in estimator.sample(&random) }
        XCTAssert(draws.allSatisfy { (0...1).contains($0) })
        let share = Double(draws.filter { $0 < 0.3 }.count) / Double(draws.count)
        XCTAssert(abs(share - estimator.mass(from: 0, to: 0.3)) < 0.03)
    }

    /// Observed categories 0, 0, 2 of three with prior weight 1: s = 1/4, so an observation's
    /// kernel gives its category 5/7 and the others 1/7 each; with the uniform prior, each
    /// weighing 1/4: (2·5/7 + 1/7 + 1/3, 2/7 + 1/7 + 1/3, 2/7 + 5/7 + 1/3) / 4 = (10, 4, 7) / 21.
    func testCategoricalWeightsIncludeThePrior() {
        let estimator = CategoricalEstimator(observations: [0, 0, 2], categories: 3, priorWeight: 1)
        XCTAssert(zip(estimator.probabilities, [10.0 / 21, 4.0 / 21, 7.0 / 21]).allSatisfy { abs($0 - $1) < 1e-15 })
    }

    /// With no observations only the prior is left: uniform.
    func testCategoricalWithoutObservationsIsUniform() {
        XCTAssertEqual(CategoricalEstimator(observations: [], categories: 4, priorWeight: 1).probabilities, [0.25, 0.25, 0.25, 0.25])
    }
}

final class JointParzenEstimatorTests: XCTestCase {
    /// Observations (0.2, 0.5) and (0.6, 1.5) on [0, 1] × [0, 2]: on x each takes σ = 0.4 (the
    /// gap to the other), on y σ = 1 (clip (2 − 0) / 4 = 0.5 is below); the prior kernel sits at
    /// (0.5, 1) with σ = (1, 2); each kernel weighs 1/3. The density is the weighted sum of
    /// products of truncated Gaussians; values from the closed form with erf.
    func testDensityOfTwoProductKernelsAndThePrior() {
        let estimator = JointParzenEstimator(
            observations: [[0.2, 0.5], [0.6, 1.5]], axes: [.continuous(low: 0, high: 1), .continuous(low: 0, high: 2)], priorWeight: 1)
        XCTAssertEqual(estimator.means, [[0.2, 0.5], [0.6, 1.5], [0.5, 1]])
        XCTAssert(zip(estimator.sigmas.joined(), [0.4, 1, 0.4, 1, 1, 2]).allSatisfy { abs($0 - $1) < 1e-15 }, "\(estimator.sigmas)")
        XCTAssert(abs(estimator.logDensity([.point(0.3), .point(1.0)]) - -0.4596404171894085) < 1e-12)
        XCTAssert(abs(estimator.logDensity([.point(0.9), .point(0.2)]) - -1.1754348850124894) < 1e-12)
    }

    /// The same x axis beside three categories, observations (0.2, 0) and (0.6, 2): s = 1/3, so
    /// an observation's kernel gives its category 2/3 and the others 1/6; the prior 1/3 each.
    func testCategoricalAxisMultipliesItsKernel() {
        let estimator = JointParzenEstimator(
            observations: [[0.2, 0], [0.6, 2]], axes: [.continuous(low: 0, high: 1), .categorical(count: 3)], priorWeight: 1)
        XCTAssertEqual(estimator.categoryProbabilities[0][1].map { ($0 * 6).rounded() }, [4, 1, 1])
        let expected = [-0.7159986647760095, -1.3952320607352544, -0.8921493855082774]
        for (category, value) in expected.enumerated() {
            XCTAssert(abs(estimator.logDensity([.point(0.3), .category(category)]) - value) < 1e-12, "category \(category)")
        }
    }

    /// Masses of the unit cells of an integer axis 1...4, times every category, add up to 1.
    func testCellsAndCategoriesCoverTheWholeMass() {
        let estimator = JointParzenEstimator(
            observations: [[2, 1], [2, 0], [4, 1]], axes: [.continuous(low: 0.5, high: 4.5), .categorical(count: 2)], priorWeight: 1)
        var total = 0.0
        for k in 1...4 {
            for category in 0..<2 {
                total += Foundation.exp(estimator.logDensity([.cell(Double(k) - 0.5, Double(k) + 0.5), .category(category)]))
            }
        }
        XCTAssert(abs(total - 1) < 1e-12, "\(total)")
    }

    /// Draws stay in the support and take all coordinates from one kernel: 100 observations
    /// evenly along the anti-diagonal x + y = 1 (σ = 0.01 on each axis) and no prior give draws
    /// near that line, where independent draws from the two marginals would fill the square.
    func testDrawsKeepTheCoordinatesOfOneKernelTogether() {
        let observations = (0..<100).map { (i: Int) -> [Double] in
            let x = (Double(i) + 0.5) / 100
            return [x, 1 - x]
        }
        let estimator = JointParzenEstimator(
            observations: observations, axes: [.continuous(low: 0, high: 1), .continuous(low: 0, high: 1)], priorWeight: 0)
        var random = SplitMix64(seed: 4)
        let draws = (0..<2000).map { _ in estimator.sample(&random) }
        XCTAssert(draws.allSatisfy { (0...1).contains($0[0]) && (0...1).contains($0[1]) })
        XCTAssert(draws.allSatisfy { abs($0[0] + $0[1] - 1) < 0.1 }, "\(draws.filter { abs($0[0] + $0[1] - 1) >= 0.1 })")
        XCTAssert(draws.contains { $0[0] < 0.2 } && draws.contains { $0[0] > 0.8 })
    }
}

final class ParetoFrontTests: XCTestCase {
    /// A(1,5) B(2,2) C(5,1) form the front; D(3,3) and F(2,6) the next (D is beaten by B, F by
    /// A); E(4,4) is beaten by D too.
    func testRanksAHandExample() {
        let points: [[Double]] = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [2, 6]]
        XCTAssertEqual(ParetoFront.front(points), [0, 1, 2])
        XCTAssertEqual(ParetoFront.ranks(points), [0, 0, 0, 1, 2, 1])
        XCTAssert(!ParetoFront.dominates([1, 1], [1, 1]))
    }

    func testMultiObjectiveOrderingFollowsRankWithMaximisedObjectivesTurned() {
        // Objective 2 is maximised: trial 2 (loss 1, throughput 10) dominates trial 0 (loss 2, throughput 5).
        let trials = [
            TrialRecord(number: 0, parameters: [:], state: .complete, values: [2, 5]),
            TrialRecord(number: 1, parameters: [:], state: .pruned, values: [], intermediate: [10: 9]),
            TrialRecord(number: 2, parameters: [:], state: .complete, values: [1, 10]),
            TrialRecord(number: 3, parameters: [:], state: .complete, values: [0.5, 1])
        ]
        let order = TPESampler.bestFirst(trials, directions: [.minimize, .maximize]).map(\.number)
        XCTAssertEqual(order, [2, 3, 0, 1])
    }
}

final class MedianPrunerTests: XCTestCase {
    static func completed(_ values: [Double], step: Int) -> [TrialRecord] {
        values.enumerated().map {
            TrialRecord(number: $0.offset, parameters: [:], state: .complete, values: [$0.element], intermediate: [step: $0.element])
        }
    }

    func testPrunesAboveTheMedianOfCompleteTrials() {
        let pruner = MedianPruner(startupTrials: 3, warmupSteps: 5)
        let trials = Self.completed([1, 2, 3, 4, 5], step: 10)
        XCTAssert(pruner.shouldPrune(step: 10, value: 3.5, trials: trials))
        XCTAssert(!pruner.shouldPrune(step: 10, value: 3, trials: trials))
        XCTAssert(!pruner.shouldPrune(step: 10, value: 2.5, trials: trials))
        // The median of an even count is the mean of the middle two: 2.5.
        XCTAssert(pruner.shouldPrune(step: 10, value: 2.6, trials: Self.completed([1, 2, 3, 4], step: 10)))
    }

    func testWaitsForWarmupAndStartupAndIgnoresPrunedTrials() {
        let pruner = MedianPruner(startupTrials: 3, warmupSteps: 5)
        XCTAssert(!pruner.shouldPrune(step: 4, value: 100, trials: Self.completed([1, 2, 3], step: 4)))
        XCTAssert(!pruner.shouldPrune(step: 10, value: 100, trials: Self.completed([1, 2], step: 10)))
        XCTAssert(!pruner.shouldPrune(step: 11, value: 100, trials: Self.completed([1, 2, 3], step: 10)))
        var trials = Self.completed([1, 2], step: 10)
        trials.append(TrialRecord(number: 9, parameters: [:], state: .pruned, values: [], intermediate: [10: 0]))
        XCTAssert(!pruner.shouldPrune(step: 10, value: 100, trials: trials))
    }
}

final class TPESamplerTests: XCTestCase {
    static let mixed = try! SearchSpace(parameters: [
        SearchParameter(name: "x", domain: .float(low: -5, high: 5, log: false)),
        SearchParameter(name: "rate", domain: .float(low: 1e-4, high: 1, log: true)),
        SearchParameter(name: "width", domain: .integer(low: 16, high: 1024, log: true)),
        SearchParameter(name: "mode", domain: .categorical([.text("on"), .text("off")])),
        SearchParameter(
            name: "depth", domain: .integer(low: 1, high: 4, log: false),
            condition: ParameterCondition(parent: "mode", values: [.text("on")]))
    ])

    /// Runs `count` trials of `objective` and returns them.
    static func study(_ sampler: TPESampler, _ space: SearchSpace, count: Int, _ objective: ([String: ParameterValue]) -> Double)
        -> [TrialRecord]
    {
        var trials: [TrialRecord] = []
        for number in 0..<count {
            let parameters = sampler.suggest(in: space, trials: trials, directions: [.minimize], number: number)
            trials.append(TrialRecord(number: number, parameters: parameters, state: .complete, values: [objective(parameters)]))
        }
        return trials
    }

    static func penalty(_ p: [String: ParameterValue]) -> Double {
        let x = p["x"]!.number!, rate = p["rate"]!.number!
        return (x - 1) * (x - 1) + abs(log10(rate) + 2) + (p["mode"] == .text("on") ? 0 : 1)
    }

    func testSuggestionsRespectDomainsAndConditions() {
        for mode in TPESampler.Mode.allCases {
            let trials = Self.study(TPESampler(startupTrials: 5, mode: mode, seed: 3), Self.mixed, count: 30, Self.penalty)
            for trial in trials {
                for parameter in Self.mixed.parameters {
                    let active = Self.mixed.isActive(parameter, in: trial.parameters)
                    XCTAssert((trial.parameters[parameter.name] != nil) == active, "\(mode): \(parameter.name) in trial \(trial.number)")
                    if let value = trial.parameters[parameter.name] { XCTAssert(parameter.domain.contains(value), "\(mode): \(value)") }
                }
            }
        }
    }

    func testTheSameSeedGivesTheSameStudyAndAnotherSeedAnother() {
        for mode in TPESampler.Mode.allCases {
            let a = Self.study(TPESampler(startupTrials: 5, mode: mode, seed: 7), Self.mixed, count: 15, Self.penalty)
            let b = Self.study(TPESampler(startupTrials: 5, mode: mode, seed: 7), Self.mixed, count: 15, Self.penalty)
            let c = Self.study(TPESampler(startupTrials: 5, mode: mode, seed: 8), Self.mixed, count: 15, Self.penalty)
            XCTAssertEqual(a, b, "\(mode)")
            XCTAssert(a.map(\.parameters) != c.map(\.parameters), "\(mode)")
        }
    }

    /// The two modes share the random startup trials and then part ways.
    func testTheModesShareTheStartupTrialsOnly() {
        let independent = Self.study(TPESampler(startupTrials: 5, mode: .independent, seed: 7), Self.mixed, count: 15, Self.penalty)
        let multivariate = Self.study(TPESampler(startupTrials: 5, mode: .multivariate, seed: 7), Self.mixed, count: 15, Self.penalty)
        XCTAssertEqual(independent.prefix(5), multivariate.prefix(5))
        XCTAssert(zip(independent, multivariate).dropFirst(5).allSatisfy { $0.parameters != $1.parameters })
    }

    /// In multivariate mode the categorical `mode` is an axis of the joint estimator and
    /// `depth`, which only "on" trials have, is drawn on its own from the trials that have it:
    /// "on" costs 1 less, so most guided trials choose it, and depth's best value, 3, shows up
    /// more often than its share of random draws (¼).
    func testMultivariateLearnsTheCategoricalAndTheConditionalParameter() {
        let objective = { (p: [String: ParameterValue]) in
            Self.penalty(p) + (p["depth"].map { abs($0.number! - 3) } ?? 0)
        }
        var on = 0, deep = 0, guided = 0
        for seed: UInt64 in 1...5 {
            let trials = Self.study(TPESampler(startupTrials: 10, mode: .multivariate, seed: seed), Self.mixed, count: 40, objective)
            for trial in trials.dropFirst(10) {
                guided += 1
                if trial.parameters["mode"] == .text("on") { on += 1 }
                if trial.parameters["depth"] == .number(3) { deep += 1 }
            }
        }
        XCTAssert(Double(on) > 0.75 * Double(guided), "\(on) of \(guided) guided trials chose on")
        XCTAssert(Double(deep) > 0.5 * Double(on), "\(deep) of \(on) trials with depth chose 3")
    }

    func testGuidedTrialsBeatRandomOnes() {
        let space = try! SearchSpace(parameters: [
            SearchParameter(name: "x", domain: .float(low: -5, high: 5, log: false)),
            SearchParameter(name: "rate", domain: .float(low: 1e-4, high: 1, log: true))
        ])
        func best(_ startup: Int, seed: UInt64) -> Double {
            let objective = { (p: [String: ParameterValue]) in Self.penalty(p.merging(["mode": .text("on")]) { a, _ in a }) }
            return Self.study(TPESampler(startupTrials: startup, seed: seed), space, count: 40, objective).map { $0.values[0] }.min()!
        }
        let seeds: [UInt64] = [1, 2, 3, 4, 5]
        let guided = seeds.map { best(10, seed: $0) }.reduce(0, +), random = seeds.map { best(40, seed: $0) }.reduce(0, +)
        XCTAssert(guided < random / 2, "TPE \(guided) vs random \(random)")
    }
}

final class SearchSpaceJSONTests: XCTestCase {
    static func error(_ json: String) -> InvalidSetting? {
        do {
            _ = try SearchSpace(json: Data(json.utf8))
            return nil
        } catch { return error }
    }

    func testReadsEveryKindAndWritesTheSameSpaceBack() throws {
        let json = """
            {"parameters": [
              {"name": "lr", "type": "float", "low": 0.0001, "high": 0.01, "log": true},
              {"name": "experts", "type": "int", "low": 4, "high": 16},
              {"name": "top_k", "type": "categorical", "choices": [1, 2]},
              {"name": "lambda_anchor", "type": "float", "low": 0, "high": 0.1, "when": {"parameter": "top_k", "values": [2]}}
            ]}
            """
        let space = try SearchSpace(json: Data(json.utf8))
        XCTAssertEqual(space.parameters[1].domain, .integer(low: 4, high: 16, log: false))
        XCTAssertEqual(space.parameters[3].condition, ParameterCondition(parent: "top_k", values: [.number(2)]))
        XCTAssertEqual(try SearchSpace(json: JSONSerialization.data(withJSONObject: space.jsonObject)), space)
    }

    func testNamesTheFieldTheValueAndTheRange() {
        XCTAssert(
            Self.error(#"{"parameters": [{"name": "x", "type": "uniform"}]}"#)
                == InvalidSetting(name: "parameters[0] (x).type", value: "\"uniform\"", expected: "\"float\", \"int\" or \"categorical\""))
        XCTAssert(
            Self.error(#"{"parameters": [{"name": "x", "type": "float", "low": 0, "high": 1, "log": true}]}"#)
                == InvalidSetting(name: "parameters[0] (x).low", value: "0.0", expected: "above 0 on a log scale"))
        XCTAssert(Self.error(#"{"parameters": [{"name": "x", "type": "float", "low": 2, "high": 1}]}"#)?.name == "parameters[0] (x).high")
        XCTAssert(Self.error(#"{"parameters": [{"name": "x", "type": "int", "low": 1.5, "high": 3}]}"#)?.name == "parameters[0] (x).low")
        XCTAssert(
            Self.error(#"{"parameters": [{"name": "x", "type": "categorical", "choices": [1, 1]}]}"#)?.name == "parameters[0] (x).choices")
        XCTAssert(
            Self.error(#"{"parameters": [{"name": "x", "type": "categorical", "choices": [1], "low": 0}]}"#)?.name
                == "parameters[0] (x) key")
        XCTAssert(
            Self.error(
                #"{"parameters": [{"name": "y", "type": "float", "low": 0, "high": 1, "when": {"parameter": "x", "values": [1]}}]}"#)
                == InvalidSetting(name: "parameters[0] (y).when.parameter", value: "\"x\"", expected: "the name of an earlier parameter"))
        XCTAssert(
            Self.error(
                #"{"parameters": [{"name": "x", "type": "categorical", "choices": [1, 2]}, {"name": "y", "type": "float", "low": 0, "high": 1, "when": {"parameter": "x", "values": [3]}}]}"#
            ) == InvalidSetting(name: "parameters[1] (y).when.values", value: "3", expected: "a value x can take"))
        XCTAssert(
            Self.error(
                #"{"parameters": [{"name": "x", "type": "int", "low": 1, "high": 2}, {"name": "x", "type": "int", "low": 1, "high": 2}]}"#)?
                .name == "parameters[1].name")
        XCTAssert(Self.error(#"{"parameters": []}"#)?.name == "parameters")
        XCTAssertEqual(Self.error("[1]")?.name, "search space")
    }
}

final class StudyLogTests: XCTestCase {
    static let space = try! SearchSpace(parameters: [SearchParameter(name: "x", domain: .float(low: 0, high: 1, log: false))])
    static let header = StudyHeader(
        space: space, objectives: [StudyObjective(name: "loss", direction: .minimize)], sampler: .multivariate,
        settings: ["steps": "10"])

    func testReopensItsTrialsAndDropsALineAKillCutShort() throws {
        let directory = try Fixtures.temporaryDirectory()
        let log = try StudyLog(directory: directory, header: Self.header)
        let first = TrialRecord(number: 0, parameters: ["x": .number(0.25)], state: .complete, values: [1.5], intermediate: [5: 2.5])
        let second = TrialRecord(number: 1, parameters: ["x": .number(0.75)], state: .pruned, values: [], intermediate: [5: 3])
        try log.append(first)
        try log.append(second)
        let handle = try FileHandle(forWritingTo: log.url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"number": 2, "sta"#.utf8))
        try handle.close()
        let reopened = try StudyLog(directory: directory, header: Self.header)
        XCTAssertEqual(reopened.trials, [first, second])
        try reopened.append(first)
        XCTAssertEqual(try StudyLog(directory: directory, header: Self.header).trials.count, 3)
    }

    /// Values read back are the Doubles written, to the last bit (Foundation on Linux reads the
    /// text 0.3696555471372057 as 0.36965554713720566), so a resumed study draws what the
    /// whole run would have.
    func testReadsBackTheExactDoublesItWrote() throws {
        let directory = try Fixtures.temporaryDirectory()
        let trial = TrialRecord(
            number: 0, parameters: ["x": .number(0.3696555471372057)], state: .complete, values: [0.2191615913837197],
            intermediate: [1: 0.9518269479964333])
        try StudyLog(directory: directory, header: Self.header).append(trial)
        XCTAssertEqual(try StudyLog(directory: directory, header: Self.header).trials, [trial])
    }

    func testRefusesALogOfAnotherSamplerModeAndReadsAnOldHeaderAsIndependent() throws {
        let directory = try Fixtures.temporaryDirectory()
        var independent = Self.header
        independent.sampler = .independent
        _ = try StudyLog(directory: directory, header: independent)
        XCTAssertThrowsError(try StudyLog(directory: directory, header: Self.header)) {
            XCTAssert(($0 as? StudyLogError)?.reason.contains("sampler") == true, "\($0)")
        }
        // A log written before the sampler had modes has no "sampler" in its header.
        let url = directory.appendingPathComponent(StudyLog.fileName)
        var header = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        XCTAssertEqual(header.removeValue(forKey: "sampler") as? String, "independent")
        try (JSONSerialization.data(withJSONObject: header) + Data("\n".utf8)).write(to: url)
        XCTAssertNoThrow(try StudyLog(directory: directory, header: independent))
        XCTAssertThrowsError(try StudyLog(directory: directory, header: Self.header))
    }

    func testRefusesALogOfAnotherStudy() throws {
        let directory = try Fixtures.temporaryDirectory()
        _ = try StudyLog(directory: directory, header: Self.header)
        var other = Self.header
        other.space = try SearchSpace(parameters: [SearchParameter(name: "x", domain: .float(low: 0, high: 2, log: false))])
        XCTAssertThrowsError(try StudyLog(directory: directory, header: other)) { XCTAssert($0 is StudyLogError) }
        var budget = Self.header
        budget.settings["steps"] = "20"
        XCTAssertThrowsError(try StudyLog(directory: directory, header: budget)) { XCTAssert($0 is StudyLogError) }
    }
}

final class StudyTests: XCTestCase {
    struct Killed: Error {}

    static func objective(_ context: TrialContext) throws -> [Double] {
        let x = context.parameters["x"]!.number!
        try context.report(step: 1, value: (x - 0.3) * (x - 0.3) + 1)
        return [(x - 0.3) * (x - 0.3)]
    }

    static func study(_ directory: URL) throws -> Study {
        try Study(
            directory: directory, header: StudyLogTests.header, sampler: TPESampler(startupTrials: 4, seed: 11),
            pruner: MedianPruner(startupTrials: 3))
    }

    func testAKilledStudyResumesWithoutRepeatingAFinishedTrial() throws {
        let killed = try Fixtures.temporaryDirectory(), whole = try Fixtures.temporaryDirectory()
        var calls: [Int] = []
        do {
            try Self.study(killed).run(
                trials: 12,
                objective: { context in
                    calls.append(context.number)
                    if context.number == 7 { throw Killed() }
                    return try Self.objective(context)
                }, onTrial: { _ in })
            XCTFail("the study ran past the kill")
        } catch is Killed {}
        try Self.study(killed).run(
            trials: 12,
            objective: { context in
                calls.append(context.number)
                return try Self.objective(context)
            }, onTrial: { _ in })
        XCTAssertEqual(calls, Array(0...7) + Array(7..<12))
        let resumed = try StudyLog(directory: killed, header: StudyLogTests.header).trials
        try Self.study(whole).run(trials: 12, objective: Self.objective, onTrial: { _ in })
        XCTAssertEqual(resumed, (try StudyLog(directory: whole, header: StudyLogTests.header).trials))
        XCTAssertEqual(resumed.map(\.number), Array(0..<12))
        // With three complete trials in, a trial above their median at step 1 is stopped there.
        XCTAssert(resumed.contains { $0.state == .pruned && $0.values.isEmpty })
        let best = try Self.study(whole).best
        XCTAssert(best.count == 1 && best[0].values[0] == resumed.filter { $0.state == .complete }.map { $0.values[0] }.min())
    }
}

final class PretrainTuningTests: XCTestCase {
    static let base = PretrainSettings(
        model: ChronosConfiguration(), optimization: OptimizationSettings(), data: URL(fileURLWithPath: "/data/train.jsonl"),
        heldOut: URL(fileURLWithPath: "/data/heldout.jsonl"), tokenizer: URL(fileURLWithPath: "/runs/tokenizer"),
        output: URL(fileURLWithPath: "/runs/best"))

    static func error(_ parameters: [SearchParameter]) -> InvalidSetting? {
        do {
            try PretrainTuning.validate(SearchSpace(parameters: parameters), base: base)
            return nil
        } catch { return error }
    }

    func testRefusesUnknownNamesRangesTrainingRefusesAndTooManyExpertsPerToken() {
        XCTAssert(
            Self.error([SearchParameter(name: "lambda_bal", domain: .float(low: 0, high: 1, log: false))])?.name
                == "parameters[0] (lambda_bal).name")
        XCTAssert(
            Self.error([SearchParameter(name: "lambda_balance", domain: .float(low: 0, high: 2000, log: false))])
                == InvalidSetting(name: "parameters[0] (lambda_balance).high", value: "2000.0", expected: "between 0.0 and 1000.0"))
        XCTAssert(
            Self.error([SearchParameter(name: "experts", domain: .float(low: 2, high: 8, log: false))])?.name
                == "parameters[0] (experts).type")
        XCTAssert(
            Self.error([SearchParameter(name: "window", domain: .categorical([.number(64), .text("wide")]))])?.name
                == "parameters[0] (window).choices")
        XCTAssert(
            Self.error([
                SearchParameter(name: "experts", domain: .integer(low: 2, high: 8, log: false)),
                SearchParameter(name: "top_k", domain: .categorical([.number(1), .number(4)]))
            ]) == InvalidSetting(name: "top_k", value: "up to 4", expected: "at most the fewest experts the space allows (2)"))
        XCTAssert(
            Self.error([
                SearchParameter(name: "experts", domain: .integer(low: 4, high: 8, log: true)),
                SearchParameter(name: "top_k", domain: .integer(low: 1, high: 4, log: false)),
                SearchParameter(name: "lr", domain: .float(low: 1e-4, high: 1e-2, log: true))
            ]) == nil)
    }

    func testTheBestTrialBecomesAPipelineConfigurationThatReadsBack() throws {
        let trial: [String: ParameterValue] = [
            "lambda_balance": .number(0.02), "lambda_anchor": .number(0.005), "lr": .number(0.001), "experts": .number(6),
            "top_k": .number(3), "expert_width": .number(96), "shared_width": .number(64), "lookahead": .number(2),
            "window": .number(32), "lambda_temporal": .number(0.3), "lambda_lookahead": .number(0.25)
        ]
        let settings = PretrainTuning.apply(trial, to: Self.base)
        let pipeline = try PipelineConfiguration(
            json: PretrainTuning.pipelineConfiguration(settings), baseDirectory: URL(fileURLWithPath: "/"))
        let stage = try XCTUnwrap(pipeline.stages.first)
        XCTAssert(pipeline.stages.count == 1 && stage.stage == .pretrain)
        XCTAssert(pipeline.model.experts == 6 && pipeline.model.expertsPerToken == 3 && pipeline.model.moeIntermediateSize == 96)
        XCTAssert(
            pipeline.model.sharedExpertIntermediateSize == 64 && pipeline.model.lookaheadSteps == 2 && pipeline.model.slidingWindow == 32)
        XCTAssert(stage.optimization.learningRate == 0.001 && stage.optimization.lambdas.balance == 0.02)
        XCTAssert(stage.optimization.lambdas.routerKL == 0.005 && stage.optimization.lambdas.temporal == 0.3)
        XCTAssertEqual(stage.optimization.lambdas.lookahead, 0.25)
        XCTAssert(stage.heldOut?.path == "/data/heldout.jsonl" && pipeline.tokenizer?.path == "/runs/tokenizer")
        XCTAssertEqual(pipeline.output.path, "/runs/best")
    }
}
