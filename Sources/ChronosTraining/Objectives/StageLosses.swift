import ChronosTensor
import Foundation

/// Differentiable pieces the stage losses need beyond the tensor library's ops.
extension Tensor {
    /// log σ(x) = min(x, 0) − log(1 + e^(−|x|)) elementwise, stable for large |x|;
    /// ∂/∂x = σ(−x).
    public func logSigmoid() -> Tensor {
        let xs = floats
        let out = Tensor(
            shape: shape,
            values: xs.map { x in
                Float(Swift.min(Double(x), 0) - Foundation.log1p(Foundation.exp(-abs(Double(x)))))
            })
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.floats
            return [Tensor(shape: out.shape, values: xs.indices.map { gs[$0] / (1 + Foundation.exp(xs[$0])) })]
        }
    }

    /// log(1 − e^x) elementwise for x < 0 (a log-probability to the log of its complement);
    /// x is capped at −1e−7 so a certain event stays finite. ∂/∂x = −e^x / (1 − e^x).
    public func logOneMinusExp() -> Tensor {
        let xs = floats.map { Swift.min(Double($0), -1e-7) }
        let out = Tensor(
            shape: shape,
            values: xs.map { x in
                Float(x > -Foundation.log(2.0) ? Foundation.log(-Foundation.expm1(x)) : Foundation.log1p(-Foundation.exp(x)))
            })
        return Autograd.record(out, inputs: [self]) { g in
            let gs = g.floats
            return [Tensor(shape: out.shape, values: xs.indices.map { Float(Double(gs[$0]) / Foundation.expm1(-xs[$0]) * -1) })]
        }
    }

    /// A tensor of this shape holding `value` everywhere (a constant).
    func filled(_ value: Float) -> Tensor {
        Tensor(shape: shape, values: [Float](repeating: value, count: count))
    }
}

/// Log-probabilities a model gives the tokens of a sequence.
public enum TokenLogProbabilities {
    /// log p(target_t | …) for every position whose target is not `CrossEntropy.ignoreIndex`,
    /// in order: `[n]`, recorded through `logits` `[T, vocab]`.
    public static func of(logits: Tensor, targets: [Int]) -> Tensor {
        let rows = targets.indices.filter { targets[$0] != CrossEntropy.ignoreIndex }
        guard !rows.isEmpty else { return Tensor(zeros: [0]) }
        return logits.gatherRows(rows).logSoftmax().pick(rows.map { targets[$0] })
    }

    /// Σ_t log p(target_t) over the counted positions, `[1]`: the log-probability of the answer.
    public static func sum(logits: Tensor, targets: [Int]) -> Tensor {
        let counted = targets.lazy.filter { $0 != CrossEntropy.ignoreIndex }.count
        return Tensor.crossEntropy(logits: logits, targets: targets).scaled(by: -Float(counted))
    }

    /// The length-normalised log-probability (1/n) Σ_t log p(target_t), `[1]`.
    public static func mean(logits: Tensor, targets: [Int]) -> Tensor {
        Tensor.crossEntropy(logits: logits, targets: targets).scaled(by: -1)
    }
}

/// Stage 2: supervised fine-tuning. The loss is the mean cross-entropy over assistant tokens
/// (the targets of every other position are `CrossEntropy.ignoreIndex`).
public enum SFTLoss {
    /// −(1/n) Σ_{t assistant} log p(y_t | y_<t), `[1]`.
    public static func loss(logits: Tensor, targets: [Int]) -> Tensor {
        Tensor.crossEntropy(logits: logits, targets: targets)
    }
}

