import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Every `hf-tiny` case against what Hugging Face transformers computed for it.
final class OracleTests: XCTestCase {
    func testFullSequenceLogitsMatchTransformers() throws {
        for oracle in OracleCase.allCases {
            let model = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            let logits = try model.forward(reference.inputIds, cache: model.makeCache())
            XCTAssertEqual(logits.shape, [reference.inputIds.count, model.summary.vocabSize], oracle.rawValue)
            let expected = reference.logits.flatMap { $0.map(Float.init) }
            let difference = maxAbsoluteDifference(logits.floats, expected)
            XCTAssertLessThanOrEqual(difference, 1e-4, "\(oracle.rawValue): largest logit difference \(difference)")
        }
    }

    func testTheFusedExpertLayoutOfTransformers5LoadsToTheSameModel() throws {
        for oracle in [OracleCase.mixtral, .qwen2MoE, .qwen3MoE] {
            let checkpoint = try SafetensorsCheckpoint(directory: oracle.fusedDirectory)
            XCTAssertEqual(checkpoint.tensorNames.filter { $0.hasSuffix(".experts.gate_up_proj") }.count, 2, oracle.rawValue)
            XCTAssertFalse(checkpoint.tensorNames.contains { $0.contains(".experts.0.") }, oracle.rawValue)
            let fused = try ModelRegistry.load(directory: oracle.fusedDirectory),
                split = try ModelRegistry.load(directory: oracle.directory)
            let reference = try OracleReference.load(oracle.rawValue)
            let logits = try fused.forward(reference.inputIds, cache: fused.makeCache())
            XCTAssertEqual(logits.floats, try split.forward(reference.inputIds, cache: split.makeCache()).floats, oracle.rawValue)
            let difference = maxAbsoluteDifference(logits.floats, reference.logits.flatMap { $0.map(Float.init) })
            XCTAssertLessThanOrEqual(difference, 1e-4, "\(oracle.rawValue): largest logit difference \(difference)")
            XCTAssertEqual(fused.parameterCounts, split.parameterCounts, oracle.rawValue)
            XCTAssertEqual(fused.namedParameters().map(\.name), split.namedParameters().map(\.name), oracle.rawValue)
        }
    }

    func testAFusedExpertTensorOfTheWrongShapeOrWithoutItsPartnerIsNamed() throws {
        let checkpoint = try SafetensorsCheckpoint(directory: OracleCase.qwen3MoE.fusedDirectory)
        let tensors: [(name: String, tensor: Tensor)] = try checkpoint.tensorNames.map { ($0, try checkpoint.tensor(named: $0)) }
        let gateUp = "model.layers.1.mlp.experts.gate_up_proj", down = "model.layers.1.mlp.experts.down_proj"
        for (edit, expected) in [
            (
                { (t: inout [(name: String, tensor: Tensor)]) in
                    t = t.map { $0.name == gateUp ? ($0.name, $0.tensor.slice(0..<7).contiguous()) : $0 }
                },
                ModelError.shapeMismatch(tensor: gateUp, expected: [8, 64, 64], found: [7, 64, 64])
            ),
            (
                { (t: inout [(name: String, tensor: Tensor)]) in t.removeAll { $0.name == down } },
                ModelError.missingTensor(name: down, directory: "")
            )
        ] {
            var edited = tensors
            edit(&edited)
            let directory = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            try FileManager.default.copyItem(
                at: OracleCase.qwen3MoE.fusedDirectory.appendingPathComponent("config.json"),
                to: directory.appendingPathComponent("config.json"))
            try SafetensorsWriter.write(edited, to: directory.appendingPathComponent("model.safetensors"))
            XCTAssertThrowsError(try ModelRegistry.load(directory: directory)) { error in
                switch (error as? ModelError, expected) {
                case (.missingTensor(let name, _)?, .missingTensor(let expectedName, _)): XCTAssertEqual(name, expectedName)
                default: XCTAssertEqual(error as? ModelError, expected)
                }
            }
        }
    }

