import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

final class StageLossTests: XCTestCase {
    let ignore = CrossEntropy.ignoreIndex

    /// log softmax(row)[index], in Double.
    func logSoftmax(_ row: [Double], _ index: Int) -> Double {
        row[index] - Foundation.log(row.map { Foundation.exp($0) }.reduce(0, +))
    }

    func logits(_ rows: [[Float]]) -> Tensor {
        Tensor(shape: [rows.count, rows[0].count], values: rows.flatMap { $0 })
    }

    func testSFTLossIsTheCrossEntropyOfAssistantTokensOnly() {
        let x = logits([[1, 2, 3], [0, 0, 0], [2, 0, -1]])
        let loss = SFTLoss.loss(logits: x, targets: [2, ignore, 0]).floats[0]
        let expected = -(logSoftmax([1, 2, 3], 2) + logSoftmax([2, 0, -1], 0)) / 2
        XCTAssertEqual(Double(loss), expected, accuracy: 1e-6)
        XCTAssertEqual(Double(TokenLogProbabilities.sum(logits: x, targets: [2, ignore, 0]).floats[0]), -2 * expected, accuracy: 1e-5)
        assertClose(
            TokenLogProbabilities.of(logits: x, targets: [2, ignore, 0]).floats,
            [Float(logSoftmax([1, 2, 3], 2)), Float(logSoftmax([2, 0, -1], 0))])
        GradientCheck.check("sft", inputs: [x], step: 1e-3) { SFTLoss.loss(logits: $0[0], targets: [2, self.ignore, 0]) }
    }

    func testLogSigmoidAndLogOneMinusExp() {
        let x = Tensor(shape: [4], values: [0, 30, -30, 1.5])
        assertClose(
            x.logSigmoid().floats, [-Float(Foundation.log(2.0)), -9.357623e-14, -30, Float(-Foundation.log1p(Foundation.exp(-1.5)))])
        let p = Tensor(shape: [3], values: [Float(Foundation.log(0.25)), -1e-3, -20])
        assertClose(
            p.logOneMinusExp().floats,
            [
                Float(Foundation.log(0.75)), Float(Foundation.log(-Foundation.expm1(-1e-3))),
                Float(-Foundation.exp(-20.0))
            ])
        GradientCheck.check("log σ", inputs: [Tensor(shape: [3], values: [-2, 0.3, 4])], step: 1e-3) { $0[0].logSigmoid() }
        GradientCheck.check("log(1 − e^x)", inputs: [Tensor(shape: [3], values: [-0.3, -2, -0.9])], step: 1e-3) { $0[0].logOneMinusExp() }
    }

    func testDPOLossEqualsTheHandComputedValue() {
        let loss = DPOLoss.loss(
            policyChosen: Tensor(shape: [1], values: [-2]), policyRejected: Tensor(shape: [1], values: [-3]),
            referenceChosen: -2.5, referenceRejected: -2.5, beta: 0.1)
        // β[(−2 + 3) − (−2.5 + 2.5)] = 0.1, and −log σ(0.1) = log(1 + e^−0.1).
        XCTAssertEqual(Double(loss.floats[0]), Foundation.log1p(Foundation.exp(-0.1)), accuracy: 1e-6)
        XCTAssertEqual(
            DPOLoss.rewardMargin(
                policyChosen: -2, policyRejected: -3, referenceChosen: -2.5, referenceRejected: -2.5,
                beta: 0.1), 0.1, accuracy: 1e-6)
    }

    func testDPOLossIsLog2WhenThePolicyIsTheReference() {
        let chosen = logits([[0.3, -1, 2], [1, 1, 0]]), rejected = logits([[2, 0, 0], [0.5, -0.5, 1]])
        let targets = [2, 0]
        let pc = TokenLogProbabilities.sum(logits: chosen, targets: targets)
        let pr = TokenLogProbabilities.sum(logits: rejected, targets: targets)
        for beta: Float in [0.1, 1, 5] {
            let loss = DPOLoss.loss(
                policyChosen: pc, policyRejected: pr, referenceChosen: pc.floats[0], referenceRejected: pr.floats[0],
                beta: beta)
            XCTAssertEqual(Double(loss.floats[0]), Foundation.log(2.0), accuracy: 1e-6)
        }
    }