/// Stage 3: direct preference optimisation (Rafailov et al. 2023):
///
///     L = −log σ(β · [(log π(y_c) − log π(y_r)) − (log π_ref(y_c) − log π_ref(y_r))])
///
/// with log π(y) the summed log-probability of an answer's tokens and π_ref the frozen
/// reference (the model at the start of the stage). At the start π = π_ref and L = log 2.
public enum DPOLoss {
    /// L for one pair, `[1]`: `policyChosen`, `policyRejected` recorded `[1]` tensors, the
    /// reference log-probabilities constants.
    public static func loss(
        policyChosen: Tensor, policyRejected: Tensor, referenceChosen: Float, referenceRejected: Float,
        beta: Float
    ) -> Tensor {
        let margin = (policyChosen - policyRejected) + policyChosen.filled(referenceRejected - referenceChosen)
        return margin.scaled(by: beta).logSigmoid().scaled(by: -1)
    }

    /// β · [(log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))]: the difference
    /// of the implicit rewards; the pair is ranked right when it is positive.
    public static func rewardMargin(
        policyChosen: Float, policyRejected: Float, referenceChosen: Float, referenceRejected: Float,
        beta: Float
    ) -> Float {
        beta * ((policyChosen - referenceChosen) - (policyRejected - referenceRejected))
    }
}

/// Stage 4: odds-ratio preference optimisation (Hong et al. 2024), no reference model:
///
///     L = NLL(y_c) + λ · −log σ(log odds(y_c) − log odds(y_r)),   odds(y) = P(y) / (1 − P(y))
///
/// where log P(y) is the length-normalised log-probability (1/|y|) Σ_t log p(y_t) and
/// NLL(y_c) = −log P(y_c) is the supervised loss on the chosen answer.
public enum ORPOLoss {
    /// log odds = log P − log(1 − P) for log-probabilities `logP` < 0.
    public static func logOdds(_ logP: Tensor) -> Tensor {
        logP - logP.logOneMinusExp()
    }

    /// L and its odds-ratio term for one pair, `[1]` each, from the length-normalised
    /// log-probabilities of the two answers.
    public static func loss(
        chosenMeanLogProbability: Tensor, rejectedMeanLogProbability: Tensor,
        lambda: Float
    ) -> (total: Tensor, oddsRatio: Tensor) {
        let oddsRatio = (logOdds(chosenMeanLogProbability) - logOdds(rejectedMeanLogProbability)).logSigmoid().scaled(by: -1)
        return (chosenMeanLogProbability.scaled(by: -1) + oddsRatio.scaled(by: lambda), oddsRatio)
    }
}

/// Stage 5: group relative policy optimisation (Shao et al. 2024), one completion's loss:
///
///     L = −(1/|o|) Σ_t [ min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A) − β · KL_t ]
///     ρ_t = exp(log π(o_t) − log π_old(o_t)),   KL_t = e^{r_t} − r_t − 1,   r_t = log π_ref(o_t) − log π(o_t)
///
/// (KL_t is the k3 estimator of KL(π ‖ π_ref): unbiased and never negative.) The advantage A
/// of a completion is its reward normalised within its group, (r − mean) / (std + ε).
public enum GRPOLoss {
    /// The loss `[1]` and the mean k3 value over the completion's tokens.
    /// `logProbabilities` are the policy's, recorded `[n]`; the others are constants.
    public static func loss(
        logProbabilities: Tensor, oldLogProbabilities: [Float], referenceLogProbabilities: [Float],
        advantage: Float, epsilon: Float, beta: Float
    ) -> (total: Tensor, kl: Float) {
        let n = logProbabilities.count
        precondition(oldLogProbabilities.count == n && referenceLogProbabilities.count == n, "one log-probability per token")
        guard n > 0 else { return (Tensor(shape: [1], values: [0]), 0) }
        let ratio = (logProbabilities - Tensor(shape: [n], values: oldLogProbabilities)).exp()
        let surrogate = clippedSurrogate(ratio: ratio, advantage: advantage, epsilon: epsilon)
        let r = Tensor(shape: [n], values: referenceLogProbabilities) - logProbabilities
        let k3 = r.exp() - r + r.filled(-1)
        let total = (surrogate - k3.scaled(by: beta)).sum().scaled(by: -1 / Float(n))
        return (total, k3.floats.reduce(0, +) / Float(n))
    }

