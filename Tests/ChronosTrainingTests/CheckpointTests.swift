import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import XCTest

@testable import ChronosTraining

final class CheckpointTests: XCTestCase {
    struct Failure: Error {}

    func trainedOptimizer() -> (AdamW, Tensor) {
        let w = Tensor(shape: [3], values: [1, 2, 3]).requiringGradient()
        let optimizer = AdamW()
        for _ in 0..<2 {
            w.zeroGradient()
            Autograd.recording { Autograd.backward((w * w).sum()) }
            optimizer.update([("w", w)], learningRate: 0.1)
        }
        return (optimizer, w)
    }

    func writeModel(_ w: Tensor) -> (URL) throws -> Void {
        { dir in try SafetensorsWriter.write([("w", w)], to: dir.appendingPathComponent("model.safetensors")) }
    }

    func testSaveThenRestoreGivesTheSameStateAndMoments() throws {
        let run = try Fixtures.temporaryDirectory()
        let (optimizer, w) = trainedOptimizer()
        let state = TrainingState(step: 2, batchesSeen: 16, randomState: 0xDEAD_BEEF, tokensSeen: 4096, settings: ["lr": "0.1"])
        let reference = Tensor(shape: [2], values: [7, 8])
        try Checkpoint.save(runDirectory: run, state: state, optimizer: optimizer, frozen: ["router": reference], writeModel: writeModel(w))
        let snapshot = try XCTUnwrap(Checkpoint.latest(in: run))
        XCTAssertEqual(snapshot.lastPathComponent, "step-0000002")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("model.safetensors").path))
        let restored = AdamW()
        let (restoredState, frozen) = try Checkpoint.restore(snapshot: snapshot, into: restored)
        XCTAssertEqual(restoredState, state)
        XCTAssertEqual(frozen["router"]?.floats, [7, 8])
        XCTAssertEqual(restored.step, 2)
        XCTAssertEqual(restored.moments["w"]?.m.floats, optimizer.moments["w"]?.m.floats)
        XCTAssertEqual(restored.moments["w"]?.v.floats, optimizer.moments["w"]?.v.floats)
    }

    func testOnlyTheNewestSnapshotsAreKeptAndAFailedSaveChangesNothing() throws {
        let run = try Fixtures.temporaryDirectory()
        let (optimizer, w) = trainedOptimizer()
        for step in 1...3 {
            let state = TrainingState(step: step, batchesSeen: step, randomState: 1, tokensSeen: 0, settings: [:])
            try Checkpoint.save(runDirectory: run, state: state, optimizer: optimizer, writeModel: writeModel(w))
        }
        let checkpoints = run.appendingPathComponent("checkpoints")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.sorted(),
            ["step-0000002", "step-0000003"])
        let state = TrainingState(step: 4, batchesSeen: 4, randomState: 1, tokensSeen: 0, settings: [:])
        XCTAssertThrowsError(try Checkpoint.save(runDirectory: run, state: state, optimizer: optimizer) { _ in throw Failure() })
        XCTAssertEqual(try Checkpoint.latest(in: run)?.lastPathComponent, "step-0000003", "a failed save leaves the last good snapshot")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).contains { $0.hasSuffix(".tmp") })
    }

    func testMomentsThatDoNotFitTheModelAndIntegerFrozenTensorsAreRefused() throws {
        let (optimizer, _) = trainedOptimizer()
        let state = TrainingState(step: 2, batchesSeen: 2, randomState: 1, tokensSeen: 0, settings: [:])
        // The moments of w are [3]; the snapshot's model holds a w of [4].
        let wider = try Fixtures.temporaryDirectory()
        try Checkpoint.save(
            runDirectory: wider, state: state, optimizer: optimizer,
            writeModel: writeModel(Tensor(shape: [4], values: [1, 2, 3, 4])))
        XCTAssertThrowsError(try Checkpoint.restore(snapshot: XCTUnwrap(Checkpoint.latest(in: wider)), into: AdamW())) { error in
            XCTAssertTrue("\(error)".contains("moments of w must be f32 of shape [4]"), "\(error)")
        }
        let integer = try Fixtures.temporaryDirectory()
        try Checkpoint.save(
            runDirectory: integer, state: state, optimizer: optimizer,
            frozen: ["router.0": Tensor(shape: [2], values: [1, 2], dtype: .i32)],
            writeModel: writeModel(Tensor(shape: [3], values: [1, 2, 3])))
        XCTAssertThrowsError(try Checkpoint.restore(snapshot: XCTUnwrap(Checkpoint.latest(in: integer)), into: AdamW())) { error in
            XCTAssertTrue("\(error)".contains("frozen.router.0 is i32"), "\(error)")
        }
    }

    func testMissingStateIsAClearError() throws {
        let run = try Fixtures.temporaryDirectory()
        XCTAssertNil(try Checkpoint.latest(in: run))
        XCTAssertThrowsError(try Checkpoint.restore(snapshot: run, into: AdamW())) { error in
            XCTAssertTrue("\(error)".contains(Checkpoint.stateFileName))
        }
    }
}
