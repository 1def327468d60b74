import ChronosTensor
import Foundation
import XCTest

final class TensorTests: XCTestCase {
    func testHalfPrecisionConversions() {
        XCTAssertEqual(HalfPrecision.bf16(from: 1), 0x3F80)
        XCTAssertEqual(HalfPrecision.float(fromBF16: 0xC040), -3)
        // Round to nearest even: 1 + 2^-8 is halfway between two bf16 values.
        XCTAssertEqual(HalfPrecision.bf16(from: 1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(HalfPrecision.bf16(from: 1 + 0x1p-8 + 0x1p-12), 0x3F81)
        XCTAssertTrue(HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: .nan)).isNaN)
        XCTAssertEqual(HalfPrecision.f16(from: 1), 0x3C00)
        XCTAssertEqual(HalfPrecision.float(fromF16: 0xC000), -2)
        XCTAssertEqual(HalfPrecision.float(fromF16: HalfPrecision.f16(from: 65520)), .infinity)
    }

    func testViewsShareStorageAndMaterialise() {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let tt = t.transposed()
        XCTAssertEqual(tt.shape, [3, 2])
        XCTAssertFalse(tt.isContiguous)
        XCTAssertEqual(tt.floats, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(tt[2, 1], 6)
        XCTAssertTrue(tt.contiguous().isContiguous)
        XCTAssertEqual(tt.contiguous().floats, [1, 4, 2, 5, 3, 6])
        let column = t.slice(1..<3, axis: 1)
        XCTAssertEqual(column.floats, [2, 3, 5, 6])
        t.floatPointer[1] = 20
        XCTAssertEqual(column[0, 0], 20, "a view sees writes to its storage")
        XCTAssertEqual(t.copy().floats, t.floats)
        XCTAssertEqual(t.reshaped([3, 2]).shape, [3, 2])
    }

    func testDtypeConversionRoundTrips() {
        let values: [Float] = [0, 1, -2.5, 1024, 0.1]
        let bf = Tensor(shape: [5], values: values, dtype: .bf16)
        XCTAssertEqual(bf.byteCount, 10)
        XCTAssertEqual(bf.floats.prefix(4), [0, 1, -2.5, 1024])
        XCTAssertEqual(bf.floats[4], 0.1, accuracy: 1e-3)
        let half = bf.converted(to: .f16).converted(to: .f32)
        XCTAssertEqual(half.floats.prefix(4), [0, 1, -2.5, 1024])
        let ints = Tensor(shape: [3], values: [1, -7, 300], dtype: .i64)
        XCTAssertEqual(ints.integers, [1, -7, 300])
    }

    func testThreadPoolRunsEveryTaskOnceWhetherWorkersAreAwakeOrAsleep() {
        let pool = ThreadPool(threadCount: 3)
        var hits = [Int](repeating: 0, count: 4 * 600)
        hits.withUnsafeMutableBufferPointer { h in
            let base = h.baseAddress!
            for round in 0..<600 {
                // Now and then a pause longer than the workers' spin, so that some jobs start with
                // them asleep and are finished before they join.
                if round % 50 == 49 { usleep(2000) }
                pool.parallelFor(4) { task in base[round * 4 + task] += 1 }
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: 4 * 600))
    }

    func testThreadPoolRunsEveryTaskOnceAndNests() {
        let pool = ThreadPool(threadCount: 3)
        for count in [0, 1, 2, 5, 1000] {
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                pool.parallelFor(count) { task in
                    base[task] += 1
                    pool.parallelFor(2) { _ in }  // nested calls run serially, never deadlock
                }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: count))
        }
        var covered = [Int](repeating: 0, count: 103)
        covered.withUnsafeMutableBufferPointer { c in
            let base = c.baseAddress!
            pool.parallelChunks(103, minChunk: 10) { range in for i in range { base[i] += 1 } }
        }
        XCTAssertEqual(covered, [Int](repeating: 1, count: 103))
    }

    func testBackendSelection() throws {
        XCTAssertTrue(Backends.statuses.contains { $0.name == "swift" && $0.isAvailable })
        XCTAssertThrowsError(try Backends.backend(named: "cuda"))
        XCTAssertEqual(try Backends.backend(named: "swift").name, "swift")
        #if !canImport(Accelerate)
            XCTAssertThrowsError(try Backends.backend(named: "accelerate")) { error in
                XCTAssertTrue("\(error)".contains("Apple"))
            }
        #endif
    }
}
