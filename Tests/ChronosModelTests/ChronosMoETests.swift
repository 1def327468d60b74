import ChronosTensor
import ChronosTestSupport
import XCTest

@testable import ChronosModel

/// Routed experts, shared experts and the soft fallback y = Σ w_i·[a_i·E_i(x) + (1 − a_i)·S(x)] + S(x).
final class ChronosMoETests: XCTestCase {
    private let ids = TinyChronos.ids(11)

    /// Every (layer, expert) of `configuration` with availability `value`.
    private func everyExpert(_ configuration: ChronosConfiguration, _ value: Float) -> [ExpertKey: Float] {
        var mask: [ExpertKey: Float] = [:]
        for layer in 0..<configuration.hiddenLayers {
            for expert in 0..<configuration.experts { mask[ExpertKey(layer: layer, expert: expert)] = value }
        }
        return mask
    }

    func testWithEverythingAvailableTheMaskedPathIsThePlainPathExactly() throws {
        let configuration = TinyChronos.configuration()
        let model = try TinyChronos.model(configuration)
        let plain = try model.forward(ids, cache: model.makeCache()).floats
        let masked = try model.forward(
            ids, cache: model.makeCache(),
            options: ForwardOptions(
                recordsRouting: true, predictsLookahead: true, availability: everyExpert(configuration, 1), fallbackMaskSeed: 9))
        XCTAssertEqual(masked.logits.floats, plain)
        XCTAssertTrue(masked.layers.allSatisfy { $0.availability.joined().allSatisfy { $0 == 1 } })
        let served = try TinyChronos.model(configuration, experts: EditedExperts(model.experts))
        XCTAssertEqual(try served.forward(ids, cache: served.makeCache()).floats, plain)
    }

    /// The MoE block of layer `layer` of `model`, with its experts from `experts`.
    private func block(_ model: TransformerLanguageModel, layer: Int, experts: any ExpertProvider) -> MoEBlock {
        let moe = model.layers[layer].mixture!
        return MoEBlock(
            layer: moe.layer, configuration: moe.configuration, router: moe.router, routerBias: moe.routerBias,
            selectionBias: moe.selectionBias, expertBiases: moe.expertBiases, shared: moe.shared, experts: experts)
    }

    /// y per the fallback formula, computed by hand for rows `x`.
    private func expectedOutput(
        _ model: TransformerLanguageModel, layer: Int, x: [[Double]],
        availability: (_ token: Int, _ expert: Int) -> Double
    ) -> [Double] {
        guard case .mixture(let mixture) = model.configuration.feedForward[layer] else { fatalError("layer \(layer) has no experts") }
        let names = ChronosWeightNames.self, hiddenSize = model.configuration.hiddenSize
        let parameters = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        let router = parameters[names.router(layer: layer)]!.floats
        func weights(_ n: ExpertWeightNames) -> ExpertWeights {
            ExpertWeights(gate: parameters[n.gate]!, up: parameters[n.up]!, down: parameters[n.down]!)
        }
        var out: [Double] = []
        for (t, row) in x.enumerated() {
            let p = Reference.softmax(Reference.matvec(router, rows: mixture.expertCount, cols: hiddenSize, row))
            let top = p.indices.sorted { p[$0] > p[$1] }.prefix(mixture.topK)
            let total = top.reduce(0) { $0 + p[$1] }
            let shared = (0..<(mixture.shared?.count ?? 0)).map {
                Reference.expert(weights(names.sharedExpert(layer: layer, index: $0)), row)
            }
            .reduce([Double](repeating: 0, count: hiddenSize)) { zip($0, $1).map(+) }
            var y = shared
            for expert in top {
                let w = p[expert] / total, a = availability(t, expert)
                let routed =
                    a > 0
                    ? Reference.expert(weights(names.expert(ExpertKey(layer: layer, expert: expert))), row)
                    : [Double](repeating: 0, count: hiddenSize)
                for i in y.indices { y[i] += w * (a * routed[i] + (1 - a) * shared[i]) }
            }
            out += y
        }
        return out
    }

