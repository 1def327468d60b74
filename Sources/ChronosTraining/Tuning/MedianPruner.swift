import Foundation

/// Stops a trial whose intermediate value (lower is better) at a step is worse than the median
/// of the complete trials' values at that step.
public struct MedianPruner: Sendable, Equatable {
    /// Complete trials that must have reported a step before a trial can be pruned there.
    public var startupTrials: Int
    /// Steps before this one never prune.
    public var warmupSteps: Int

    /// A pruner that waits for `startupTrials` complete trials and `warmupSteps` steps.
    public init(startupTrials: Int = 5, warmupSteps: Int = 0) {
        self.startupTrials = startupTrials
        self.warmupSteps = warmupSteps
    }

    /// Whether a trial reporting `value` at `step` should stop, given the finished `trials`.
    public func shouldPrune(step: Int, value: Double, trials: [TrialRecord]) -> Bool {
        guard step >= warmupSteps else { return false }
        let reported = trials.filter { $0.state == .complete }.compactMap { $0.intermediate[step] }.sorted()
        guard reported.count >= max(startupTrials, 1) else { return false }
        let middle = reported.count / 2
        let median = reported.count % 2 == 1 ? reported[middle] : (reported[middle - 1] + reported[middle]) / 2
        return value > median
    }
}
