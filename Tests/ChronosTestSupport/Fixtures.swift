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

    /// A fresh empty temporary directory, removed by the caller or by the OS.
    public static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("chronos-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
