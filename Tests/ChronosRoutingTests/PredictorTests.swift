import ChronosFormats
import ChronosModel
import ChronosRouting
import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

/// The predictors trained from traces: they learn what the trace determines, their controls do
/// not, and their files refuse a model they do not fit.
final class PredictorTests: XCTestCase {
    /// A one-hot hidden state of width 4 for state `s`.
    private func oneHot(_ s: Int) -> [Float] { (0..<4).map { $0 == s ? 1 : 0 } }

    /// Sequences whose state steps s → s+1 (mod 4) from a seeded start; token t routes to experts
    /// [s, s+1] in layer 0 and [s+3, s] in layer 2 (mod 4), so t's hidden state fixes t+k's experts.
    private func cyclingTrace(sequences: Int, length: Int, seed: UInt64) -> ActivationTrace {
        var random = SplitMix64(seed: seed)
        var tokens: [ActivationTrace.Token] = []
        for sequence in 0..<sequences {
            let start = Int(random.next() % 4)
            for position in 0..<length {
                let s = (start + position) % 4
                tokens.append(
                    .init(
                        sequence: sequence, position: position, id: s, experts: [[s, (s + 1) % 4], [(s + 3) % 4, s]],
                        probabilities: [[0.6, 0.4], [0.6, 0.4]], hidden: oneHot(s)))
            }
        }
        return ActivationTrace(
            layers: [.init(layer: 0, experts: 4, expertBytes: 10), .init(layer: 2, experts: 4, expertBytes: 10)],
            expertsPerToken: 2, hiddenSize: 4, sequenceCount: sequences, tokens: tokens)
    }

    private var quickSettings: PredictorTraining.Settings {
        var settings = PredictorTraining.Settings()
        settings.steps = 300
        settings.batchSize = 32
        settings.learningRate = 3e-2
        settings.warmupSteps = 10
        return settings
    }

    func testLookaheadHeadLearnsADeterminedFutureAndBeatsItsControls() throws {
        let training = cyclingTrace(sequences: 8, length: 12, seed: 1), heldOut = cyclingTrace(sequences: 4, length: 12, seed: 2)
        var head = TrainedLookaheadHead(hiddenSize: 4, inputLayer: 0, layers: [0, 2], experts: 4, steps: 2, width: 16, seed: 0)
        let examples = PredictorTraining.lookaheadExamples(training, steps: 2)
        XCTAssertEqual(examples.count, 8 * 10)
        XCTAssertEqual(examples.groups, 4)
        let before = PredictorTraining.loss(of: head.network, on: examples)
        head.network = PredictorTraining.train(head.network, on: examples, settings: quickSettings).network
        XCTAssertLessThan(PredictorTraining.loss(of: head.network, on: examples), before)
        let rows = PredictorEvaluation.lookahead(head, heldOut: heldOut, training: training, n: 2)
        XCTAssertEqual(rows.map(\.offset), [1, 2])
        for row in rows {
            XCTAssertGreaterThan(try XCTUnwrap(row.head.recall), 0.95, "k=\(row.offset)")
            XCTAssertLessThan(try XCTUnwrap(row.shuffled.recall), 0.8, "k=\(row.offset)")
            XCTAssertEqual(try XCTUnwrap(row.frequency.recall), 0.5, accuracy: 0.2, "k=\(row.offset)")
        }
        XCTAssertEqual(try XCTUnwrap(rows[0].reuse.recall), 0.5, accuracy: 1e-9, "t and t+1 share one expert of two in each layer")
    }

    func testPredictorsReadTheirInputAtUnitScale() {
        // Trained models' hidden states run at RMS in the tens; the network sees them at RMS 1,
        // so its first layer works in the range it was initialised for whatever the model's scale.
        let network = ExpertDistributionNetwork(inputWidth: 4, width: 8, groups: 2, experts: 3, seed: 4)
        let x: [Float] = [0.3, -1.2, 0.8, 2.0]
        let reference = network.probabilities(x).flatMap { $0 }
        for scale: Float in [0.5, 40, 400] {
            let scaled = network.probabilities(x.map { $0 * scale }).flatMap { $0 }
            for (a, b) in zip(reference, scaled) { XCTAssertEqual(a, b, accuracy: 1e-5, "scale \(scale)") }
        }
    }