    func testDPOGradientMatchesFiniteDifferences() {
        let chosen = logits([[0.3, -1, 2], [1, 1, 0], [0, 0.2, 0.1]]), rejected = logits([[2, 0, 0], [0.5, -0.5, 1], [1, 0, 0]])
        let targets = [ignore, 2, 0]
        GradientCheck.check("dpo", inputs: [chosen, rejected], step: 1e-3) {
            DPOLoss.loss(
                policyChosen: TokenLogProbabilities.sum(logits: $0[0], targets: targets),
                policyRejected: TokenLogProbabilities.sum(logits: $0[1], targets: targets),
                referenceChosen: -1.7, referenceRejected: -2.2, beta: 0.5)
        }
    }

    func testORPOLossEqualsTheHandComputedValue() {
        let chosen = Tensor(shape: [1], values: [Float(Foundation.log(0.5))]),
            rejected = Tensor(shape: [1], values: [Float(Foundation.log(0.25))])
        let (total, oddsRatio) = ORPOLoss.loss(chosenMeanLogProbability: chosen, rejectedMeanLogProbability: rejected, lambda: 0.1)
        // log odds: log(0.5/0.5) = 0 and log(0.25/0.75) = −log 3; −log σ(log 3) = log(4/3).
        XCTAssertEqual(Double(ORPOLoss.logOdds(rejected).floats[0]), -Foundation.log(3.0), accuracy: 1e-6)
        XCTAssertEqual(Double(oddsRatio.floats[0]), Foundation.log(4.0 / 3), accuracy: 1e-6)
        XCTAssertEqual(Double(total.floats[0]), Foundation.log(2.0) + 0.1 * Foundation.log(4.0 / 3), accuracy: 1e-6)
    }

    func testORPOGradientMatchesFiniteDifferences() {
        let chosen = logits([[0.3, -1, 2], [1, 1, 0]]), rejected = logits([[2, 0, 0], [0.5, -0.5, 1]])
        GradientCheck.check("orpo", inputs: [chosen, rejected], step: 1e-3) {
            ORPOLoss.loss(
                chosenMeanLogProbability: TokenLogProbabilities.mean(logits: $0[0], targets: [2, 0]),
                rejectedMeanLogProbability: TokenLogProbabilities.mean(logits: $0[1], targets: [2, 1]), lambda: 0.5
            ).total
        }
    }

    func testGRPOLossEqualsTheHandComputedValue() {
        let lp = Tensor(shape: [2], values: [Float(Foundation.log(0.5)), Float(Foundation.log(0.2))])
        let old = [Float(Foundation.log(0.4)), Float(Foundation.log(0.25))], ref = [Float(Foundation.log(0.5)), Float(Foundation.log(0.1))]
        // ρ = (1.25, 0.8); clipped to (1.2, 0.8); k3 = (0, 0.5 − ln 0.5 − 1).
        let k3 = 0.5 - Foundation.log(0.5) - 1
        let positive = GRPOLoss.loss(
            logProbabilities: lp, oldLogProbabilities: old, referenceLogProbabilities: ref, advantage: 1,
            epsilon: 0.2, beta: 0.1)
        XCTAssertEqual(Double(positive.total.floats[0]), -((1.2 - 0) + (0.8 - 0.1 * k3)) / 2, accuracy: 1e-5)
        XCTAssertEqual(Double(positive.kl), k3 / 2, accuracy: 1e-6)
        // With A = −1 the unclipped −1.25 is the smaller term.
        let negative = GRPOLoss.loss(
            logProbabilities: lp, oldLogProbabilities: old, referenceLogProbabilities: ref, advantage: -1,
            epsilon: 0.2, beta: 0.1)
        XCTAssertEqual(Double(negative.total.floats[0]), -((-1.25 - 0) + (-0.8 - 0.1 * k3)) / 2, accuracy: 1e-5)
        // The clipped token passes no gradient; the other passes A·ρ.
        let leaf = lp.copy().requiringGradient()
        Autograd.recording {
            Autograd.backward(
                GRPOLoss.clippedSurrogate(ratio: (leaf - Tensor(shape: [2], values: old)).exp(), advantage: 1, epsilon: 0.2).sum())
        }
        assertClose(leaf.gradient!.floats, [0, 0.8])
    }

