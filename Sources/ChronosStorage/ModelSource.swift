#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// What an expert cache was packed from, recorded and checked by content alone: XXH64 of
/// `config.json` and of each packed expert tensor's bytes in the checkpoint. Modification times
/// play no part, so a copied or freshly cloned model directory keeps its cache, while an edit of
/// `config.json` or of any packed expert's weights makes it stale.
enum ModelSource {
    /// The source record of `directory` as it is now.
    static func current(_ directory: URL) throws -> ExpertCacheManifest.Source {
        .init(configHash: try configHash(directory))
    }

    /// XXH64 of `directory`'s `config.json`, as 16 hex digits.
    static func configHash(_ directory: URL) throws -> String {
        let configURL = directory.appendingPathComponent("config.json")
        let config: Data
        do {
            config = try Data(contentsOf: configURL)
        } catch {
            throw ExpertCacheError.io(path: configURL.path, call: "read", errno: ENOENT)
        }
        return ContentHash.hex(config.withUnsafeBytes { ContentHash.xxh64($0) })
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
        if manifest.source.configHash != config {
            return "config.json changed since packing (XXH64 \(config), packed with \(manifest.source.configHash))"
        }
        let checkpoint: SafetensorsCheckpoint
        do {
            checkpoint = try SafetensorsCheckpoint(directory: directory)
        } catch {
            return "the checkpoint cannot be opened (\(error))"
        }
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
