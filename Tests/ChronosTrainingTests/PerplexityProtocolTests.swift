import ChronosModel
import ChronosTensor
import ChronosTestSupport
import ChronosTraining
import Foundation
import XCTest

/// `HeldOutScoring.chunkedCrossEntropy` against the protocol of llama.cpp's perplexity, worked out
/// token by token from the model's logits.
final class PerplexityProtocolTests: XCTestCase {
    func testChunksAreScoredOnTheirSecondHalfWithTheFirstTokenReplacedByBOS() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("gguf/tiny-moe-stacked.gguf"))
        let tokens = (0..<27).map { ($0 * 37 + 11) % 260 }
        let context = 8, bos = 259
        var nll = 0.0, counted = 0
        for chunk in 0..<3 {
            var ids = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            ids[0] = bos
            let logits = try model.forward(ids, cache: model.makeCache()).floats
            for position in (context / 2)..<(context - 1) {
                let row = logits[(position * 260)..<((position + 1) * 260)]
                let top = row.max()!
                let logSum = Double(top) + log(row.reduce(0.0) { $0 + exp(Double($1 - top)) })
                nll += logSum - Double(row[row.startIndex + ids[position + 1]])
                counted += 1
            }
        }
        let result = try HeldOutScoring.chunkedCrossEntropy(model, tokens: tokens, context: context, bos: bos)
        XCTAssertEqual(result.chunks, 3)
        XCTAssertEqual(result.tokens, counted)
        XCTAssertEqual(result.crossEntropy, nll / Double(counted), accuracy: 1e-5)

        let limited = try HeldOutScoring.chunkedCrossEntropy(model, tokens: tokens, context: context, chunks: 2)
        XCTAssertEqual(limited.chunks, 2)
        XCTAssertEqual(limited.tokens, 2 * (context - 1 - context / 2))
    }
}
