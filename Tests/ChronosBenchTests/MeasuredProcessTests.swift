import ChronosBench
import Foundation
import XCTest

/// A child process's exit status, output and peak memory, as `chronos compare` measures a decode.
final class MeasuredProcessTests: XCTestCase {
    func testStatusAndOutputOfTheChild() throws {
        let child = try MeasuredProcess.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "echo out; echo err >&2; exit 3"])
        XCTAssertEqual(child.status, 3)
        XCTAssertEqual(child.output, "out\nerr\n")
        XCTAssertGreaterThan(child.seconds, 0)
    }

    /// A small child of a parent holding 256 MiB reports its own peak, not the parent's.
    func testThePeakIsTheChildsOwn() throws {
        var held = [UInt8](repeating: 1, count: 256 << 20)
        for index in stride(from: 0, to: held.count, by: 4096) { held[index] = UInt8(index & 0x7f) }
        let child = try MeasuredProcess.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "sleep 0.1"])
        XCTAssertEqual(child.status, 0)
        XCTAssertGreaterThan(child.peakResidentBytes, 0)
        XCTAssertLessThan(child.peakResidentBytes, 64 << 20)
        XCTAssertEqual(held[4096], 0)
    }

    func testAMissingExecutableIsAnError() {
        XCTAssertThrowsError(try MeasuredProcess.run(URL(fileURLWithPath: "/nonexistent/chronos"), arguments: []))
    }
}
