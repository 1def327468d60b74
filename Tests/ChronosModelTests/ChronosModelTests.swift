import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// The Chronos configuration, the lookahead head, and building, saving and loading a model.
final class ChronosModelTests: XCTestCase {
    func testConfigurationDefaultsFromSparseJSON() throws {
        let c = try JSONDecoder().decode(
            ChronosConfiguration.self,
            from: Data(
                """
                {"model_type": "chronos", "vocab_size": 100, "num_hidden_layers": 5, "eos_token_id": 2}
                """.utf8))
        XCTAssertEqual(c.vocabSize, 100)
        XCTAssertEqual(c.hiddenSize, 512)
        XCTAssertEqual(c.attentionKinds, [.mla, .sliding, .mla, .sliding, .mla])
        XCTAssertNil(c.layerTypes)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertTrue(c.normTopKProb)
        XCTAssertEqual(c.sharedExperts, 1)
        XCTAssertEqual(c.lookaheadSteps, 4)
        XCTAssertEqual(c.eosTokenId, [2])
        XCTAssertNil(c.padTokenId)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertNoThrow(try c.validate())
        XCTAssertEqual(ChronosConfiguration().attentionKinds.count, 8)
    }

    func testConfigurationRoundTripsWithSnakeCaseKeys() throws {
        var c = TinyChronos.configuration([.sliding, .mla, .mla])
        c.padTokenId = 0
        c.eosTokenId = [1, 2]
        let data = try JSONEncoder().encode(c)
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(object["model_type"] as? String, "chronos")
        XCTAssertEqual(object["kv_latent_dim"] as? Int, 6)
        XCTAssertEqual(object["layer_types"] as? [String], ["sliding", "mla", "mla"])
        XCTAssertEqual(object["num_shared_experts"] as? Int, 1)
        XCTAssertEqual(object["lookahead_steps"] as? Int, 2)
        XCTAssertEqual(try JSONDecoder().decode(ChronosConfiguration.self, from: data), c)
    }

