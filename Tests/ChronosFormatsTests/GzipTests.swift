import ChronosFormats
import Foundation
import XCTest

final class GzipTests: XCTestCase {
    func testGzipStoredFixedAndDynamicBlocksAndMembers() throws {
        func inflate(_ base64: String) throws -> String {
            String(decoding: try Gzip.decompress([UInt8](Data(base64Encoded: base64)!)), as: UTF8.self)
        }
        XCTAssertEqual(try inflate("H4sIAAAAAAAA/wETAOz/eyJ0ZXh0IjogInN0b3JlZCJ9CoHbIqATAAAA"), "{\"text\": \"stored\"}\n")
        XCTAssertEqual(try inflate("H4sIAAAAAAAC/0tMKkpMTkxJBFIKidjZXADXQJ9GJAAAAA=="), "abracadabra abracadabra abracadabra\n")
        XCTAssertEqual(try inflate("H4sIAAAAAAAA/8vPS+UCAJ+oF/gEAAAAH4sIAAAAAAAA/yspz+cCAHQIF5YEAAAA"), "one\ntwo\n")
        let dynamic = try inflate(
            "H4sIAAAAAAAC/1VRQQ7DIAz7Sr5GVyo4jEhtJsTvZxtabRIIERzbMbXZlq3nM1vzsJJ2S223w08Lt1IvlY7T37r0Ul/FtiFwT9cNipK5h22f4HMK0KiVm68JCqIhNRYJogAHeZCoudcoN5X2lKvxwz9w0gi00UybeCr5nGR/ZutSoE2eMZ3+wrxNcyHjaJiKMPQMCwnFQ6jrtlwOXjgW1UmKgyyPP3S44hVY1bzgGOOO3Q97fK1cZoDiwUprEnBITYGiTvVr/hZHUU1BODFfCGUqtNkBAAA="
        )
        XCTAssertEqual(dynamic.utf8.count, 473)
        XCTAssertTrue(dynamic.hasPrefix("in be were not had and for to his had from his which by not "))
        // A flipped byte in the data is caught by the CRC or the decoder.
        let fixed = [UInt8](Data(base64Encoded: "H4sIAAAAAAAC/0tMKkpMTkxJBFIKidjZXADXQJ9GJAAAAA==")!)
        var corrupt = fixed
        corrupt[14] ^= 0x10
        XCTAssertThrowsError(try Gzip.decompress(corrupt))
        XCTAssertThrowsError(try Gzip.decompress(Array(fixed.prefix(20)))) { XCTAssertEqual($0 as? GzipError, .truncated) }
        XCTAssertThrowsError(try Gzip.decompress(Array(fixed.dropLast()))) { XCTAssertEqual($0 as? GzipError, .truncated) }
    }
}
