import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

/// What trains an exported model in PyTorch follows the Swift trainer: `modeling_chronos.py`'s
/// routing terms equal `ChronosLoss`'s, and `scripts/train_distributed.py` visits the windows in
/// `PretrainingBatches`'s order under the same learning-rate schedule. Skipped without torch and
/// transformers.
final class PyTorchParityTests: XCTestCase {
    /// The repository's root, where `scripts/` and `Sources/` are.
    private let repository = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()

    override func setUpWithError() throws {
        guard Python.canImport("torch, transformers") else { throw XCTSkip("python3 with torch and transformers is not installed") }
    }

    /// Runs `code` with `scripts/` and the module's folder importable, and decodes its JSON output.
    private func python<T: Decodable>(_ code: String, as type: T.Type) throws -> T {
        let paths = [
            repository.appendingPathComponent("scripts").path, repository.appendingPathComponent("Sources/ChronosStorage/Resources").path
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let script = "import sys\nsys.path[:0] = \(String(data: try encoder.encode(paths), encoding: .utf8)!)\n" + code
        let run = try Python.run(arguments: ["-c", script], timeout: 300)
        XCTAssertEqual(run.status, 0, "python failed: \(run.errors.suffix(2000))")
        return try JSONDecoder().decode(T.self, from: Data(run.output.utf8))
    }

    func testTheModulesRoutingTermsAreChronosLosss() throws {
        // Two sequences of 5 tokens, 2 MoE layers of 4 experts top-2, a lookahead of 2 offsets.
        var random = TestRandom(seed: 7)
        func distributions(_ rows: Int, _ width: Int) -> [Float] {
            (0..<rows).flatMap { _ -> [Float] in
                let values = random.values(width, 0.1, 2)
                let total = values.reduce(0, +)
                return values.map { $0 / total }
            }
        }
        let (batch, tokens, experts, offsets) = (2, 5, 4, 3)
        let probabilities = (0..<2).map { _ in distributions(batch * tokens, experts) }
        // Two distinct experts per token, varying with the token.
        let selected = (0..<2).map { layer in (0..<(batch * tokens)).map { t in [(t + layer) % experts, (t * 3 + layer + 1) % experts] } }
        let lookahead = distributions(batch * tokens * offsets, experts).map { Foundation.log($0) }
        let reference = (0..<2).map { _ in distributions(batch * tokens, experts) }

        struct Inputs: Encodable {
            let probabilities: [[Float]], selected: [[[Int]]], lookahead: [Float], reference: [[Float]]
        }
        let inputs = String(
            data: try JSONEncoder().encode(
                Inputs(probabilities: probabilities, selected: selected, lookahead: lookahead, reference: reference)), encoding: .utf8)!
        let terms = try python(
            """
            import json, torch
            from modeling_chronos import chronos_loss_terms
            x = json.loads('\(inputs)')
            shape = (\(batch), \(tokens), \(experts))
            p = [torch.tensor(v, dtype=torch.float64).view(shape) for v in x["probabilities"]]
            s = [torch.tensor(v).view(\(batch), \(tokens), 2) for v in x["selected"]]
            q = torch.tensor(x["lookahead"], dtype=torch.float64).view(\(batch), \(tokens), \(offsets), \(experts))
            r = [torch.tensor(v, dtype=torch.float64).view(shape) for v in x["reference"]]
            print(json.dumps({k: float(v) for k, v in chronos_loss_terms(p, s, q, r).items()}))
            """, as: [String: Double].self)

        // Chronos computes each sequence's terms; the module averages them over the batch.
        var sums = [String: Double]()
        for b in 0..<batch {
            let rows = (b * tokens)..<((b + 1) * tokens)
            func slice(_ flat: [Float], width: Int) -> [Float] { Array(flat[(rows.lowerBound * width)..<(rows.upperBound * width)]) }
            let signals = RoutingSignals(
                probabilities: probabilities.map { Tensor(shape: [tokens, experts], values: slice($0, width: experts)) },
                selected: selected.map { Array($0[rows]) },
                lookaheadLogProbabilities: Tensor(shape: [tokens, offsets, experts], values: slice(lookahead, width: offsets * experts)),
                referenceProbabilities: reference.map { Tensor(shape: [tokens, experts], values: slice($0, width: experts)) })
            let t = ChronosLoss.terms(signals)
            for (name, value) in [("balance", t.balance), ("temporal", t.temporal), ("lookahead", t.lookahead), ("anchor", t.routerKL)] {
                sums[name, default: 0] += Double(value.floats[0]) / Double(batch)
            }
        }
        for (name, value) in sums {
            XCTAssertEqual(try XCTUnwrap(terms[name]), value, accuracy: 1e-5 * max(1, abs(value)), name)
        }
    }

    func testTheScriptsBatchOrderAndScheduleAreTheSwiftTrainers() throws {
        struct Script: Decodable {
            let orders: [[Int]]
            let rates: [Double]
        }
        let script = try python(
            """
            import json, train_distributed as t
            orders = [t.epoch_order(epoch, 37, 12345) for epoch in range(3)]
            rates = [t.learning_rate(step, 3e-3, 10, 50) for step in range(60)]
            print(json.dumps({"orders": orders, "rates": rates}))
            """, as: Script.self)
        XCTAssertEqual(script.orders, (0..<3).map { PretrainingBatches.order(epoch: $0, count: 37, seed: 12345) })
        let schedule = LearningRateSchedule(peak: 3e-3, warmupSteps: 10, totalSteps: 50)
        for (step, rate) in script.rates.enumerated() {
            XCTAssertEqual(rate, Double(schedule.rate(at: step)), accuracy: 1e-8, "step \(step)")
        }
    }
}