    func testTrainingKeepsTheParametersThatScoreBestOnValidation() {
        // Two sequences of two tokens with the same hidden state and opposite next experts: two
        // examples with one input and opposite targets. Fitting the training one drives the
        // validation loss up after the first steps.
        let tokens = (0..<2).flatMap { sequence in
            (0..<2).map { position in
                ActivationTrace.Token(
                    sequence: sequence, position: position, id: 0, experts: [[position == 0 ? 0 : sequence]],
                    probabilities: [[1]], hidden: [1, 0])
            }
        }
        let trace = ActivationTrace(
            layers: [.init(layer: 0, experts: 2, expertBytes: 10)], expertsPerToken: 1, hiddenSize: 2,
            sequenceCount: 2, tokens: tokens)
        let examples = PredictorTraining.lookaheadExamples(trace, steps: 1)
        let (fitted, validation) = examples.split(holdingOut: 0.1)
        XCTAssertEqual(fitted.count, 1)
        XCTAssertEqual(validation.targets, [0, 1])
        let network = ExpertDistributionNetwork(inputWidth: 2, width: 4, groups: 1, experts: 2, seed: 3)
        var settings = quickSettings
        settings.validateEvery = 10
        let kept = PredictorTraining.train(network, on: fitted, validation: validation, settings: settings)
        let last = PredictorTraining.train(network, on: fitted, settings: settings)
        XCTAssertEqual(last.step, settings.steps)
        XCTAssertNil(last.validationLoss)
        XCTAssertLessThan(kept.step, settings.steps)
        let keptLoss = PredictorTraining.loss(of: kept.network, on: validation)
        XCTAssertEqual(keptLoss, kept.validationLoss ?? .nan, accuracy: 1e-6)
        XCTAssertLessThan(keptLoss, PredictorTraining.loss(of: last.network, on: validation) - 1)
    }

    func testIntentClassifierPredictsTheExpertsOfTheGenerationFromThePrompt() throws {
        // Two topics: prompts of topic 0 (hidden [1, 0]) are followed by tokens routed to experts
        // {0, 1}, topic 1 (hidden [0, 1]) by {2, 3}; the prompt itself routes to all four.
        var tokens: [ActivationTrace.Token] = []
        for sequence in 0..<12 {
            let topic = sequence % 2
            for position in 0..<24 {
                let experts = position < 8 ? [position % 4, (position + 1) % 4] : [2 * topic, 2 * topic + 1]
                tokens.append(
                    .init(
                        sequence: sequence, position: position, id: 0, experts: [experts], probabilities: [[0.5, 0.5]],
                        hidden: topic == 0 ? [1, 0] : [0, 1]))
            }
        }
        let trace = ActivationTrace(
            layers: [.init(layer: 1, experts: 4, expertBytes: 10)], expertsPerToken: 2, hiddenSize: 2,
            sequenceCount: 12, tokens: tokens)
        var classifier = IntentClassifier(hiddenSize: 2, inputLayer: 0, layers: [1], experts: 4, horizon: 16, width: 8, seed: 0)
        let examples = PredictorTraining.intentExamples(trace, promptLengths: [4, 8], horizon: 16)
        XCTAssertEqual(examples.count, 24)
        classifier.network = PredictorTraining.train(classifier.network, on: examples, settings: quickSettings).network
        let rows = PredictorEvaluation.intent(classifier, heldOut: trace, training: trace, promptLengths: [8], setSize: 2)
        let row = rows[0]
        XCTAssertEqual(try XCTUnwrap(row.intent.coverage), 1, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(row.intent.precision), 1, accuracy: 1e-9)
        XCTAssertLessThan(try XCTUnwrap(row.frequency.coverage), 0.6)
        XCTAssertLessThan(try XCTUnwrap(row.shuffled.coverage), 0.6)
        XCTAssertLessThan(try XCTUnwrap(row.prompt.coverage), 0.6)
    }

    func testHotSetTakesTheBestScoresThatFitTheBudget() {
        let a = ExpertKey(layer: 0, expert: 0), b = ExpertKey(layer: 0, expert: 1), c = ExpertKey(layer: 1, expert: 0)
        let bytes = [a: 50, b: 30, c: 20]
        let set = ExpertPredictor.hotSet(scores: [a: 0.2, b: 0.5, c: 0.3], bytes: { bytes[$0]! }, budget: 60)
        XCTAssertEqual(set, [b, c], "b and c fit; a, the least likely, would not")
        XCTAssertEqual(ExpertPredictor.hotSet(scores: [a: 0.9, b: 0.5, c: 0.3], bytes: { bytes[$0]! }, budget: 60), [a])
        XCTAssertEqual(ExpertPredictor.hotSet(scores: [a: 0.9], bytes: { bytes[$0]! }, budget: 10), [])
    }