    func testInvalidConfigurationsNameTheField() throws {
        var c = TinyChronos.configuration()
        c.ropeDim = 3
        XCTAssertThrowsError(try c.validate()) { error in
            guard case .malformedConfig(_, let field, _)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "rope_dim")
        }
        c = TinyChronos.configuration()
        c.hiddenLayers = 3
        c.layerTypes = [.mla]
        XCTAssertThrowsError(try TransformerLanguageModel(configuration: c, weights: [:])) { error in
            guard case .malformedConfig(_, let field, _)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "layer_types")
        }

        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(#"{"model_type": "chronos", "layer_types": ["mla", "dense"]}"#.utf8)
            .write(to: directory.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
            guard case .malformedConfig(_, let field, _)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "layer_types[1]")
        }
    }

    func testLookaheadPredictsADistributionPerOffset() throws {
        let model = try TinyChronos.model()
        let output = try model.forward(
            TinyChronos.ids(5), cache: model.makeCache(),
            options: ForwardOptions(recordsRouting: true, predictsLookahead: true, hiddenLayers: [0]))
        XCTAssertEqual(output.lookahead!.probabilities.shape, [5, 3, 4])
        XCTAssertEqual(output.lookahead!.logProbabilities.shape, [5, 3, 4])
        XCTAssertEqual(output.hidden[0]?.shape, [5, 8])
        let probabilities = output.lookahead!.probabilities.floats, logs = output.lookahead!.logProbabilities.floats
        for row in 0..<15 {
            let p = probabilities[(row * 4)..<((row + 1) * 4)]
            XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertTrue(p.allSatisfy { $0 > 0 })
        }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(logs.map { Foundation.exp($0) }, probabilities), 1e-5)
        for offset in 0...2 {
            let q = output.lookahead!.probabilities(offset: offset)
            XCTAssertEqual(q.shape, [5, 4])
            XCTAssertEqual(q.row(3), Array(probabilities[((3 * 3 + offset) * 4)..<((3 * 3 + offset + 1) * 4)]))
            let best = output.lookahead!.predictedExperts(offset: offset, count: 2)
            XCTAssertEqual(best.count, 5)
            XCTAssertEqual(best[3][0], argmax(q.row(3)))
        }
        // Empty input: every output has 0 rows and the cache does not move.
        let cache = model.makeCache()
        let empty = try model.forward([], cache: cache, options: .recordingAll)
        XCTAssertEqual(empty.logits.shape, [0, 13])
        XCTAssertEqual(empty.lookahead!.probabilities.shape, [0, 3, 4])
        XCTAssertEqual(cache.offset, 0)
    }

    func testSaveAndLoadThroughADirectoryGivesIdenticalLogits() throws {
        for tied in [true, false] {
            let configuration = TinyChronos.configuration([.mla, .sliding, .sliding], tied: tied)
            let model = try TinyChronos.model(configuration, seed: 3)
            let directory = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            try model.save(to: directory)

            let loaded = try ModelRegistry.load(directory: directory)
            XCTAssertEqual(loaded.summary, model.summary)
            XCTAssertEqual(loaded.summary.modelType, "chronos")
            XCTAssertEqual(loaded.parameterCounts, model.parameterCounts)
            let ids = TinyChronos.ids(9)
            XCTAssertEqual(
                try loaded.forward(ids, cache: loaded.makeCache()).floats, try model.forward(ids, cache: model.makeCache()).floats)
            let chronos = loaded
            XCTAssertEqual(try ChronosConfiguration(directory: directory), configuration)
            XCTAssertEqual(
                try chronos.forward(ids, cache: chronos.makeCache(), options: .recordingAll).lookahead!.probabilities.floats,
                try model.forward(ids, cache: model.makeCache(), options: .recordingAll).lookahead!.probabilities.floats)

            // The storage layer finds every expert's tensors by name in the checkpoint.
            let checkpoint = try SafetensorsCheckpoint(directory: directory)
            XCTAssertEqual(Set(checkpoint.tensorNames), Set(model.namedParameters().map(\.name)))
            XCTAssertEqual(checkpoint.contains(ChronosWeightNames.lmHead), !tied)
            let names = try XCTUnwrap(chronos.checkpointNames(for: ExpertKey(layer: 2, expert: 3)))
            XCTAssertEqual(names.down, "model.layers.2.mlp.experts.3.down_proj.weight")
            XCTAssertEqual(try checkpoint.info(named: names.gate).shape, [6, 8])
            XCTAssertNil(chronos.checkpointNames(for: ExpertKey(layer: 3, expert: 0)))
            XCTAssertNil(chronos.checkpointNames(for: ExpertKey(layer: 0, expert: 4)))
        }
    }

    func testNamedParametersAreTheTensorsTheModelComputesWith() throws {
        let configuration = TinyChronos.configuration()
        let weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 1)
        XCTAssertEqual(weights.keys.sorted(), try TransformerLanguageModel.initialize(configuration: configuration, seed: 1).keys.sorted())
        XCTAssertEqual(
            weights[ChronosWeightNames.embedding]!.floats,
            try TransformerLanguageModel.initialize(configuration: configuration, seed: 1)[ChronosWeightNames.embedding]!.floats)
        XCTAssertNotEqual(
            weights[ChronosWeightNames.embedding]!.floats,
            try TransformerLanguageModel.initialize(configuration: configuration, seed: 2)[ChronosWeightNames.embedding]!.floats)
        XCTAssertEqual(weights["model.norm.weight"]!.floats, [Float](repeating: 1, count: 8))
        XCTAssertEqual(
            try TransformerLanguageModel.parameterShapes(configuration: configuration).map(\.name).sorted(), weights.keys.sorted())

        let model = try TransformerLanguageModel(configuration: configuration, weights: weights)
        let parameters = model.namedParameters()
        XCTAssertEqual(parameters.map(\.name).sorted(), weights.keys.sorted())
        for (name, tensor) in parameters {
            XCTAssertTrue(tensor.storage === weights[name]!.storage, "\(name) is not the tensor given")
        }
        XCTAssertEqual(model.parameterCounts.total, weights.values.reduce(0) { $0 + $1.count })
        let perExpert = 3 * 8 * 6
        XCTAssertEqual(model.parameterCounts.expert, 2 * 4 * perExpert)
        XCTAssertEqual(model.parameterCounts.activePerToken, model.parameterCounts.dense + 2 * 2 * perExpert)

        // Updating a parameter in place changes what the model computes.
        let ids = TinyChronos.ids(4)
        let before = try model.forward(ids, cache: model.makeCache()).floats
        let router = parameters.first { $0.name == ChronosWeightNames.router(layer: 1) }!.tensor
        router.floatPointer[0] += 5
        XCTAssertNotEqual(try model.forward(ids, cache: model.makeCache()).floats, before)
    }

    func testMissingOrMisshapenTensorsAreNamed() throws {
        let configuration = TinyChronos.configuration()
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 1)
        let name = ChronosWeightNames.layer(0, "self_attn.kv_down_proj.weight")
        weights[name] = Tensor(zeros: [5, 8])
        XCTAssertThrowsError(try TransformerLanguageModel(configuration: configuration, weights: weights)) { error in
            XCTAssertEqual(error as? ModelError, .shapeMismatch(tensor: name, expected: [6, 8], found: [5, 8]))
        }
        weights[name] = nil
        XCTAssertThrowsError(try TransformerLanguageModel(configuration: configuration, weights: weights)) { error in
            XCTAssertEqual(error as? ModelError, .missingTensor(name: name, directory: "the weights given"))
        }
    }

    func testExpertsCanComeFromAnotherProvider() throws {
        let configuration = TinyChronos.configuration()
        let resident = try TinyChronos.model(configuration)
        let weights = try TinyChronos.weights(configuration).filter { !$0.key.contains(".mlp.experts.") }
        let offloaded = try TransformerLanguageModel(configuration: configuration, weights: weights, experts: resident.experts)
        let ids = TinyChronos.ids(6)
        XCTAssertEqual(
            try offloaded.forward(ids, cache: offloaded.makeCache()).floats, try resident.forward(ids, cache: resident.makeCache()).floats)
        XCTAssertEqual(offloaded.parameterCounts, resident.parameterCounts)

        // Saving needs every expert.
        let partial = try TransformerLanguageModel(
            configuration: configuration, weights: weights,
            experts: EditedExperts(resident.experts, missing: [ExpertKey(layer: 1, expert: 2)]))
        XCTAssertEqual(partial.namedParameters().count, resident.namedParameters().count - 3)
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertThrowsError(try partial.save(to: directory))
    }
}
