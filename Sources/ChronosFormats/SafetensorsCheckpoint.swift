import ChronosTensor
import Foundation

/// The weights of a Hugging Face model directory: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`, looked up by tensor name across all of them.
public final class SafetensorsCheckpoint: Sendable {
    /// The model directory.
    public let directory: URL
    /// Every shard file, each opened once, in file-name order.
    public let shards: [SafetensorsFile]
    /// Every tensor name, shard by shard, in the order their bytes appear within each shard.
    public let tensorNames: [String]
    private let shardByTensor: [String: SafetensorsFile]

    /// Opens the checkpoint in `directory`, preferring `model.safetensors` when both layouts exist.
    public init(directory: URL) throws {
        self.directory = directory
        let single = ModelDirectory(directory).checkpoint, index = ModelDirectory(directory).checkpointIndex
        if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            shards = [file]
            tensorNames = file.tensorNames
            shardByTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
        } else if FileManager.default.fileExists(atPath: index.path) {
            let weightMap = try Self.readWeightMap(index)
            var shardByName: [String: SafetensorsFile] = [:]
            for shardName in Set(weightMap.values).sorted() {
                let url = directory.appendingPathComponent(shardName)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw SafetensorsError.missingShard(index: index.path, shard: shardName)
                }
                shardByName[shardName] = try SafetensorsFile(url: url)
            }
            var shardByTensor: [String: SafetensorsFile] = [:]
            for (tensor, shardName) in weightMap {
                let shard = shardByName[shardName]!
                guard shard.contains(tensor) else {
                    throw SafetensorsError.tensorMissingFromShard(path: shard.url.path, tensor: tensor)
                }
                shardByTensor[tensor] = shard
            }
            shards = shardByName.keys.sorted().map { shardByName[$0]! }
            tensorNames = shards.flatMap { shard in shard.tensorNames.filter { weightMap[$0] != nil } }
            self.shardByTensor = shardByTensor
        } else {
            throw SafetensorsError.noCheckpoint(directory: directory.path)
        }
    }

    /// The `weight_map` of the index at `url`; shard names must be plain file names.
    private static func readWeightMap(_ url: URL) throws -> [String: String] {
        struct Index: Decodable {
            let weightMap: [String: String]

            enum CodingKeys: String, CodingKey {
                case weightMap = "weight_map"
            }
        }
        let weightMap: [String: String]
        do {
            weightMap = try JSONDecoder().decode(Index.self, from: Data(contentsOf: url)).weightMap
        } catch {
            throw SafetensorsError.invalidIndex(
                path: url.path, reason: "expected a JSON object whose weight_map maps tensor names to shard file names")
        }
        for shard in Set(weightMap.values) where shard.isEmpty || shard.contains("/") || shard == "." || shard == ".." {
            throw SafetensorsError.invalidIndex(path: url.path, reason: "shard '\(shard)' is not a file name in the model directory")
        }
        return weightMap
    }

    /// Whether any shard holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { shardByTensor[name] != nil }

    /// The shard file that holds the tensor called `name`.
    public func shard(containing name: String) throws -> SafetensorsFile {
        guard let shard = shardByTensor[name] else {
            throw SafetensorsError.tensorNotFound(tensor: name, path: directory.path)
        }
        return shard
    }

    /// The dtype, shape and byte range (within its shard) of the tensor called `name`.
    public func info(named name: String) throws -> SafetensorsTensorInfo {
        try shard(containing: name).info(named: name)
    }

    /// The tensor called `name`, viewing its shard's mapped bytes without copying them.
    public func tensor(named name: String) throws -> Tensor {
        try shard(containing: name).tensor(named: name)
    }
}
