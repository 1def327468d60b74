import ChronosFormats
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// Builders for hand-made safetensors bytes and checks on how opening them fails.
enum SafetensorsBytes {
    /// A file whose 8-byte length field says `headerLength`, followed by `rest`.
    static func file(headerLength: UInt64, rest: [UInt8]) -> Data {
        var data = Data()
        withUnsafeBytes(of: headerLength.littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: rest)
        return data
    }

    /// A file with `header` as its JSON (length set to match) and `dataBytes` zero bytes after it.
    static func file(header: String, dataBytes: Int = 0) -> Data {
        let json = Array(header.utf8)
        return file(headerLength: UInt64(json.count), rest: json + [UInt8](repeating: 0, count: dataBytes))
    }

    /// Writes `data` to a fresh temporary file and returns its URL.
    static func write(_ data: Data, name: String = "model.safetensors") throws -> URL {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    /// Opens `data` as a safetensors file and returns the error opening it threw, with the
    /// path it was written to; fails the test if opening succeeds or throws something else.
    static func rejection(of data: Data, file: StaticString = #filePath, line: UInt = #line)
        throws -> (error: SafetensorsError, path: String)?
    {
        let url = try write(data)
        do {
            _ = try SafetensorsFile(url: url)
            XCTFail("expected opening to fail", file: file, line: line)
        } catch let error as SafetensorsError {
            XCTAssertTrue(error.description.contains(url.path), "\(error) does not name the file", file: file, line: line)
            return (error, url.path)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
        return nil
    }
}
