import ChronosRouting
import XCTest

/// A trace is cut by sequence into training and held-out parts.
final class ActivationTraceSplitTests: XCTestCase {
    /// `sequences` sequences of two tokens each, one MoE layer of 4 experts, top-1.
    private func trace(sequences: Int) -> ActivationTrace {
        let tokens = (0..<sequences).flatMap { sequence in
            (0..<2).map { position in
                ActivationTrace.Token(
                    sequence: sequence, position: position, id: sequence * 2 + position,
                    experts: [[(sequence + position) % 4]], probabilities: [[1]])
            }
        }
        return ActivationTrace(
            layers: [.init(layer: 0, experts: 4, expertBytes: 64)], expertsPerToken: 1, hiddenSize: 0,
            sequenceCount: sequences, tokens: tokens)
    }

    func testHoldsOutTheLastTenthOfSequences() throws {
        // 20 sequences: ⌊20 / 10⌋ = 2 held out, sequences 18 and 19.
        let whole = trace(sequences: 20)
        let (training, heldOut) = try XCTUnwrap(whole.splitHoldingOutLastTenth())
        XCTAssertEqual(Set(training.tokens.map(\.sequence)), Set(0..<18))
        XCTAssertEqual(Set(heldOut.tokens.map(\.sequence)), [18, 19])
        XCTAssertEqual(training.tokens + heldOut.tokens, whole.tokens, "every record lands in one part, in order")
        XCTAssertEqual(heldOut.layers, whole.layers)
        XCTAssertEqual(heldOut.sequenceCount, 20, "sequence indices are kept, so the count is too")
    }

    func testHoldsOutAtLeastOneSequence() throws {
        // 5 sequences: ⌊5 / 10⌋ = 0, so one is held out all the same.
        let (training, heldOut) = try XCTUnwrap(trace(sequences: 5).splitHoldingOutLastTenth())
        XCTAssertEqual(Set(training.tokens.map(\.sequence)), Set(0..<4))
        XCTAssertEqual(heldOut.tokens.map(\.sequence), [4, 4])
    }

    func testASingleSequenceCannotBeSplit() {
        XCTAssertNil(trace(sequences: 1).splitHoldingOutLastTenth())
        XCTAssertNil(trace(sequences: 0).splitHoldingOutLastTenth())
    }
}
