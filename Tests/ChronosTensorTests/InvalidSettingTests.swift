import ChronosTensor
import XCTest

final class InvalidSettingTests: XCTestCase {
    func testAValueOutsideItsRangeIsNamedWithItsValueAndTheRange() {
        XCTAssertThrowsError(try InvalidSetting.check("staging_fraction", Double.nan, in: 0...1)) { error in
            XCTAssertEqual("\(error)", "staging_fraction nan is invalid: expected between 0.0 and 1.0")
        }
        XCTAssertThrowsError(try InvalidSetting.check("clip_norm", Float.infinity, in: .atLeast(0))) { error in
            XCTAssertEqual("\(error)", "clip_norm inf is invalid: expected at least 0.0")
        }
        XCTAssertNoThrow(try InvalidSetting.check("io_threads", 4, in: 1...64))
        XCTAssertNoThrow(try InvalidSetting.check("lookahead_experts", Int?.none, in: 1...64))
        let renamed = InvalidSetting(name: "top_p", value: "2.0", expected: "between 0 and 1").renamed { $0 == "top_p" ? "--top-p" : nil }
        XCTAssertEqual(renamed.name, "--top-p")
        XCTAssertEqual(InvalidSetting.optionName("repetition_penalty"), "--repetition-penalty")
    }

    func testEnvironmentVariablesAreParsedOrRefusedByName() throws {
        XCTAssertNil(try ThreadPool.environmentThreadCount([:]))
        XCTAssertEqual(try ThreadPool.environmentThreadCount(["CHRONOS_THREADS": "1"]), 1)
        for text in ["100000", "0", "-2", "abc", "1e9"] {
            XCTAssertThrowsError(try ThreadPool.environmentThreadCount(["CHRONOS_THREADS": text]), text) { error in
                XCTAssertEqual((error as? InvalidSetting)?.name, "CHRONOS_THREADS")
            }
        }
        XCTAssertEqual(try Backends.environmentBackend(["CHRONOS_BACKEND": "swift"])?.name, "swift")
        XCTAssertThrowsError(try Backends.environmentBackend(["CHRONOS_BACKEND": "bogus"])) { error in
            XCTAssertTrue("\(error)".contains("CHRONOS_BACKEND 'bogus'") && "\(error)".contains("swift"), "\(error)")
        }
    }
}