    func testRouterChoicesAndWeightsMatchTransformers() throws {
        for oracle in OracleCase.allCases {
            let model = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            let cache = model.makeCache(), log = ForwardLog()
            cache.observer = log
            _ = try model.forward(reference.inputIds, cache: cache)
            let decisions = log.decisions
            guard let topK = reference.routerTopK, let weights = reference.routerWeights else {
                XCTAssertTrue(decisions.isEmpty, "\(oracle.rawValue) is dense but reported routing")
                continue
            }
            // A dense layer has no entries.
            XCTAssertEqual(decisions.count, topK.filter { !$0.isEmpty }.count * reference.inputIds.count, oracle.rawValue)
            for decision in decisions {
                let label = "\(oracle.rawValue) layer \(decision.layer) position \(decision.position)"
                XCTAssertEqual(decision.experts, topK[decision.layer][decision.position], label)
                let expected = weights[decision.layer][decision.position].map(Float.init)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(decision.weights, expected), 1e-5, label)
                XCTAssertEqual(decision.probabilities.count, model.summary.expertsPerLayer[decision.layer], label)
                // DeepSeek-V3 and GLM-4.5 score each expert with its own sigmoid; the others with a softmax.
                if ![.deepSeekV3, .glm4MoE, .glm4MoEAir].contains(oracle) {
                    XCTAssertEqual(decision.probabilities.reduce(0, +), 1, accuracy: 1e-5, label)
                }
                XCTAssertEqual(decision.missing, [], label)
            }
        }
    }

    func testGreedyDecodingWithTheCacheMatchesTransformers() throws {
        for oracle in OracleCase.allCases {
            let model = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            let cache = model.makeCache()
            var logits = try model.forward(reference.inputIds, cache: cache)
            var generated: [Int] = []
            for _ in 0..<reference.greedy.count {
                let next = argmax(logits.row(logits.shape[0] - 1))
                generated.append(next)
                logits = try model.forward([next], cache: cache)
            }
            XCTAssertEqual(generated, reference.greedy, oracle.rawValue)
            XCTAssertEqual(cache.offset, reference.inputIds.count + reference.greedy.count, oracle.rawValue)
        }
    }

    func testTokenByTokenDecodingMatchesTheFullSequence() throws {
        for oracle in OracleCase.allCases {
            let model = try oracle.load(), reference = try OracleReference.load(oracle.rawValue)
            let full = try model.forward(reference.inputIds, cache: model.makeCache())
            let cache = model.makeCache()
            for (position, id) in reference.inputIds.enumerated() {
                XCTAssertEqual(cache.offset, position)
                let step = try model.forward([id], cache: cache)
                XCTAssertEqual(step.shape, [1, model.summary.vocabSize])
                let difference = maxAbsoluteDifference(step.floats, full.row(position))
                XCTAssertLessThanOrEqual(difference, 1e-4, "\(oracle.rawValue) position \(position): \(difference)")
            }
        }
    }

    func testPrefillInChunksMatchesTheFullSequence() throws {
        let model = try OracleCase.mixtral.load(), reference = try OracleReference.load("mixtral")
        let full = try model.forward(reference.inputIds, cache: model.makeCache())
        let cache = model.makeCache()
        let first = try model.forward(Array(reference.inputIds[..<4]), cache: cache)
        let rest = try model.forward(Array(reference.inputIds[4...]), cache: cache)
        let chunked = first.floats + rest.floats
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(chunked, full.floats), 1e-4)
    }

    func testTrimmingTheCacheReplaysTheSameLogits() throws {
        let model = try OracleCase.qwen3MoE.load(), reference = try OracleReference.load("qwen3_moe")
        let cache = model.makeCache()
        _ = try model.forward(Array(reference.inputIds.dropLast(2)), cache: cache)
        let before = try model.forward(Array(reference.inputIds.suffix(2)), cache: cache)
        XCTAssertEqual(cache.trim(2), 2)
        XCTAssertEqual(cache.offset, reference.inputIds.count - 2)
        XCTAssertTrue(cache.layers.allSatisfy { $0.offset == reference.inputIds.count - 2 })
        let after = try model.forward(Array(reference.inputIds.suffix(2)), cache: cache)
        XCTAssertEqual(after.floats, before.floats)
    }

    func testSummariesDescribeTheFixtures() throws {
        let mixtral = try OracleCase.mixtral.load().summary
        XCTAssertEqual(mixtral.modelType, "mixtral")
        XCTAssertEqual(mixtral.architecture, "MixtralForCausalLM")
        XCTAssertEqual([mixtral.vocabSize, mixtral.hiddenSize, mixtral.layerCount], [256, 64, 2])
        XCTAssertEqual([mixtral.attentionHeads, mixtral.keyValueHeads, mixtral.headDim], [4, 2, 16])
        XCTAssertEqual(mixtral.expertsPerLayer, [4, 4])
        XCTAssertEqual(mixtral.expertsPerToken, 2)
        XCTAssertFalse(mixtral.hasSharedExpert)
        XCTAssertEqual(mixtral.bosTokenId, 1)
        XCTAssertEqual(mixtral.eosTokenIds, [2])

        let qwen2 = try OracleCase.qwen2MoE.load().summary
        XCTAssertTrue(qwen2.hasSharedExpert)
        XCTAssertEqual(qwen2.expertsPerLayer, [4, 4])
        let qwen3 = try OracleCase.qwen3MoE.load().summary
        XCTAssertEqual(qwen3.expertsPerLayer, [8, 8])
        let llama = try OracleCase.llamaDense.load().summary
        XCTAssertEqual(llama.expertsPerLayer, [0, 0])
        XCTAssertFalse(llama.isMixtureOfExperts)
    }

    func testParameterCountsAddUp() throws {
        // Mixtral fixture: hidden 64, vocab 256, 2 layers, 4 experts of width 128, top-2, untied head.
        let counts = try OracleCase.mixtral.load().parameterCounts
        let attention = 64 * 64 + 32 * 64 + 32 * 64 + 64 * 64
        let perLayerDense = attention + 2 * 64 + 4 * 64  // two norms and the router
        let dense = 2 * 256 * 64 + 64 + 2 * perLayerDense
        let perExpert = 3 * 64 * 128
        XCTAssertEqual(counts.dense, dense)
        XCTAssertEqual(counts.expert, 2 * 4 * perExpert)
        XCTAssertEqual(counts.activePerToken, dense + 2 * 2 * perExpert)
        XCTAssertEqual(counts.total, dense + 8 * perExpert)
        XCTAssertEqual(counts.denseBytes, 4 * dense)
        XCTAssertEqual(counts.expertBytes, 4 * 8 * perExpert)

        let llama = try OracleCase.llamaDense.load().parameterCounts
        XCTAssertEqual(llama.expert, 0)
        XCTAssertEqual(llama.activePerToken, llama.total)
    }

    func testCheckpointNamesOfExperts() throws {
        let mixtral = try OracleCase.mixtral.load()
        XCTAssertEqual(
            mixtral.checkpointNames(for: ExpertKey(layer: 1, expert: 3)),
            ExpertWeightNames(
                gate: "model.layers.1.block_sparse_moe.experts.3.w1.weight",
                up: "model.layers.1.block_sparse_moe.experts.3.w3.weight",
                down: "model.layers.1.block_sparse_moe.experts.3.w2.weight"))
        XCTAssertNil(mixtral.checkpointNames(for: ExpertKey(layer: 1, expert: 4)))
        XCTAssertNil(mixtral.checkpointNames(for: ExpertKey(layer: 2, expert: 0)))
        let qwen = try OracleCase.qwen2MoE.load()
        XCTAssertEqual(qwen.checkpointNames(for: ExpertKey(layer: 0, expert: 1))?.down, "model.layers.0.mlp.experts.1.down_proj.weight")
        XCTAssertNil(try OracleCase.llamaDense.load().checkpointNames(for: ExpertKey(layer: 0, expert: 0)))
    }

    func testTokenOutsideTheVocabularyIsAnError() throws {
        let model = try OracleCase.llamaDense.load()
        XCTAssertThrowsError(try model.forward([5, 256], cache: model.makeCache())) { error in
            XCTAssertEqual(error as? ModelError, .tokenOutOfRange(id: 256, vocabSize: 256))
        }
    }
}
