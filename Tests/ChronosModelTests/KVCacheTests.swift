import ChronosModel
import ChronosTensor
import XCTest

final class KVCacheTests: XCTestCase {
    private func rows(_ first: Int, _ count: Int, width: Int) -> Tensor {
        Tensor(shape: [count, width], values: (0..<(count * width)).map { Float(first * width + $0) })
    }

    func testUpdatesAppendAcrossGrowthAndReturnEverythingHeld() {
        let cache = StandardKVCache(step: 2)
        var (keys, values) = cache.update(keys: rows(0, 3, width: 4), values: rows(100, 3, width: 2))
        XCTAssertEqual(cache.offset, 3)
        XCTAssertEqual(keys.shape, [3, 4])
        (keys, values) = cache.update(keys: rows(3, 1, width: 4), values: rows(103, 1, width: 2))
        (keys, values) = cache.update(keys: rows(4, 2, width: 4), values: rows(104, 2, width: 2))
        XCTAssertEqual(cache.offset, 6)
        XCTAssertEqual(keys.shape, [6, 4])
        XCTAssertEqual(values.shape, [6, 2])
        XCTAssertEqual(keys.floats, rows(0, 6, width: 4).floats)
        XCTAssertEqual(values.floats, rows(100, 6, width: 2).floats)
    }

    func testTrimForgetsTheLastPositions() {
        let cache = StandardKVCache(step: 4)
        _ = cache.update(keys: rows(0, 5, width: 3), values: rows(0, 5, width: 3))
        XCTAssertEqual(cache.trim(2), 2)
        XCTAssertEqual(cache.offset, 3)
        let (keys, _) = cache.update(keys: rows(9, 1, width: 3), values: rows(9, 1, width: 3))
        XCTAssertEqual(keys.floats, rows(0, 3, width: 3).floats + rows(9, 1, width: 3).floats)
        XCTAssertEqual(cache.trim(10), 4)
        XCTAssertEqual(cache.offset, 0)
    }

    func testModelCacheTrimsEveryLayerAndRejectsAnotherModelsShape() throws {
        let model = try OracleCase.llamaDense.load()
        let cache = model.makeCache()
        XCTAssertEqual(cache.layers.count, 2)
        _ = try model.forward([3, 4, 5], cache: cache)
        XCTAssertEqual(cache.offset, 3)
        XCTAssertEqual(cache.trim(1), 1)
        XCTAssertEqual(cache.layers.map(\.offset), [2, 2])
        XCTAssertEqual(try model.forward([], cache: cache).shape, [0, 256])
        XCTAssertEqual(cache.offset, 2)
        XCTAssertThrowsError(try model.forward([1], cache: ModelCache(layerCount: 3))) { error in
            XCTAssertEqual(error as? ModelError, .cacheMismatch(expectedLayers: 2, foundLayers: 3))
        }
    }
}
