import ChronosBench
import ChronosEngine
import ChronosModel
import ChronosStorage

/// Metrics of a run that decoded `steps` tokens in `seconds`, with nothing else recorded.
func metrics(
    _ mode: ExpertResidencyMode, policy: MissPolicy? = nil, budgetBytes: Int = 0, steps: Int = 0,
    seconds: Double = 0
) -> OffloadRunMetrics {
    var metrics = OffloadRunMetrics(name: mode.rawValue, mode: mode, policy: policy, budgetBytes: budgetBytes, totalExpertBytes: 1000)
    metrics.decodeSteps = steps
    metrics.decodeSeconds = seconds
    return metrics
}

/// Experts of layer 0 by letter, for hand-worked routings.
let expertA = ExpertKey(layer: 0, expert: 0), expertB = ExpertKey(layer: 0, expert: 1), expertC = ExpertKey(layer: 0, expert: 2)
