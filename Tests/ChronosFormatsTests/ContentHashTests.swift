import ChronosFormats
import XCTest

final class ContentHashTests: XCTestCase {
    /// Reference values from the xxHash library's XXH64.
    func testMatchesReferenceXXH64() {
        let cases: [([UInt8], UInt64, String)] = [
            ([], 0, "ef46db3751d8e999"), ([], 7, "95f0626f6f0a4409"),
            (Array("a".utf8), 0, "d24ec4f1a98c6e5b"), (Array("abc".utf8), 0, "44bc2cf5ad770999"),
            (Array("abc".utf8), 7, "9e755206156676d7"),
            (Array("0123456789abcdefghijklmnopqrstuvwxyz!".utf8), 0, "dde9d7f125de8f22"),
            (Array("0123456789abcdefghijklmnopqrstuvwxyz!".utf8), 7, "1f68c97951720f0e"),
            (Array((0..<768).map { UInt8($0 % 256) }), 0, "8e03c838c596036f"),
            (Array((0..<768).map { UInt8($0 % 256) }), 7, "b1e10f6c5294cd6b")
        ]
        for (bytes, seed, expected) in cases {
            XCTAssertEqual(ContentHash.hex(ContentHash.xxh64(bytes, seed: seed)), expected, "\(bytes.count) bytes, seed \(seed)")
        }
    }
}
