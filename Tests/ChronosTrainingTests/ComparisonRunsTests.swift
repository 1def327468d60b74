import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

/// A comparison's run directory is created with a record of its settings, continued only
/// under the same settings, and never taken over from runs it did not record.
final class ComparisonRunsTests: XCTestCase {
    func testTheSameSettingsContinueAndOthersAreRefusedNamingTheFirstDifference() throws {
        let root = try Fixtures.temporaryDirectory()
        let directory = root.appendingPathComponent("runs")
        let settings = ["steps": "100", "data": "train.jsonl"]
        XCTAssertFalse(try ComparisonRuns(directory: directory, settings: settings).continuing)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent(ComparisonRuns.recordName).path))
        XCTAssertTrue(try ComparisonRuns(directory: directory, settings: settings).continuing)
        XCTAssertThrowsError(try ComparisonRuns(directory: directory, settings: ["steps": "200", "data": "train.jsonl"])) { error in
            XCTAssertEqual(
                (error as? ComparisonRunsError)?.reason,
                "holds a comparison with other settings (steps: 100 there, 200 now); repeat its options to continue it, or name another --runs directory"
            )
        }
        XCTAssertThrowsError(try ComparisonRuns(directory: directory, settings: settings.merging(["seed": "1"]) { a, _ in a })) { error in
            XCTAssertTrue((error as? ComparisonRunsError)?.reason.contains("(seed: none there, 1 now)") ?? false, "\(error)")
        }

        let unrecorded = root.appendingPathComponent("unrecorded")
        try FileManager.default.createDirectory(at: unrecorded.appendingPathComponent("chronos"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try ComparisonRuns(directory: unrecorded, settings: settings)) { error in
            XCTAssertTrue((error as? ComparisonRunsError)?.reason.hasSuffix("holds an earlier run; name another --runs directory") ?? false)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: unrecorded.appendingPathComponent(ComparisonRuns.recordName).path))

        try Data("[1, 2]".utf8).write(to: directory.appendingPathComponent(ComparisonRuns.recordName))
        XCTAssertThrowsError(try ComparisonRuns(directory: directory, settings: settings))
    }
}
