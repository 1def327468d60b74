import ChronosFormats
import ChronosTestSupport
import Foundation
import XCTest

/// `ModelDirectory` names every file of a model directory once: each inside the directory,
/// no two alike.
final class ModelDirectoryTests: XCTestCase {
    func testEveryFileLiesInsideTheDirectoryUnderItsOwnName() {
        let directory = ModelDirectory(path: "/models/tiny")
        let files: [(URL, String)] = [
            (directory.config, ModelDirectory.Name.config), (directory.checkpoint, ModelDirectory.Name.checkpoint),
            (directory.checkpointIndex, ModelDirectory.Name.checkpointIndex), (directory.tokenizer, ModelDirectory.Name.tokenizer),
            (directory.ggufTokenizer, ModelDirectory.Name.ggufTokenizer), (directory.tokenizerConfig, ModelDirectory.Name.tokenizerConfig),
            (directory.generationConfig, ModelDirectory.Name.generationConfig),
            (directory.lookaheadHead, ModelDirectory.Name.lookaheadHead),
            (directory.intentClassifier, ModelDirectory.Name.intentClassifier),
            (directory.exportedLookahead, ModelDirectory.Name.exportedLookahead),
            (directory.modelingModule, ModelDirectory.Name.modelingModule), (directory.expertCache, ModelDirectory.Name.expertCache)
        ]
        XCTAssertEqual(files.map(\.1), ModelDirectory.Name.all, "every name has its property")
        for (url, name) in files {
            XCTAssertEqual(url.deletingLastPathComponent().standardizedFileURL.path, directory.url.standardizedFileURL.path, name)
            XCTAssertEqual(url.lastPathComponent, name)
            XCTAssertFalse(name.contains("/"), name)
        }
        XCTAssertEqual(Set(ModelDirectory.Name.all).count, ModelDirectory.Name.all.count, "the names are distinct")
        XCTAssertEqual(ModelDirectory(directory.url), directory)
        XCTAssertEqual(directory.path, "/models/tiny")
    }

    func testTokenizerIsReadWhenPresent() throws {
        let empty = ModelDirectory(try Fixtures.temporaryDirectory())
        XCTAssertFalse(empty.hasConfig)
        XCTAssertNil(try empty.loadTokenizer())
        let fixture = ModelDirectory(Fixtures.url("tokenizers/gpt2"))
        XCTAssertTrue(fixture.hasTokenizer)
        XCTAssertGreaterThan(try XCTUnwrap(fixture.loadTokenizer()).vocabularySize, 0)
    }
}
