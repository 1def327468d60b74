import ChronosFormats
import Foundation
import XCTest

final class BytePairEncodingTests: XCTestCase {
    /// A GPT-2-style tokenizer with the given vocabulary and merges (bytes it lacks are dropped).
    private func tokenizer(vocabulary: [String: Int], merges: [[String]], ignoreMerges: Bool = false) throws -> Tokenizer {
        let model: [String: Any] = ["type": "BPE", "vocab": vocabulary, "merges": merges, "ignore_merges": ignoreMerges]
        let file: [String: Any] = [
            "added_tokens": [], "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"], "model": model
        ]
        return try Tokenizer(data: JSONSerialization.data(withJSONObject: file))
    }

    func testLowestRankMergesFirstAndLeftmostOnTies() throws {
        let tokenizer = try self.tokenizer(
            vocabulary: ["a": 0, "b": 1, "aa": 2, "ab": 3, "aab": 4],
            merges: [["a", "b"], ["a", "a"], ["aa", "b"]])
        // "aab": a+b ranks first, leaving a, ab (aa+b never forms).
        XCTAssertEqual(tokenizer.encode("aab"), [0, 3])
        // "aaa": the two a+a pairs tie; the left one merges.
        XCTAssertEqual(tokenizer.encode("aaa"), [2, 0])
        XCTAssertEqual(tokenizer.encode("aaaa"), [2, 2])
    }

    func testIgnoreMergesTakesWholeWordsFromTheVocabulary() throws {
        let vocabulary = ["a": 0, "b": 1, "ab": 2, "abab": 3]
        let merges = [["a", "b"]]
        XCTAssertEqual(try tokenizer(vocabulary: vocabulary, merges: merges).encode("abab"), [2, 2])
        XCTAssertEqual(try tokenizer(vocabulary: vocabulary, merges: merges, ignoreMerges: true).encode("abab"), [3])
    }

    func testLongWordsMergeLikeShortOnes() throws {
        let tokenizer = try TinyTokenizer.make()
        // One 300-byte word, beyond the word cache: h+e everywhere, t+he nowhere.
        let word = String(repeating: "the", count: 100)
        XCTAssertEqual(tokenizer.encode(word), [116, 257].repeated(100))
        XCTAssertEqual(tokenizer.encode(" " + word), [258] + [116, 257].repeated(99))
    }

    func testConcurrentEncodingAgrees() async {
        let tokenizer = OracleTokenizers.qwen2
        let texts = (0..<8).map { "Thread \($0): the quick brown fox \($0 * 7919) jumps; 你好 😀 " + String(repeating: "ab", count: $0) }
        let expected = texts.map { tokenizer.encode($0) }
        let results = await withTaskGroup(of: (Int, [Int]).self) { group in
            for index in 0..<texts.count * 50 {
                group.addTask { (index, tokenizer.encode(texts[index % texts.count])) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.count, texts.count * 50)
        for (index, ids) in results { XCTAssertEqual(ids, expected[index % texts.count]) }
    }
}

extension Array {
    /// The array's elements `count` times over.
    fileprivate func repeated(_ count: Int) -> [Element] {
        Array(repeatElement(self, count: count).joined())
    }
}