    func testGRPOGradientMatchesFiniteDifferences() {
        let x = logits([[0.3, -1, 2], [1, 1, 0], [0, 0.2, 0.1]])
        let targets = [ignore, 2, 0]
        let lp = TokenLogProbabilities.of(logits: x, targets: targets).floats
        // One ratio inside the clip range, one far outside it (a flat, clipped region).
        let old = [lp[0] - 0.05, lp[1] - 0.6], ref = [lp[0] + 0.3, lp[1] - 0.4]
        for advantage: Float in [0.8, -1.3] {
            GradientCheck.check("grpo A=\(advantage)", inputs: [x], step: 1e-3) {
                GRPOLoss.loss(
                    logProbabilities: TokenLogProbabilities.of(logits: $0[0], targets: targets), oldLogProbabilities: old,
                    referenceLogProbabilities: ref, advantage: advantage, epsilon: 0.2, beta: 0.1
                ).total
            }
        }
    }

    func testGroupAdvantagesAreNormalisedRewards() {
        let a = GRPOLoss.advantages([1, 0, 0, 1])
        let std = (1.0 / 3).squareRoot()
        assertClose(a, [0.5, -0.5, -0.5, 0.5].map { Float($0 / (std + 1e-4)) })
        XCTAssertEqual(GRPOLoss.advantages([0.3, 0.3, 0.3]), [0, 0, 0])
        XCTAssertEqual(GRPOLoss.advantages([2]), [0])
    }

    func testDistillationLossEqualsTheHandComputedValue() {
        let student = logits([[0, 0], [5, 1]]), teacher = logits([[Float(Foundation.log(3.0)), 0], [0, 0]])
        // Only row 0 carries loss: p = (0.75, 0.25) at T = 1, q uniform.
        let kl1 = 0.75 * Foundation.log(0.75 / 0.5) + 0.25 * Foundation.log(0.25 / 0.5)
        let one = DistillationLoss.loss(studentLogits: student, teacherLogits: teacher, targets: [0, ignore], alpha: 0.5, temperature: 1)
        XCTAssertEqual(Double(one.kl), kl1, accuracy: 1e-6)
        XCTAssertEqual(Double(one.crossEntropy), Foundation.log(2.0), accuracy: 1e-6)
        XCTAssertEqual(Double(one.total.floats[0]), 0.5 * kl1 + 0.5 * Foundation.log(2.0), accuracy: 1e-6)
        // At T = 2 the teacher softens to (√3, 1)/(√3 + 1) and the KL is scaled by T² = 4.
        let s3 = 3.0.squareRoot(), p0 = s3 / (s3 + 1), p1 = 1 / (s3 + 1)
        let kl2 = p0 * Foundation.log(p0 / 0.5) + p1 * Foundation.log(p1 / 0.5)
        let two = DistillationLoss.loss(studentLogits: student, teacherLogits: teacher, targets: [0, ignore], alpha: 0.7, temperature: 2)
        XCTAssertEqual(Double(two.total.floats[0]), 0.7 * 4 * kl2 + 0.3 * Foundation.log(2.0), accuracy: 1e-5)
        // A student equal to the teacher has no soft loss.
        XCTAssertEqual(
            DistillationLoss.loss(studentLogits: teacher, teacherLogits: teacher, targets: [0, 1], alpha: 1, temperature: 4)
                .total.floats[0], 0, accuracy: 1e-6)
    }

    func testDistillationGradientMatchesFiniteDifferences() {
        let student = logits([[0.3, -1, 2], [1, 1, 0], [0, 0.2, 0.1]]), teacher = logits([[1, 0, -1], [0, 2, 0.5], [0.3, 0.3, 0]])
        GradientCheck.check("distill", inputs: [student], step: 1e-3) {
            DistillationLoss.loss(studentLogits: $0[0], teacherLogits: teacher, targets: [1, self.ignore, 2], alpha: 0.7, temperature: 4)
                .total
        }
    }
}
