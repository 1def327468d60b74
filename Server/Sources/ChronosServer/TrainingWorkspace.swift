import ChronosTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The folder that training and tuning jobs started from the web UI read and write: every path
/// a request names is relative to it and must stay inside it, whether through `..` or through a
/// symbolic link, so that a client of the server reaches no other file of the machine.
public struct TrainingWorkspace: Sendable {
    /// The folder, its symbolic links resolved.
    public let root: URL

    /// The workspace at `path`; throws unless it is an existing directory.
    public init(path: String) throws(InvalidSetting) {
        guard let real = Self.realPath(path), Self.isDirectory(real) else {
            throw InvalidSetting(name: "--workspace", value: path, expected: "an existing directory")
        }
        root = URL(fileURLWithPath: real)
    }

    /// Where `path`, given as request field `field`, lies: refused (400 naming the field) when it
    /// is empty, absolute, climbs with `..`, names the workspace itself, or leads out of the
    /// workspace through a symbolic link; when `existing`, also when nothing is there. The part
    /// of the path that exists is resolved (links followed) and must lie inside the workspace;
    /// the rest is yet to be made.
    func resolve(_ path: String, field: String, existing: Bool) throws(APIError) -> URL {
        let quoted = path.debugDescription
        guard !path.isEmpty, !path.contains("\0") else {
            throw .invalid(field, "\(field) \(quoted) is invalid: expected a path relative to the workspace")
        }
        guard !path.hasPrefix("/") else {
            throw .invalid(field, "\(field) \(quoted) is an absolute path: expected a path relative to the workspace")
        }
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else {
            throw .invalid(field, "\(field) \(quoted) climbs out with '..': expected a path inside the workspace")
        }
        guard !parts.isEmpty else {
            throw .invalid(field, "\(field) \(quoted) names the workspace itself: expected a file or folder inside it")
        }
        var present = parts.count
        while present > 0, !Self.exists(root.appendingPathComponent(parts[..<present].joined(separator: "/")).path) { present -= 1 }
        let base = root.appendingPathComponent(parts[..<present].joined(separator: "/"))
        guard let real = Self.realPath(base.path), contains(real) else {
            throw .invalid(field, "\(field) \(quoted) leads out of the workspace through a symbolic link")
        }
        guard !existing || present == parts.count else {
            throw .invalid(field, "\(field) \(quoted) does not exist in the workspace")
        }
        return parts[present...].reduce(URL(fileURLWithPath: real)) { $0.appendingPathComponent($1) }
    }

    /// Whether the resolved path `real` is the workspace or lies inside it.
    func contains(_ real: String) -> Bool {
        real == root.path || real.hasPrefix(root.path == "/" ? "/" : root.path + "/")
    }

    /// `url`'s path relative to the workspace, as requests name it.
    func relative(_ url: URL) -> String {
        let path = url.standardizedFileURL.path
        return contains(path) && path != root.path ? String(path.dropFirst(root.path.count + (root.path == "/" ? 0 : 1))) : path
    }

    /// The run directories (with `metrics.jsonl`) and study directories (with `trials.jsonl`)
    /// in the workspace, at most `depth` folders down; hidden folders, snapshots and symbolic
    /// links are not entered, nor the runs and studies found.
    func recordedDirectories(depth: Int = 4) -> [(kind: TrainingJobs.Kind, url: URL)] {
        var found: [(kind: TrainingJobs.Kind, url: URL)] = []
        func visit(_ directory: URL, _ level: Int) {
            let manager = FileManager.default
            if manager.fileExists(atPath: directory.appendingPathComponent("trials.jsonl").path) {
                found.append((.study, directory))
                return
            }
            if manager.fileExists(atPath: directory.appendingPathComponent("metrics.jsonl").path) {
                found.append((.pretrain, directory))
                return
            }
            guard level < depth, let names = try? manager.contentsOfDirectory(atPath: directory.path) else { return }
            for name in names.sorted() where !name.hasPrefix(".") && name != "checkpoints" {
                let child = directory.appendingPathComponent(name)
                if Self.isDirectory(child.path, followingLinks: false) { visit(child, level + 1) }
            }
        }
        visit(root, 0)
        return found
    }

    /// Whether anything (a dangling link included) is at `path` (`lstat(2)`).
    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Whether `path` is a directory; a link to one counts only when `followingLinks`.
    static func isDirectory(_ path: String, followingLinks: Bool = true) -> Bool {
        var status = stat()
        guard (followingLinks ? stat(path, &status) : lstat(path, &status)) == 0 else { return false }
        return status.st_mode & mode_t(S_IFMT) == mode_t(S_IFDIR)
    }

    /// `path` with every symbolic link and `.`/`..` resolved (`realpath(3)`), nil when it cannot be.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
