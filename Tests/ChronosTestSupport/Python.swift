import Foundation

/// Runs the reference Python libraries (safetensors, tokenizers) for interoperability tests.
public enum Python {
    /// Runs `python3 -c script arguments…` and returns its exit status and standard output.
    public static func run(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }

    /// Whether `python3` can import `modules` (comma-separated).
    public static func canImport(_ modules: String) -> Bool {
        (try? run("import \(modules)").status) == 0
    }
}
