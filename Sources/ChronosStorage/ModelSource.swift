import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What an expert cache was packed from, recorded and checked by content alone: XXH64 of
/// `config.json`'s settings and of each packed expert tensor's bytes in the checkpoint.
/// Modification times play no part, so a copied or freshly cloned model directory keeps its
/// cache; neither does the formatting of `config.json` (indentation, key order, how a number
/// is written), so a reformatted file keeps it too, while a changed setting or any packed
/// expert's weights make it stale.
enum ModelSource {
    /// The source record of `directory` as it is now.
    static func current(_ directory: URL) throws -> ExpertCacheManifest.Source {
        .init(configHash: try configHash(directory))
    }

    /// XXH64 of `directory`'s `config.json` in canonical form (keys sorted, no whitespace,
    /// numbers as the JSON parser reads them), as 16 hex digits; of its bytes as they are when
    /// it is not a JSON object.
    static func configHash(_ directory: URL) throws -> String {
        let config = try configBytes(directory)
        return ContentHash.hex(canonical(config).withUnsafeBytes { ContentHash.xxh64($0) })
    }

    /// XXH64 of `directory`'s `config.json` bytes as they are: what caches packed by earlier
    /// builds recorded.
    static func configBytesHash(_ directory: URL) throws -> String {
        ContentHash.hex(try configBytes(directory).withUnsafeBytes { ContentHash.xxh64($0) })
    }

    private static func configBytes(_ directory: URL) throws -> Data {
        let configURL = ModelDirectory(directory).config
        do {
            return try Data(contentsOf: configURL)
        } catch {
            throw ExpertCacheError.io(path: configURL.path, call: "read", errno: ENOENT)
        }
    }

    /// `config` re-serialised with sorted keys and no whitespace.
    static func canonical(_ config: Data) -> Data {
        guard let object = try? JSONSerialization.jsonObject(with: config), object is [String: Any],
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        else { return config }
        return data
    }

    /// XXH64 of `tensor`'s bytes as stored (its dtype, row-major), as 16 hex digits.
    static func hash(of tensor: Tensor) -> String {
        let contiguous = tensor.contiguous()
        return ContentHash.hex(ContentHash.xxh64(UnsafeRawBufferPointer(start: contiguous.rawPointer, count: contiguous.byteCount)))
    }

    /// Why the cache `manifest` no longer describes `directory`, or nil when it does:
    /// `config.json` changed, or a source tensor changed or left the checkpoint (which it may
    /// only by stripping, when the cache becomes the experts' only copy).
    static func staleness(of manifest: ExpertCacheManifest, in directory: URL) throws -> String? {
        let config = try configHash(directory)
        if manifest.source.configHash != config, try manifest.source.configHash != configBytesHash(directory) {
            return "a setting of config.json changed since packing (XXH64 \(config), packed with \(manifest.source.configHash))"
        }
        // A checkpoint that cannot be opened is damaged, not stale: its own error names the file.
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        let stripped = StrippedCheckpoint.isStripped(checkpoint)
        for expert in manifest.experts {
            for tensor in expert.tensors {
                guard checkpoint.contains(tensor.source) else {
                    if stripped { continue }
                    return "checkpoint tensor \(tensor.source) of expert \(expert.key) is gone since packing"
                }
                if hash(of: try checkpoint.tensor(named: tensor.source)) != tensor.sourceHash {
                    return "checkpoint tensor \(tensor.source) of expert \(expert.key) changed since packing"
                }
            }
        }
        return nil
    }
}
