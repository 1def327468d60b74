import Foundation

/// The records of a JSON Lines file, plain or gzip-compressed (recognised by its magic
/// number), each line one JSON object. The file is read (and decompressed) whole: the
/// fine-tuning datasets are a few megabytes. Blank lines are passed over; anything else that
/// is not a JSON object is an error naming the file and the 1-based line.
public enum JSONLinesFile {
    /// Calls `body` with each line's number and object; an error `body` throws as
    /// `RecordProblem` becomes `JSONLinesError.malformedLine` for that line.
    public static func forEachObject(at url: URL, _ body: (_ line: Int, _ object: [String: Any]) throws -> Void) throws {
        var bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: url))
        } catch {
            throw JSONLinesError.inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
        if Gzip.isCompressed(bytes) {
            do {
                bytes = try Gzip.decompress(bytes)
            } catch {
                throw JSONLinesError.inaccessibleFile(file: url.path, reason: error.description)
            }
        }
        var line = 0, start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            line += 1
            defer { start = end + 1 }
            let text = bytes[start..<end]
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(text), options: [.fragmentsAllowed])
            } catch {
                throw JSONLinesError.malformedLine(file: url.path, line: line, reason: "not valid JSON")
            }
            guard let fields = object as? [String: Any] else {
                throw JSONLinesError.malformedLine(file: url.path, line: line, reason: "not a JSON object")
            }
            do {
                try body(line, fields)
            } catch let problem as RecordProblem {
                throw JSONLinesError.malformedLine(file: url.path, line: line, reason: problem.reason)
            }
        }
    }
}

/// What is wrong with one record, before the file and line are known.
public struct RecordProblem: Error, Equatable {
    /// The explanation.
    public var reason: String

    /// A problem explained by `reason`.
    public init(_ reason: String) {
        self.reason = reason
    }
}
