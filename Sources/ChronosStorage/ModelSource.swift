#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ChronosFormats
import Foundation

/// The identity of a model directory's configuration and checkpoint, as an expert cache
/// records it: XXH64 of `config.json` and each checkpoint file's size and modification time
/// (so a retrained or replaced checkpoint, or any edit of `config.json`, makes the cache stale).
enum ModelSource {
    /// The source record of `directory` as it is now.
    static func current(_ directory: URL) throws -> ExpertCacheManifest.Source {
        let configURL = directory.appendingPathComponent("config.json")
        let config: Data
        do {
            config = try Data(contentsOf: configURL)
        } catch {
            throw ExpertCacheError.io(path: configURL.path, call: "read", errno: ENOENT)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".safetensors") || $0 == SafetensorsCheckpoint.indexFileName }
            .sorted()
        let files = try names.map { name -> ExpertCacheManifest.Source.File in
            let path = directory.appendingPathComponent(name).path
            var status = stat()
            guard stat(path, &status) == 0 else { throw ExpertCacheError.io(path: path, call: "stat", errno: errno) }
            #if canImport(Darwin)
            let modified = Int64(status.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(status.st_mtimespec.tv_nsec)
            #else
            let modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
            #endif
            return .init(name: name, bytes: Int(status.st_size), modifiedNanoseconds: modified)
        }
        let hash = config.withUnsafeBytes { ContentHash.xxh64($0) }
        return .init(configHash: ContentHash.hex(hash), files: files)
    }

    /// Why `recorded` no longer describes `now`, or nil when it does.
    static func difference(recorded: ExpertCacheManifest.Source, now: ExpertCacheManifest.Source) -> String? {
        if recorded.configHash != now.configHash { return "config.json changed since packing" }
        let before = Dictionary(recorded.files.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(now.files.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for name in Set(before.keys).union(after.keys).sorted() {
            guard let old = before[name] else { return "checkpoint file \(name) appeared since packing" }
            guard let new = after[name] else { return "checkpoint file \(name) is gone since packing" }
            if old.bytes != new.bytes { return "checkpoint file \(name) changed size since packing" }
            if old.modifiedNanoseconds != new.modifiedNanoseconds { return "checkpoint file \(name) was modified since packing" }
        }
        return nil
    }
}
