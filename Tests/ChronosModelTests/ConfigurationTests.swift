import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Both `config.json` forms (transformers 4 and 5), sharded checkpoints and tied embeddings.
final class ConfigurationTests: XCTestCase {
    private func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    func testQwen3MoEReadsBothExpertCountNamesAndRopeForms() throws {
        let v4 = try decode(
            Qwen3MoEConfiguration.self,
            """
            {"model_type": "qwen3_moe", "vocab_size": 151936, "hidden_size": 2048, "num_hidden_layers": 48,
             "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "num_experts": 128,
             "num_experts_per_tok": 8, "moe_intermediate_size": 768, "norm_topk_prob": true,
             "rope_theta": 1000000.0, "rope_scaling": null, "eos_token_id": 151645}
            """)
        XCTAssertEqual(v4.experts, 128)
        XCTAssertEqual(v4.rope, RoPEParameters(ropeTheta: 1_000_000))
        XCTAssertEqual(v4.headDim, 128)
        XCTAssertEqual(v4.eosTokenId, [151645])
        XCTAssertTrue(v4.normTopKProb)

        let v5 = try decode(
            Qwen3MoEConfiguration.self,
            """
            {"model_type": "qwen3_moe", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "head_dim": null, "num_local_experts": 8,
             "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "eos_token_id": [1, 2]}
            """)
        XCTAssertEqual(v5.experts, 8)
        XCTAssertNil(v5.headDim)
        XCTAssertEqual(v5.keyValueHeads, 4)
        XCTAssertEqual(v5.rope, RoPEParameters(ropeTheta: 10_000))
        XCTAssertEqual(v5.eosTokenId, [1, 2])
        XCTAssertEqual(v5.rmsNormEps, 1e-6)
        XCTAssertFalse(v5.normTopKProb)
    }

    func testLegacyRopeScalingIsRecognised() throws {
        let config = try decode(
            LlamaConfiguration.self,
            """
            {"vocab_size": 8, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}
            """)
        var linear = RoPEParameters(ropeTheta: 500_000, ropeType: "linear")
        linear.factor = 2
        XCTAssertEqual(config.rope, linear)
        XCTAssertEqual(config.modelType, "llama")
        XCTAssertEqual(config.eosTokenId, [])
    }

    func testConfigurationsRoundTripThroughTheTransformers5Form() throws {
        let original = try decode(
            Qwen2MoEConfiguration.self,
            String(
                decoding: try Data(
                    contentsOf:
                        OracleCase.qwen2MoE.directory.appendingPathComponent("config.json")), as: UTF8.self))
        let encoded = try JSONEncoder().encode(original)
        let object = try JSONSerialization.jsonObject(with: encoded) as! [String: Any]
        XCTAssertNotNil(object["rope_parameters"])
        XCTAssertEqual(object["shared_expert_intermediate_size"] as? Int, 64)
        let decoded = try JSONDecoder().decode(Qwen2MoEConfiguration.self, from: encoded)
        XCTAssertEqual(decoded.rope, original.rope)
        XCTAssertEqual(decoded.experts, 4)
        XCTAssertEqual(decoded.qkvBias, true)
        XCTAssertEqual(decoded.sharedExpertIntermediateSize, 64)
    }

    func testTransformers4ConfigLoadsTheSameModel() throws {
        let legacy = try FixtureDirectory.make(from: .qwen3MoE) { config in
            config.removeValue(forKey: "rope_parameters")
            config["rope_theta"] = 10000.0
            config["num_experts"] = config.removeValue(forKey: "num_local_experts")
        }
        let ids = try OracleReference.load("qwen3_moe").inputIds
        let current = try OracleCase.qwen3MoE.load(), old = try ModelRegistry.load(directory: legacy)
        XCTAssertEqual(
            try old.forward(ids, cache: old.makeCache()).floats,
            try current.forward(ids, cache: current.makeCache()).floats)
    }

    func testShardedCheckpointLoadsTheSameModel() throws {
        let directory = try FixtureDirectory.make(from: .mixtral)
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        let tensors = try FixtureDirectory.fixtureTensors(.mixtral)
        let half = tensors.count / 2
        let shards = [
            ("model-00001-of-00002.safetensors", Array(tensors[..<half])),
            ("model-00002-of-00002.safetensors", Array(tensors[half...]))
        ]
        var weightMap: [String: String] = [:]
        for (file, part) in shards {
            try SafetensorsWriter.write(part, to: directory.appendingPathComponent(file))
            for (name, _) in part { weightMap[name] = file }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
            .write(to: directory.appendingPathComponent(ModelDirectory.Name.checkpointIndex))

        let ids = try OracleReference.load("mixtral").inputIds
        let sharded = try ModelRegistry.load(directory: directory), single = try OracleCase.mixtral.load()
        XCTAssertEqual(
            try sharded.forward(ids, cache: sharded.makeCache()).floats,
            try single.forward(ids, cache: single.makeCache()).floats)
        XCTAssertEqual(sharded.parameterCounts, single.parameterCounts)
    }

    func testTiedEmbeddingsUseTheEmbeddingTableAsTheHead() throws {
        // Untied, with lm_head replaced by a copy of the embedding table…
        let untied = try FixtureDirectory.make(
            from: .llamaDense,
            editTensors: { tensors in
                let embedding = tensors.first { $0.name == "model.embed_tokens.weight" }!.tensor
                let head = tensors.firstIndex { $0.name == "lm_head.weight" }!
                tensors[head].tensor = embedding.copy()
            })
        // …gives the same logits as tied, with no lm_head at all.
        let tied = try FixtureDirectory.make(
            from: .llamaDense, editConfig: { $0["tie_word_embeddings"] = true },
            editTensors: { $0.removeAll { $0.name == "lm_head.weight" } })
        let ids = try OracleReference.load("llama_dense").inputIds
        let a = try ModelRegistry.load(directory: untied), b = try ModelRegistry.load(directory: tied)
        XCTAssertEqual(try a.forward(ids, cache: a.makeCache()).floats, try b.forward(ids, cache: b.makeCache()).floats)
        XCTAssertEqual(b.parameterCounts.dense, a.parameterCounts.dense - 256 * 64)
    }

    func testSlidingWindowMasksDistantKeysInPrefillAndDecode() throws {
        let window = 4
        let directory = try FixtureDirectory.make(from: .mixtral) { $0["sliding_window"] = window }
        let ids = try OracleReference.load("mixtral").inputIds
        let sliding = try ModelRegistry.load(directory: directory), full = try OracleCase.mixtral.load()
        let slid = try sliding.forward(ids, cache: sliding.makeCache()), unmasked = try full.forward(ids, cache: full.makeCache())
        for position in ids.indices {
            let difference = maxAbsoluteDifference(slid.row(position), unmasked.row(position))
            // Positions inside the window see the same keys (up to how experts batch the other
            // tokens); every later one loses some.
            if position < window {
                XCTAssertLessThanOrEqual(difference, 1e-5, "position \(position)")
            } else {
                XCTAssertGreaterThan(difference, 1e-4, "position \(position)")
            }
        }
        let cache = sliding.makeCache()
        for (position, id) in ids.enumerated() {
            let step = try sliding.forward([id], cache: cache)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(step.floats, slid.row(position)), 1e-4, "position \(position)")
        }
    }
}
