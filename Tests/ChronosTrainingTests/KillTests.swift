import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// The `chronos` binary (built beside the tests by `swift test`) killed with SIGKILL at seeded
/// random moments of a training run and of a pack, and once each at a moment sure to be mid-way:
/// the rerun a user would make completes, and its result is the uninterrupted run's, byte for
/// byte. `scripts/kill_harness.py` is the long version (a hundred kills per job, on the release
/// binary).
final class KillTests: XCTestCase {
    /// The executable `swift test` built beside this test bundle.
    static let chronos: URL = {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        return executable.deletingLastPathComponent().appendingPathComponent("chronos")
    }()

    /// Runs `chronos` with `arguments` to the end; its exit status and standard output and error.
    func chronos(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = try start(arguments, output: Pipe())
        let data = (process.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func start(_ arguments: [String], output: Pipe? = nil) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: Self.chronos.path) else {
            struct Missing: Error, CustomStringConvertible { var description: String }
            throw Missing(description: "no chronos executable beside the tests at \(Self.chronos.path); run them with `swift test`")
        }
        let process = Process()
        process.executableURL = Self.chronos
        process.arguments = arguments
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Starts `arguments`, kills the process after `delay` seconds if it is still running, and
    /// says whether it was killed.
    func kill(_ arguments: [String], after delay: Double) throws -> Bool {
        let deadline = Date(timeIntervalSinceNow: delay)
        return try kill(arguments, when: { Date() >= deadline })
    }

    /// Starts `arguments` and kills the process as soon as `ready` holds (polled every
    /// millisecond); says whether it was still running then.
    func kill(_ arguments: [String], when ready: () -> Bool) throws -> Bool {
        let process = try start(arguments)
        while process.isRunning && !ready() { Thread.sleep(forTimeInterval: 0.001) }
        let running = process.isRunning
        if running { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return running
    }

    /// A corpus of 40 lines and a tiny model's training options writing into `output`.
    func pretrainArguments(output: URL, steps: Int, extra: [String] = []) throws -> [String] {
        let data = output.deletingLastPathComponent().appendingPathComponent("train.jsonl")
        if !FileManager.default.fileExists(atPath: data.path) {
            let lines = (0..<40).map {
                "{\"text\": \"It is a truth universally acknowledged, number \($0), that a single man must be in want of a wife.\"}"
            }
            try lines.joined(separator: "\n").write(to: data, atomically: true, encoding: .utf8)
        }
        return [
            "train", "pretrain", "--data", data.path, "--out", output.path, "--steps", "\(steps)", "--backend", "swift",
            "--vocab-size", "300", "--hidden", "16", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "8",
            "--kv-latent", "8", "--rope-dim", "4", "--window", "8", "--experts", "4", "--top-k", "2", "--expert-width", "16",
            "--shared-width", "16", "--lookahead", "2", "--seq-len", "12", "--batch", "2", "--warmup", "1",
            "--eval-every", "4", "--eval-sequences", "2", "--checkpoint-every", "1"
        ] + extra
    }

    func contents(_ directory: URL, _ names: [String]) throws -> [Data] {
        try names.map { try Data(contentsOf: directory.appendingPathComponent($0)) }
    }

    func testAKilledTrainingRunResumesToTheSameWeights() throws {
        let reference = try Fixtures.temporaryDirectory().appendingPathComponent("run")
        let started = Date()
        let whole = try chronos(pretrainArguments(output: reference, steps: 8))
        XCTAssertEqual(whole.status, 0, whole.output)
        let duration = Date().timeIntervalSince(started)
        let expected = try contents(reference, ["model.safetensors"])

        var generator = SplitMix64(seed: 7)
        var resumed = 0
        for trial in 0..<3 {
            let output = try Fixtures.temporaryDirectory().appendingPathComponent("run")
            let delay = duration * generator.nextUnit()
            _ = try kill(pretrainArguments(output: output, steps: 8), after: delay)
            var rerun = try chronos(pretrainArguments(output: output, steps: 8, extra: ["--resume"]))
            if rerun.status != 0 && rerun.output.contains("no snapshot to resume from") {
                rerun = try chronos(pretrainArguments(output: output, steps: 8, extra: ["--overwrite"]))
            }
            XCTAssertEqual(rerun.status, 0, "trial \(trial), killed after \(delay) s: \(rerun.output)")
            if rerun.output.contains("resuming at step") { resumed += 1 }
            XCTAssertEqual(try contents(output, ["model.safetensors"]), expected, "trial \(trial), killed after \(delay) s")
        }
        // A kill at a random moment may land before the first snapshot; one landing after it
        // is made sure of by the last run, killed as soon as its first snapshot is named.
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("run")
        let latest = output.appendingPathComponent("checkpoints/latest").path
        XCTAssertTrue(
            try kill(pretrainArguments(output: output, steps: 8), when: { FileManager.default.fileExists(atPath: latest) }),
            "killed before it finished")
        let rerun = try chronos(pretrainArguments(output: output, steps: 8, extra: ["--resume"]))
        XCTAssertEqual(rerun.status, 0, rerun.output)
        XCTAssertTrue(rerun.output.contains("resuming at step") || resumed > 0, rerun.output)
        XCTAssertEqual(try contents(output, ["model.safetensors"]), expected)
    }

    func testAKilledPackLeavesALoadableModelAndPacksAgainToTheSameCache() throws {
        let source = try Fixtures.temporaryDirectory().appendingPathComponent("model")
        let trained = try chronos(pretrainArguments(output: source, steps: 1))
        XCTAssertEqual(trained.status, 0, trained.output)
        try FileManager.default.removeItem(at: source.appendingPathComponent("checkpoints"))
        func copy() throws -> URL {
            let target = try Fixtures.temporaryDirectory().appendingPathComponent("model")
            try FileManager.default.copyItem(at: source, to: target)
            return target
        }
        let packed = ["model.safetensors", "expert_cache/cluster_manifest.json"]
        let reference = try copy()
        let started = Date()
        let pack = try chronos(["pack", reference.path, "--strip-experts"])
        XCTAssertEqual(pack.status, 0, pack.output)
        let duration = Date().timeIntervalSince(started)
        let expected = try contents(reference, packed)

        // Three kills at seeded moments, and one as soon as the partial cache folder appears,
        // which lands mid-pack whatever the machine's speed.
        var generator = SplitMix64(seed: 11)
        for trial in 0..<4 {
            let directory = try copy()
            let arguments = ["pack", directory.path, "--strip-experts"]
            let moment: String
            if trial < 3 {
                let delay = duration * generator.nextUnit()
                moment = "after \(delay) s"
                _ = try kill(arguments, after: delay)
            } else {
                moment = "when the partial cache appeared"
                let appeared = {
                    ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).contains { $0.contains(".partial-") }
                }
                XCTAssertTrue(try kill(arguments, when: appeared), "killed before it finished")
            }
            // Whatever the kill left either generates or names `chronos pack` as the remedy.
            let generate = try chronos([
                "generate", "--model", directory.path, "--prompt-ids", "1,2,3", "--max-tokens", "2",
                "--temperature", "0", "--expert-budget", "0.5", "--print-ids"
            ])
            XCTAssertTrue(generate.status == 0 || generate.output.contains("chronos pack"), "killed \(moment): \(generate.output)")
            let rerun = try chronos(arguments)
            XCTAssertEqual(rerun.status, 0, "killed \(moment): \(rerun.output)")
            XCTAssertEqual(try contents(directory, packed), expected, "killed \(moment)")
        }
    }
}
