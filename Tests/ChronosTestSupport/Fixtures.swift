import Foundation

/// Locates the reference data under `Tests/Fixtures` (Hugging Face checkpoints and tokenizers
/// with their expected outputs) from the test sources, so no resource bundle is needed.
public enum Fixtures {
    /// The `Tests/Fixtures` directory of this checkout.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The model that ships with Chronos (`models/austen-moe` of this checkout).
    public static let shippedModel: URL = root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models/austen-moe")

    /// A path inside the fixtures directory, e.g. `url("hf-tiny/mixtral/model.safetensors")`.
    public static func url(_ relativePath: String) -> URL {
        root.appendingPathComponent(relativePath)
    }

    /// A fresh empty temporary directory, removed when the test process exits.
    public static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("chronos-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        TemporaryDirectories.shared.add(dir)
        return dir
    }
}

/// The directories `Fixtures.temporaryDirectory()` handed out, removed at process exit.
private final class TemporaryDirectories: @unchecked Sendable {
    static let shared = TemporaryDirectories()
    private let lock = NSLock()
    private var directories: [URL] = []

    private init() {
        atexit { TemporaryDirectories.shared.removeAll() }
    }

    func add(_ directory: URL) {
        lock.withLock { directories.append(directory) }
    }

    func removeAll() {
        for directory in lock.withLock({ directories }) { try? FileManager.default.removeItem(at: directory) }
    }
}
