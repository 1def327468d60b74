import Foundation

/// Runs the reference Python libraries (safetensors, tokenizers, torch, transformers) and scripts for interoperability tests.
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

    /// Runs `python3 arguments…` (a script and its arguments, or `-m module …`) with
    /// `environment` added to this process's, stopping it after `timeout` seconds: its exit
    /// status (nil when it was stopped), standard output and standard error.
    public static func run(
        arguments: [String], environment: [String: String] = [:], timeout: TimeInterval
    ) throws -> (status: Int32?, output: String, errors: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chronos-python-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outputURL = directory.appendingPathComponent("out"), errorsURL = directory.appendingPathComponent("err")
        for url in [outputURL, errorsURL] { try Data().write(to: url) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorsURL)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let stopped = process.isRunning
        if stopped {
            process.terminate()
            process.waitUntilExit()
        }
        let output = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOf: errorsURL, encoding: .utf8)) ?? ""
        return (stopped ? nil : process.terminationStatus, output, errors)
    }

    /// Whether `python3` can import `modules` (comma-separated).
    public static func canImport(_ modules: String) -> Bool {
        (try? run("import \(modules)").status) == 0
    }
}