    func testShuffleControlMovesEveryIndex() {
        var random = SplitMix64(seed: 9)
        let permutation = PredictorEvaluation.shuffledIndices(10, &random)
        XCTAssertEqual(permutation.sorted(), Array(0..<10))
        for (index, other) in permutation.enumerated() { XCTAssertNotEqual(index, other) }
    }

    func testPredictorFilesRoundTripAndRefuseAModelTheyDoNotFit() throws {
        let directory = try Fixtures.temporaryDirectory()
        let summary = ModelSummary(
            modelType: "test", architecture: nil, vocabSize: 8, hiddenSize: 4, layerCount: 3, attentionHeads: 1,
            keyValueHeads: 1, headDim: 4, expertsPerLayer: [4, 0, 4], expertsPerToken: 2, hasSharedExpert: false,
            tiedEmbeddings: false, bosTokenId: nil, eosTokenIds: [], maxPositionEmbeddings: nil)
        XCTAssertNil(try TrainedLookaheadHead.load(from: directory, summary: summary))
        let head = TrainedLookaheadHead(hiddenSize: 4, inputLayer: 0, layers: [0, 2], experts: 4, steps: 3, width: 5, seed: 7)
        try head.save(in: directory)
        let loaded = try XCTUnwrap(TrainedLookaheadHead.load(from: directory, summary: summary))
        XCTAssertEqual(loaded.steps, 3)
        XCTAssertEqual(loaded.layers, [0, 2])
        XCTAssertEqual(loaded.inputLayer, 0)
        XCTAssertEqual(loaded.probabilities(hidden: [1, -1, 0.5, 2]), head.probabilities(hidden: [1, -1, 0.5, 2]))
        let classifier = IntentClassifier(hiddenSize: 4, inputLayer: 1, layers: [0, 2], experts: 4, horizon: 32, width: 6, seed: 1)
        try classifier.save(in: directory)
        XCTAssertEqual(try IntentClassifier.load(from: directory, summary: summary)?.horizon, 32)
        XCTAssertEqual(try IntentClassifier.load(from: directory, summary: summary)?.inputLayer, 1)
        try IntentClassifier(hiddenSize: 4, inputLayer: 3, layers: [0, 2], experts: 4, horizon: 32, width: 6, seed: 1).save(in: directory)
        XCTAssertThrowsError(try IntentClassifier.load(from: directory, summary: summary)) { error in
            XCTAssertTrue("\(error)".contains("after decoder layer 3"), "\(error)")
        }
        try classifier.save(in: directory)

        var other = summary
        other.expertsPerLayer = [8, 0, 8]
        XCTAssertThrowsError(try TrainedLookaheadHead.load(from: directory, summary: other)) { error in
            XCTAssertTrue("\(error)".contains(TrainedLookaheadHead.fileName), "\(error)")
            XCTAssertTrue("\(error)".contains("retrain"), "\(error)")
        }
        let lookahead = directory.appendingPathComponent(TrainedLookaheadHead.fileName)
        try FileManager.default.removeItem(at: lookahead)
        try FileManager.default.copyItem(at: directory.appendingPathComponent(IntentClassifier.fileName), to: lookahead)
        XCTAssertThrowsError(try TrainedLookaheadHead.load(from: directory, summary: summary)) { error in
            XCTAssertTrue("\(error)".contains("not a lookahead predictor"), "\(error)")
        }
        try SafetensorsWriter.write(
            head.network.parameters,
            metadata: [
                "chronos_predictor": "lookahead", "layers": "0,2", "experts": "4", "hidden_size": "4", "steps": "3"
            ], to: lookahead)
        XCTAssertThrowsError(try TrainedLookaheadHead.load(from: directory, summary: summary)) { error in
            XCTAssertTrue("\(error)".contains("unnormalised inputs"), "\(error)")
            XCTAssertTrue("\(error)".contains("retrain"), "\(error)")
        }
        try Data("not safetensors".utf8).write(to: lookahead)
        XCTAssertThrowsError(try TrainedLookaheadHead.load(from: directory, summary: summary)) { error in
            XCTAssertTrue("\(error)".contains(lookahead.path), "\(error)")
        }
    }
}
