import ChronosEngine
import ChronosModel
import ChronosStorage
import Foundation

/// What each run of the offload benchmark is judged by, computed from what the runs recorded.
extension OffloadBench {
    /// Tokens/s allowed by max(compute s/token, missed bytes per token / disk bandwidth); the
    /// bandwidth is `disk`'s, else the one the run's own reads achieved. Nil when bytes were
    /// missed and neither is known, or when there is no time at all.
    public static func bound(_ metrics: OffloadRunMetrics, compute: Double, disk: DiskModel?) -> Double? {
        let missed = metrics.missedBytesPerToken
        var seconds = compute
        if missed > 0 {
            if let disk {
                seconds = max(seconds, missed / disk.bandwidth)
            } else if metrics.decode.readNanoseconds > 0, metrics.decode.bytesRead > 0 {
                let bandwidth = Double(metrics.decode.bytesRead) / (Double(metrics.decode.readNanoseconds) / 1e9)
                seconds = max(seconds, missed / bandwidth)
            } else {
                return nil
            }
        }
        return seconds > 0 ? 1 / seconds : nil
    }

    /// Sets the bound of every run that ran, compute being `runs[0]`'s (resident's) time per token.
    public static func scoreBounds(_ runs: inout [Run], disk: DiskModel?) {
        let reference = runs[0].metrics.tokensPerSecond
        let compute = reference > 0 ? 1 / reference : 0
        for index in runs.indices where runs[index].note == nil {
            runs[index].boundTokensPerSecond = bound(runs[index].metrics, compute: compute, disk: disk)
        }
    }

    /// The oracle hit rate of every run that keeps experts under a budget: Belady's MIN replayed
    /// on `runs[0]`'s (resident's) routing within the run's budget, counting decode steps only.
    /// Under `wait` the other runs route the same greedy tokens; for lossy runs it approximates.
    public static func scoreOracle(_ runs: inout [Run], expertBytes: (ExpertKey) -> Int) {
        var byBudget: [Int: Double] = [:]
        for index in runs.indices where runs[index].note == nil && runs[index].metrics.mode != .resident {
            let budget = runs[index].metrics.budgetBytes
            if byBudget[budget] == nil {
                let result = BeladyOracle.simulate(
                    steps: runs[0].routing, counted: runs[0].decodeSteps, capacity: budget, bytes: expertBytes)
                byBudget[budget] = result.needed > 0 ? Double(result.hits) / Double(result.needed) : nil
            }
            runs[index].oracleHitRate = byBudget[budget]
        }
    }

    /// Share of the reference's generated positions at which `ids` holds the same token (per
    /// prompt, position by position; a shorter generation disagrees where it has no token), or
    /// nil when the reference generated nothing.
    public static func greedyAgreement(_ ids: [[Int]], reference: [[Int]]) -> Double? {
        var same = 0, total = 0
        for (ours, theirs) in zip(ids, reference) {
            total += theirs.count
            same += zip(ours, theirs).filter { $0 == $1 }.count
        }
        return total > 0 ? Double(same) / Double(total) : nil
    }

    /// Mean negative log-likelihood per token of `continuations` after their `prompts`, from the
    /// log-probability `forcedLogProbabilities` gives each continuation token when the model is
    /// fed the prompt and the continuation before it (teacher forcing); prompts with an empty
    /// continuation are skipped, and the mean weighs every token alike. 0 when nothing is scored.
    public static func crossEntropy(
        prompts: [[Int]], continuations: [[Int]],
        forcedLogProbabilities: ([Int], [Int]) throws -> [Float]
    ) rethrows -> Double {
        var total = 0.0, count = 0
        for (prompt, continuation) in zip(prompts, continuations) where !continuation.isEmpty {
            let logProbabilities = try forcedLogProbabilities(prompt, continuation)
            total -= logProbabilities.reduce(0.0) { $0 + Double($1) }
            count += logProbabilities.count
        }
        return count > 0 ? total / Double(count) : 0
    }
}
