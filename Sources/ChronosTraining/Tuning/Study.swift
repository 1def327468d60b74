import Foundation

/// Thrown by `TrialContext.report` when the pruner stops the trial.
public struct TrialPruned: Error, Equatable {
    /// The step at which the trial was stopped.
    public var step: Int
}

/// Thrown by `TrialContext.report` for a value that is not a finite number.
public struct TrialDiverged: Error, Equatable {
    /// The step that reported it.
    public var step: Int
}

/// What a running trial sees: its number and values, and a way to report intermediate values.
public final class TrialContext {
    /// The trial's number in the study.
    public let number: Int
    /// The values of its active parameters.
    public let parameters: [String: ParameterValue]
    /// The intermediate values reported so far, by step.
    public private(set) var intermediate: [Int: Double] = [:]
    let pruner: MedianPruner?
    let finished: [TrialRecord]

    init(number: Int, parameters: [String: ParameterValue], pruner: MedianPruner?, finished: [TrialRecord]) {
        self.number = number
        self.parameters = parameters
        self.pruner = pruner
        self.finished = finished
    }

    /// Records `value` (lower is better) at `step`; throws `TrialPruned` when the pruner stops
    /// the trial, `TrialDiverged` when the value is not a finite number.
    public func report(step: Int, value: Double) throws {
        guard value.isFinite else { throw TrialDiverged(step: step) }
        intermediate[step] = value
        if let pruner, pruner.shouldPrune(step: step, value: value, trials: finished) { throw TrialPruned(step: step) }
    }
}

/// A TPE study kept in a directory: trials are drawn, run and logged one at a time, so a study
/// killed at any point resumes with the trial it was running.
public final class Study {
    /// The log of finished trials.
    public let log: StudyLog
    /// The sampler drawing each trial's values.
    public let sampler: TPESampler
    /// The pruner, if trials may stop early.
    public let pruner: MedianPruner?

    /// The study in `directory`: a new one, or the one already there when `header` matches its
    /// log. The header names the sampler's mode; another mode is refused.
    public init(directory: URL, header: StudyHeader, sampler: TPESampler, pruner: MedianPruner?) throws {
        guard header.sampler == sampler.mode else {
            throw StudyLogError(
                file: directory.path, reason: "the study's header names the \(header.sampler) sampler, but it runs the \(sampler.mode) one")
        }
        log = try StudyLog(directory: directory, header: header)
        self.sampler = sampler
        self.pruner = pruner
    }

    /// The objectives' directions.
    public var directions: [ObjectiveDirection] { log.header.objectives.map(\.direction) }

    /// Runs trials until `count` have finished, earlier runs' included. `objective` returns one
    /// value per objective or throws `TrialPruned` or `TrialDiverged` (from
    /// `TrialContext.report`); a trial with a value that is not a finite number is recorded as
    /// failed; any other error ends the study with the trial unrecorded. `onTrial` sees each
    /// trial as it is logged.
    public func run(trials count: Int, objective: (TrialContext) throws -> [Double], onTrial: (TrialRecord) -> Void) throws {
        while log.trials.count < count {
            let number = log.trials.count
            let parameters = sampler.suggest(in: log.header.space, trials: log.trials, directions: directions, number: number)
            let context = TrialContext(number: number, parameters: parameters, pruner: pruner, finished: log.trials)
            let record: TrialRecord
            do {
                let values = try objective(context)
                guard values.count == directions.count else {
                    throw StudyLogError(
                        file: log.url.path, reason: "trial \(number) returned \(values.count) values for \(directions.count) objectives")
                }
                let finite = values.allSatisfy(\.isFinite)
                record = TrialRecord(
                    number: number, parameters: parameters, state: finite ? .complete : .failed, values: finite ? values : [],
                    intermediate: context.intermediate)
            } catch is TrialPruned {
                record = TrialRecord(number: number, parameters: parameters, state: .pruned, values: [], intermediate: context.intermediate)
            } catch is TrialDiverged {
                record = TrialRecord(number: number, parameters: parameters, state: .failed, values: [], intermediate: context.intermediate)
            }
            try log.append(record)
            onTrial(record)
        }
    }

    /// The best complete trials: the one with the best value, or with several objectives the
    /// Pareto front, best first by the first objective.
    public var best: [TrialRecord] {
        let complete = log.trials.filter { $0.state == .complete }
        let losses = complete.map { zip(directions, $0.values).map { $0.loss($1) } }
        return ParetoFront.front(losses).map { complete[$0] }.sorted {
            (directions[0].loss($0.values[0]), $0.number) < (directions[0].loss($1.values[0]), $1.number)
        }
    }
}