    /// min(ρ A, clip(ρ, 1−ε, 1+ε) A) elementwise; the gradient is A where the unclipped term
    /// is the smaller (or they are equal) and 0 where the clipped constant is.
    public static func clippedSurrogate(ratio: Tensor, advantage: Float, epsilon: Float) -> Tensor {
        let rs = ratio.floats
        let unclippedWins = rs.map { ρ in ρ * advantage <= Swift.min(Swift.max(ρ, 1 - epsilon), 1 + epsilon) * advantage }
        let out = Tensor(
            shape: ratio.shape,
            values: rs.indices.map { i in
                unclippedWins[i] ? rs[i] * advantage : Swift.min(Swift.max(rs[i], 1 - epsilon), 1 + epsilon) * advantage
            })
        return Autograd.record(out, inputs: [ratio]) { g in
            let gs = g.floats
            return [Tensor(shape: ratio.shape, values: rs.indices.map { unclippedWins[$0] ? gs[$0] * advantage : 0 })]
        }
    }

    /// Group-normalised advantages (r_i − mean) / (std + ε), std the sample standard deviation;
    /// all zero when the group's rewards are equal (or the group has one member).
    public static func advantages(_ rewards: [Double], epsilon: Double = 1e-4) -> [Float] {
        guard rewards.count > 1 else { return rewards.map { _ in 0 } }
        let mean = rewards.reduce(0, +) / Double(rewards.count)
        let variance = rewards.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rewards.count - 1)
        return rewards.map { Float(($0 - mean) / (variance.squareRoot() + epsilon)) }
    }
}

/// Stage 6: knowledge distillation (Hinton et al. 2015) on the positions that carry loss:
///
///     L = α · T² · KL(softmax(z_teacher / T) ‖ softmax(z_student / T)) + (1 − α) · CE(z_student, y)
///
/// the KL averaged over those positions; T² keeps the soft term's gradient scale independent of T.
public enum DistillationLoss {
    /// L `[1]`, and the values of its KL and CE terms. `teacherLogits` is a constant of the
    /// same shape as `studentLogits` `[T, vocab]`.
    public static func loss(
        studentLogits: Tensor, teacherLogits: Tensor, targets: [Int], alpha: Float,
        temperature: Float
    ) -> (total: Tensor, kl: Float, crossEntropy: Float) {
        precondition(
            studentLogits.shape == teacherLogits.shape, "student \(studentLogits.shape) and teacher \(teacherLogits.shape) logits differ")
        let rows = targets.indices.filter { targets[$0] != CrossEntropy.ignoreIndex }
        let crossEntropy = Tensor.crossEntropy(logits: studentLogits, targets: targets)
        guard !rows.isEmpty else { return (crossEntropy, 0, 0) }
        let kl = softKL(
            student: studentLogits.gatherRows(rows), teacher: teacherLogits.detached().gatherRows(rows),
            temperature: temperature)
        let total = kl.scaled(by: alpha * temperature * temperature) + crossEntropy.scaled(by: 1 - alpha)
        return (total, kl.floats[0], crossEntropy.floats[0])
    }

    /// (1/n) Σ_rows Σ_v p_v (log p_v − log q_v), p = softmax(teacher/T) (constant), q = softmax(student/T): `[1]`.
    public static func softKL(student: Tensor, teacher: Tensor, temperature: Float) -> Tensor {
        let rows = student.shape[0]
        let logP = teacher.scaled(by: 1 / temperature).logSoftmax()
        let p = logP.exp()
        let entropyTerm = (p * logP).sum().floats[0]
        let crossTerm = (student.scaled(by: 1 / temperature).logSoftmax() * p).sum()
        return (crossTerm.scaled(by: -1) + crossTerm.filled(entropyTerm)).scaled(by: 1 / Float(max(rows, 1)))
    }
}
