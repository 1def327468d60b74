import ChronosFormats
import Foundation
import XCTest

/// Encoding speed on a real corpus, printed in MB/s. Runs only when `CHRONOS_TOKENIZER_CORPUS`
/// names a text file or a directory of `.txt` files, and means something only in a release build:
///
///     CHRONOS_TOKENIZER_CORPUS=../shared/data/austen swift test -c release --filter TokenizerThroughputTests
final class TokenizerThroughputTests: XCTestCase {
    func testEncodingThroughput() throws {
        guard let path = ProcessInfo.processInfo.environment["CHRONOS_TOKENIZER_CORPUS"] else {
            throw XCTSkip("set CHRONOS_TOKENIZER_CORPUS to a text file or a directory of .txt files")
        }
        let text = try corpus(at: URL(fileURLWithPath: path))
        let megabytes = Double(text.utf8.count) / 1_000_000
        for name in ["gpt2", "qwen2"] {
            let tokenizer = OracleTokenizers.load(name)
            let clock = ContinuousClock()
            var ids: [Int] = []
            let cold = clock.measure { ids = tokenizer.encode(text) }
            let warm = clock.measure { ids = tokenizer.encode(text) }
            var decoded = ""
            let decoding = try clock.measure { decoded = try tokenizer.decode(ids) }
            XCTAssertEqual(decoded, text)
            print(String(
                format: "%@: %.2f MB, %d tokens; encode %.1f MB/s first pass, %.1f MB/s with warm word cache; decode %.1f MB/s",
                name, megabytes, ids.count, megabytes / seconds(cold), megabytes / seconds(warm),
                megabytes / seconds(decoding)))
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func corpus(at url: URL) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
        }
        guard isDirectory.boolValue else { return try String(contentsOf: url, encoding: .utf8) }
        let files = try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "txt" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        return try files.map { try String(contentsOf: $0, encoding: .utf8) }.joined()
    }
}
