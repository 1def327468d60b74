import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// The tiny Hugging Face checkpoints read with the values the Python `safetensors` library
/// reports for them.
final class SafetensorsFixtureTests: XCTestCase {
    /// What is known about one fixture: tensor count, the embedding's first three values, and
    /// one weight's name, shape, first three and last values.
    struct Expected {
        let directory: String
        let tensorCount: Int
        let embedFirst: [Float]
        let weight: String
        let weightShape: [Int]
        let weightFirst: [Float]
        let weightLast: Float
        let normLast: Float
    }

    static let expectations = [
        Expected(
            directory: "llama_dense", tensorCount: 21,
            embedFirst: [-0.2288394, -0.11253478, -0.09809714],
            weight: "model.layers.1.mlp.up_proj.weight", weightShape: [128, 64],
            weightFirst: [0.016657881, 0.25991812, 0.019605985], weightLast: -0.07870444, normLast: 0.85673296),
        Expected(
            directory: "mixtral", tensorCount: 41,
            embedFirst: [-0.16887598, -0.17285404, -0.03758679],
            weight: "model.layers.1.block_sparse_moe.experts.3.w2.weight", weightShape: [64, 128],
            weightFirst: [0.023243135, -0.2460153, -0.017914439], weightLast: 0.22152229, normLast: 1.052819),
        Expected(
            directory: "qwen2_moe", tensorCount: 55,
            embedFirst: [-0.16887598, -0.17285404, -0.03758679],
            weight: "model.layers.1.mlp.experts.2.gate_proj.weight", weightShape: [32, 64],
            weightFirst: [-0.09183829, 0.078465566, -0.09481198], weightLast: 0.048579376, normLast: 1.0513405),
        Expected(
            directory: "qwen3_moe", tensorCount: 69,
            embedFirst: [-0.16887598, -0.17285404, -0.03758679],
            weight: "model.layers.0.mlp.experts.7.up_proj.weight", weightShape: [32, 64],
            weightFirst: [0.08048989, -0.027806524, 0.11960631], weightLast: 0.1168605, normLast: 1.0677567)
    ]

    func testReadsEveryFixtureCheckpoint() throws {
        for expected in Self.expectations {
            let url = Fixtures.url("hf-tiny/\(expected.directory)/model.safetensors")
            let file = try SafetensorsFile(url: url)
            let label = expected.directory
            XCTAssertEqual(file.tensorNames.count, expected.tensorCount, label)
            XCTAssertEqual(file.tensorNames.first, "lm_head.weight", label)
            XCTAssertEqual(file.tensorNames.last, "model.norm.weight", label)
            XCTAssertEqual(file.metadata, ["format": "pt"], label)
            XCTAssertTrue(file.tensorInfos.allSatisfy { $0.dtype == .f32 }, label)

            let embed = try file.tensor(named: "model.embed_tokens.weight")
            XCTAssertEqual(embed.shape, [256, 64], label)
            XCTAssertEqual(Array(embed.floats.prefix(3)), expected.embedFirst, label)

            let weight = try file.tensor(named: expected.weight)
            XCTAssertEqual(weight.shape, expected.weightShape, label)
            XCTAssertEqual(Array(weight.floats.prefix(3)), expected.weightFirst, label)
            XCTAssertEqual(weight.floats.last, expected.weightLast, label)

            let norm = try file.tensor(named: "model.norm.weight")
            XCTAssertEqual(norm.shape, [64], label)
            XCTAssertEqual(norm[63], expected.normLast, label)
            // The last tensor ends exactly at the end of the file.
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
            XCTAssertEqual(try file.info(named: "model.norm.weight").byteRange.upperBound, size, label)
        }
    }

    func testOpensFixtureDirectoriesAsCheckpoints() throws {
        for expected in Self.expectations {
            let checkpoint = try SafetensorsCheckpoint(directory: Fixtures.url("hf-tiny/\(expected.directory)"))
            XCTAssertEqual(checkpoint.shards.count, 1)
            XCTAssertEqual(checkpoint.tensorNames.count, expected.tensorCount)
            XCTAssertEqual(
                Array(try checkpoint.tensor(named: "model.embed_tokens.weight").floats.prefix(3)),
                expected.embedFirst)
        }
    }

    func testMoERouterShapes() throws {
        let routers = [
            ("mixtral", "model.layers.0.block_sparse_moe.gate.weight", [4, 64]),
            ("qwen2_moe", "model.layers.0.mlp.gate.weight", [4, 64]),
            ("qwen3_moe", "model.layers.0.mlp.gate.weight", [8, 64])
        ]
        for (directory, name, shape) in routers {
            let file = try SafetensorsFile(url: Fixtures.url("hf-tiny/\(directory)/model.safetensors"))
            XCTAssertEqual(try file.info(named: name).shape, shape, directory)
        }
    }
}
