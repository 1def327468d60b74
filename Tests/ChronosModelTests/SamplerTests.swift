import ChronosTensor
import XCTest

@testable import ChronosModel

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 2.9]

    func testGreedyAndDegenerateFiltersPickTheArgmax() {
        var greedy = Sampler(.greedy)
        XCTAssertEqual(greedy.next(logits: logits, history: []), 1)
        for parameters in [
            SamplingParameters(temperature: 1, topK: 1, seed: 3), SamplingParameters(temperature: 1, topP: 0.01, seed: 3),
            SamplingParameters(temperature: 1, minP: 0.99, seed: 3)
        ] {
            var sampler = Sampler(parameters)
            for _ in 0..<20 { XCTAssertEqual(sampler.next(logits: logits, history: []), 1, "\(parameters)") }
        }
    }

    func testRepetitionPenaltyDemotesSeenTokens() {
        var sampler = Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 1.5))
        XCTAssertEqual(sampler.next(logits: logits, history: [1]), 4, "3.0 / 1.5 = 2.0 falls below 2.9")
        XCTAssertEqual(sampler.next(logits: logits, history: [1, 4]), 2)
    }

    func testSameSeedSameTokensDifferentSeedDifferentTokens() {
        let parameters = SamplingParameters(temperature: 1.5, seed: 42)
        var a = Sampler(parameters), b = Sampler(parameters), c = Sampler(SamplingParameters(temperature: 1.5, seed: 43))
        let drawsA = (0..<50).map { _ in a.next(logits: logits, history: []) }
        let drawsB = (0..<50).map { _ in b.next(logits: logits, history: []) }
        let drawsC = (0..<50).map { _ in c.next(logits: logits, history: []) }
        XCTAssertEqual(drawsA, drawsB)
        XCTAssertNotEqual(drawsA, drawsC)
    }

    func testDrawsFollowTheSoftmax() {
        var sampler = Sampler(SamplingParameters(temperature: 1, seed: 7))
        var counts = [Int](repeating: 0, count: logits.count)
        let draws = 20_000
        for _ in 0..<draws { counts[sampler.next(logits: logits, history: [])] += 1 }
        let exps = logits.map { Foundation.exp(Double($0)) }
        let total = exps.reduce(0, +)
        for i in logits.indices {
            XCTAssertEqual(Double(counts[i]) / Double(draws), exps[i] / total, accuracy: 0.015, "token \(i)")
        }
    }

    func testTopKRestrictsTheSupport() {
        var sampler = Sampler(SamplingParameters(temperature: 5, topK: 2, seed: 1))
        let seen = Set((0..<200).map { _ in sampler.next(logits: logits, history: []) })
        XCTAssertEqual(seen, [1, 4])
    }

    func testStopStringSearch() {
        XCTAssertEqual(Generator.firstStop(in: "hello world", stops: ["wor"], searchFrom: 7), 6)
        XCTAssertNil(Generator.firstStop(in: "hello world", stops: ["hello"], searchFrom: 7), "ended before the new piece")
        XCTAssertEqual(Generator.firstStop(in: "a.b.", stops: [".", "b"], searchFrom: 0), 1)
    }
}

final class RequestValidationTests: XCTestCase {
    func testSamplingParametersOutOfRangeAreRefusedByName() {
        for (name, parameters) in [
            ("temperature", SamplingParameters(temperature: -1)), ("temperature", SamplingParameters(temperature: .nan)),
            ("top_p", SamplingParameters(topP: 2)), ("top_p", SamplingParameters(topP: 0)),
            ("min_p", SamplingParameters(minP: 1.5)), ("top_k", SamplingParameters(topK: -1)),
            ("repetition_penalty", SamplingParameters(repetitionPenalty: 0))
        ] {
            XCTAssertThrowsError(try parameters.validate(), name) { XCTAssertEqual(($0 as? InvalidSetting)?.name, name) }
        }
        XCTAssertNoThrow(try SamplingParameters.greedy.validate())
    }

    func testAPromptMustFitTheContextAndTheVocabulary() {
        func name(_ request: GenerationRequest) -> String? {
            do {
                try request.validate(vocabularySize: 10, context: 8)
                return nil
            } catch {
                return error.name
            }
        }
        XCTAssertNil(name(GenerationRequest(promptIds: Array(repeating: 1, count: 7), maxTokens: 4)))
        XCTAssertEqual(name(GenerationRequest(promptIds: Array(repeating: 1, count: 8))), "prompt")
        XCTAssertEqual(name(GenerationRequest(promptIds: [])), "prompt")
        XCTAssertEqual(name(GenerationRequest(promptIds: [1, 10])), "token id")
        XCTAssertEqual(name(GenerationRequest(promptIds: [1, -1])), "token id")
        XCTAssertEqual(name(GenerationRequest(promptIds: [1], maxTokens: 0)), "max_tokens")
    }
}

/// The sampler's selection walks the candidates as a full sort would: it draws the token a
/// sorted walk draws, for every filter.
final class SamplerSelectionTests: XCTestCase {
    /// The draw of a sorted walk: top-k, softmax, top-p, min-p, then the cumulative draw.
    private func sortedDraw(_ logits: [Float], _ parameters: SamplingParameters, unit: Double) -> Int {
        var order = logits.indices.filter { !logits[$0].isNaN }.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if parameters.topK > 0 && order.count > parameters.topK { order.removeLast(order.count - parameters.topK) }
        let exps = order.map { Foundation.exp(Double(logits[$0] / parameters.temperature - logits[order[0]] / parameters.temperature)) }
        let sum = exps.reduce(0, +)
        let probabilities = exps.map { $0 / sum }
        var keep = order.count
        if parameters.topP < 1 {
            var cumulative = 0.0
            for (i, p) in probabilities.enumerated() {
                cumulative += p
                if cumulative >= Double(parameters.topP) {
                    keep = i + 1
                    break
                }
            }
        }
        if parameters.minP > 0 {
            keep = min(keep, max(1, probabilities.prefix(keep).filter { $0 >= Double(parameters.minP) * probabilities[0] }.count))
        }
        var threshold = unit * probabilities.prefix(keep).reduce(0, +)
        for i in 0..<keep {
            threshold -= probabilities[i]
            if threshold <= 0 { return order[i] }
        }
        return order[keep - 1]
    }

    func testSelectionDrawsWhatASortedWalkDraws() {
        var generator = SplitMix64(seed: 11)
        let logits = (0..<1000).map { _ in Float(generator.nextUnit() * 12 - 6) }
        for parameters in [
            SamplingParameters(temperature: 0.8, seed: 1), SamplingParameters(temperature: 1, topK: 40, seed: 2),
            SamplingParameters(temperature: 0.7, topP: 0.9, seed: 3), SamplingParameters(temperature: 1.2, minP: 0.05, seed: 4),
            SamplingParameters(temperature: 1, topK: 300, topP: 0.5, minP: 0.1, seed: 5)
        ] {
            var sampler = Sampler(parameters), units = SplitMix64(seed: parameters.seed)
            var agree = 0
            for _ in 0..<60 {
                let unit = units.nextUnit()
                if sampler.next(logits: logits, history: []) == sortedDraw(logits, parameters, unit: unit) { agree += 1 }
            }
            // A draw can differ only where rounding of the sums moves a boundary by one token.
            XCTAssertGreaterThanOrEqual(agree, 59, "\(parameters)")
        }
    }
}