    func testAnUnavailableExpertIsReplacedByTheSharedPath() throws {
        let model = try TinyChronos.model()
        let xValues = randomValues(6 * 8, seed: 21, -2, 2)
        let x = Tensor(shape: [6, 8], values: xValues), rows = Reference.rows(x)
        let plain = try block(model, layer: 1, experts: model.experts).route(x, positionOffset: 0, observer: nil)
        let favourite = plain.selected[0]  // token 0's first choice
        XCTAssertTrue(plain.selected.contains(favourite))

        // Not resident in the provider: a = 0 for every slot routed to it.
        let missing = ExpertKey(layer: 1, expert: favourite)
        let log = ForwardLog()
        let fallback = try block(model, layer: 1, experts: EditedExperts(model.experts, missing: [missing]))
            .route(x, positionOffset: 0, observer: log)
        let decisions = log.decisions
        let expected = expectedOutput(model, layer: 1, x: rows) { _, expert in expert == favourite ? 0 : 1 }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expected, fallback.output.floats), 1e-4)
        XCTAssertGreaterThan(maxAbsoluteDifference(expected, plain.output.floats), 1e-2, "the fallback changed nothing")
        XCTAssertEqual(decisions[0].missing, [favourite])
        XCTAssertEqual(fallback.selected, plain.selected)

        // Partly available (a mask for training or a partial load): a = 0.25 for that expert.
        let partial = try block(model, layer: 1, experts: model.experts)
            .route(x, positionOffset: 0, observer: nil, availability: { _, expert in expert == favourite ? 0.25 : 1 })
        let expectedPartial = expectedOutput(model, layer: 1, x: rows) { _, expert in expert == favourite ? 0.25 : 1 }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expectedPartial, partial.output.floats), 1e-4)

        // Everything available: the plain mixture plus the shared path.
        let expectedPlain = expectedOutput(model, layer: 1, x: rows) { _, _ in 1 }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expectedPlain, plain.output.floats), 1e-4)
    }

    func testAMissingExpertInTheProviderIsTheSameAsMaskingIt() throws {
        let configuration = TinyChronos.configuration()
        let model = try TinyChronos.model(configuration)
        let plain = try model.forward(ids, cache: model.makeCache(), options: .recordingAll)
        let key = ExpertKey(layer: 0, expert: plain.layers[0].selectedExperts[2][0])
        let provider = EditedExperts(model.experts, missing: [key])
        let offloaded = try TinyChronos.model(configuration, experts: provider)
        let fallback = try offloaded.forward(ids, cache: offloaded.makeCache(), options: .recordingAll)
        let masked = try model.forward(
            ids, cache: model.makeCache(), options: ForwardOptions(recordsRouting: true, predictsLookahead: true, availability: [key: 0]))
        XCTAssertEqual(fallback.logits.floats, masked.logits.floats)
        XCTAssertGreaterThan(maxAbsoluteDifference(fallback.logits.floats, plain.logits.floats), 1e-3)
        XCTAssertEqual(fallback.layers[0].availability[2][0], 0)
        XCTAssertTrue(provider.requests.contains(key))
    }

    func testFallbackMaskDropsSlotsReproduciblyWithTheGivenProbability() throws {
        let configuration = TinyChronos.configuration()
        let model = try TinyChronos.model(configuration)
        func run(_ probability: Float, seed: UInt64) throws -> ForwardOutput {
            try model.forward(
                ids, cache: model.makeCache(),
                options: ForwardOptions(
                    recordsRouting: true, predictsLookahead: true, fallbackMaskProbability: probability, fallbackMaskSeed: seed))
        }
        let first = try run(0.5, seed: 1), again = try run(0.5, seed: 1), other = try run(0.5, seed: 2)
        let pattern = { (output: ForwardOutput) in output.layers.flatMap { $0.availability.joined() } }
        XCTAssertEqual(pattern(first), pattern(again))
        XCTAssertEqual(first.logits.floats, again.logits.floats)
        XCTAssertNotEqual(pattern(first), pattern(other))
        let dropped = pattern(first).filter { $0 == 0 }.count
        XCTAssertTrue((8...36).contains(dropped), "\(dropped) of 44 slots dropped at p = 0.5")

        // Dropping every slot is the same as every expert being unavailable.
        let all = try run(1, seed: 3)
        let none = try model.forward(
            ids, cache: model.makeCache(),
            options: ForwardOptions(recordsRouting: true, predictsLookahead: true, availability: everyExpert(configuration, 0)))
        XCTAssertEqual(all.logits.floats, none.logits.floats)
    }

    func testRoutingOutputsDescribeEachLayer() throws {
        let model = try TinyChronos.model()
        let cache = model.makeCache(), log = ForwardLog()
        cache.observer = log
        let output = try model.forward(ids, cache: cache, options: .recordingAll)
        let decisions = log.decisions
        XCTAssertEqual(output.layers.count, 2)
        for routing in output.layers {
            XCTAssertEqual(routing.input.shape, [11, 8])
            XCTAssertEqual(routing.routerProbabilities.shape, [11, 4])
            XCTAssertEqual(routing.combineWeights.shape, [11, 2])
            XCTAssertEqual(routing.selectedExperts.count, 11)
            // Renormalised top-k weights sum to 1.
            for t in 0..<11 { XCTAssertEqual(routing.combineWeights.row(t).reduce(0, +), 1, accuracy: 1e-5) }
            // A reference router on the recorded inputs reproduces the probabilities.
            let router = model.namedParameters().first { $0.name == ChronosWeightNames.router(layer: routing.layer) }!.tensor
            XCTAssertEqual(Tensor.linear(routing.input, weight: router).softmax().floats, routing.routerProbabilities.floats)
        }
        XCTAssertEqual(decisions.count, 22)
        XCTAssertEqual(decisions.first { $0.layer == 1 && $0.position == 4 }?.experts, output.layers[1].selectedExperts[4])
        XCTAssertEqual(output.meanRouterProbabilities.shape, [11, 4])
    }

    /// Each layer previews the next MoE layer's routing from the stream after its attention.
    /// With every projection into the residual stream zeroed the stream never changes, so each
    /// preview must be exactly the routing its layer then makes for the pass's last token.
    func testEachLayerPreviewsTheNextLayersRouting() throws {
        let configuration = TinyChronos.configuration([.mla, .sliding, .mla], experts: 6)
        var weights = try TinyChronos.weights(configuration)
        for (name, tensor) in weights where name.hasSuffix("o_proj.weight") || name.hasSuffix("down_proj.weight") {
            weights[name] = Tensor(zeros: tensor.shape)
        }
        let model = try TransformerLanguageModel(configuration: configuration, weights: weights)
        let cache = model.makeCache()
        for pass in [Array(ids.prefix(5)), [ids[5]], [ids[6]]] {
            let log = ForwardLog(previews: true)
            cache.observer = log
            _ = try model.forward(pass, cache: cache, options: .recordingAll)
            let previews = log.previews, decisions = log.decisions
            XCTAssertEqual(previews.map(\.layer), [1, 2], "every layer but the last previews the one after it")
            let last = decisions.map(\.position).max()!
            for preview in previews {
                let actual = try XCTUnwrap(decisions.first { $0.layer == preview.layer && $0.position == last })
                XCTAssertEqual(preview.experts, actual.experts)
            }
        }
    }
}

extension MoEBlock {
    /// The block over one sequence of `x`'s rows, from position `positionOffset`, with the block's own provider.
    func route(
        _ x: Tensor, positionOffset: Int, observer: (any ForwardObserver)?,
        availability: ((_ slot: Int, _ expert: Int) -> Float)? = nil
    ) throws(ModelError) -> Routing {
        try route(
            x, sequences: [Sequence(rows: 0..<x.shape[0], positionOffset: positionOffset, observer: observer, provider: nil)],
            availability: availability)
    }
}
