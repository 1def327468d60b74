import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Model directories with one file or with shards and an index.
final class SafetensorsCheckpointTests: XCTestCase {
    /// A directory with two shards and an index placing `a`, `b` in the first and `c` in the second.
    private func shardedDirectory(weightMap: [String: String]? = nil) throws -> URL {
        let directory = try Fixtures.temporaryDirectory()
        try SafetensorsWriter.write(
            [
                ("a", Tensor(shape: [2], values: [1, 2])),
                ("b", Tensor(shape: [1, 2], values: [3, 4], dtype: .bf16))
            ],
            metadata: ["format": "pt"],
            to: directory.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafetensorsWriter.write(
            [("c", Tensor(shape: [3], values: [5, 6, 7], dtype: .i64))],
            to: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        let map =
            weightMap ?? [
                "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                "c": "model-00002-of-00002.safetensors"
            ]
        let index: [String: Any] = ["metadata": ["total_size": 36], "weight_map": map]
        try JSONSerialization.data(withJSONObject: index)
            .write(to: directory.appendingPathComponent(ModelDirectory.Name.checkpointIndex))
        return directory
    }

    func testLooksUpTensorsAcrossShards() throws {
        let directory = try shardedDirectory()
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        XCTAssertEqual(
            checkpoint.shards.map(\.url.lastPathComponent),
            ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        XCTAssertEqual(checkpoint.tensorNames, ["a", "b", "c"])
        XCTAssertTrue(checkpoint.contains("c"))
        XCTAssertFalse(checkpoint.contains("d"))
        XCTAssertEqual(try checkpoint.tensor(named: "a").floats, [1, 2])
        XCTAssertEqual(try checkpoint.tensor(named: "b").shape, [1, 2])
        XCTAssertEqual(try checkpoint.tensor(named: "b").floats, [3, 4])
        XCTAssertEqual(try checkpoint.tensor(named: "c").integers, [5, 6, 7])
        XCTAssertEqual(try checkpoint.info(named: "c").dtype, .i64)
        XCTAssertEqual(try checkpoint.shard(containing: "c").url.lastPathComponent, "model-00002-of-00002.safetensors")
        XCTAssertEqual(try checkpoint.shard(containing: "a").metadata, ["format": "pt"])
    }

    func testMissingTensorNamesTensorAndDirectory() throws {
        let directory = try shardedDirectory()
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        XCTAssertThrowsError(try checkpoint.tensor(named: "model.missing.weight")) { error in
            XCTAssertEqual(error as? SafetensorsError, .tensorNotFound(tensor: "model.missing.weight", path: directory.path))
            XCTAssertTrue("\(error)".contains("model.missing.weight") && "\(error)".contains(directory.path))
        }
    }

    func testMissingShardFile() throws {
        let directory = try shardedDirectory(weightMap: [
            "a": "model-00001-of-00002.safetensors",
            "z": "model-00003-of-00003.safetensors"
        ])
        XCTAssertThrowsError(try SafetensorsCheckpoint(directory: directory)) { error in
            XCTAssertEqual(
                error as? SafetensorsError,
                .missingShard(
                    index: directory.appendingPathComponent(ModelDirectory.Name.checkpointIndex).path,
                    shard: "model-00003-of-00003.safetensors"))
        }
    }

    func testIndexedTensorAbsentFromShard() throws {
        let directory = try shardedDirectory(weightMap: [
            "a": "model-00001-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors"
        ])
        XCTAssertThrowsError(try SafetensorsCheckpoint(directory: directory)) { error in
            XCTAssertEqual(
                error as? SafetensorsError,
                .tensorMissingFromShard(
                    path: directory.appendingPathComponent("model-00001-of-00002.safetensors").path,
                    tensor: "c"))
        }
    }

    func testInvalidIndex() throws {
        for index in [#"{"weight_map": {"a": 1}}"#, #"{"metadata": {}}"#, "[]", #"{"weight_map": {"a": "../model.safetensors"}}"#] {
            let directory = try Fixtures.temporaryDirectory()
            let url = directory.appendingPathComponent(ModelDirectory.Name.checkpointIndex)
            try Data(index.utf8).write(to: url)
            XCTAssertThrowsError(try SafetensorsCheckpoint(directory: directory), index) { error in
                guard case .invalidIndex(url.path, _) = error as? SafetensorsError else {
                    return XCTFail("unexpected error for \(index): \(error)")
                }
            }
        }
    }

    func testDirectoryWithoutCheckpoint() throws {
        let directory = try Fixtures.temporaryDirectory()
        XCTAssertThrowsError(try SafetensorsCheckpoint(directory: directory)) { error in
            XCTAssertEqual(error as? SafetensorsError, .noCheckpoint(directory: directory.path))
        }
    }
}
