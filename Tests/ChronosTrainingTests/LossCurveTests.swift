import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosTraining

#if canImport(FoundationXML)
    import FoundationXML
#endif

final class LossCurveTests: XCTestCase {
    /// A resumed run's log repeats the steps after its snapshot, and a killed run may leave a
    /// torn last line: the curve keeps one point per step, the last logged, and draws the rest.
    func testTheCurveKeepsTheLastValueOfEachStepAndPassesOverATornLine() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = [
            #"{"step": 1, "loss": 9.0, "ce": 8.5, "lr": 0.001}"#, #"{"step": 2, "loss": 8.0, "ce": 7.5}"#,
            #"{"step": 2, "heldout_ce": 7.9}"#, #"{"step": 3, "loss": 7.5, "ce": 7.0}"#, #"{"step": 3, "lo"#,
            #"{"step": 3, "loss": 7.0, "ce": 6.5}"#, #"{"step": 4, "loss": 6.0, "ce": 5.5}"#
        ]
        try Data((log.joined(separator: "\n") + "\n").utf8).write(to: directory.appendingPathComponent("metrics.jsonl"))
        try LossCurve.write(runDirectory: directory, stage: .pretrain)
        let svg = try String(contentsOf: directory.appendingPathComponent(LossCurve.fileName), encoding: .utf8)
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        for name in ["training loss", "training cross-entropy", "held-out cross-entropy", "Training loss: pretrain", "loss (nats)"] {
            XCTAssertTrue(svg.contains(">\(name)</text>"), name)
        }
        let lines = svg.components(separatedBy: "<polyline points=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        XCTAssertEqual(lines.map { $0.split(separator: " ").count }, [4, 4], "one point per step of loss and of ce; one held-out point")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 9)
    }
}
