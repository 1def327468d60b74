import Foundation

/// Reads the documents of a JSON Lines file, one `{"text": …}` object a line, streaming: the
/// file is read in blocks and only the current line is held as a string.
///
/// Lines that are empty or all whitespace are passed over. Any other line that is not valid
/// JSON, not an object, or has no string `"text"` is an error naming the file and the 1-based
/// line number; with `skipBadLines` it is counted instead, and the first few are kept to report.
public final class JSONLTextReader {
    /// The file being read.
    public let url: URL
    /// Whether malformed lines are counted and passed over rather than thrown.
    public let skipBadLines: Bool
    /// The number of the last line read, 1-based; 0 before the first.
    public private(set) var lineNumber = 0
    /// How many malformed lines were passed over.
    public private(set) var skippedLineCount = 0
    /// The first `reportedSkipLimit` malformed lines passed over, as the errors they would have raised.
    public private(set) var skippedLines: [JSONLinesError] = []
    /// How many passed-over lines `skippedLines` keeps.
    public static let reportedSkipLimit = 20

    private static let blockSize = 1 << 20
    private let handle: FileHandle
    /// Bytes read but not yet returned start at `start`; no newline lies in `start..<scanned`.
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var reachedEnd = false

    /// Opens `url` for reading.
    public init(url: URL, skipBadLines: Bool = false) throws(JSONLinesError) {
        self.url = url
        self.skipBadLines = skipBadLines
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
    }

    deinit { try? handle.close() }

    /// The text of the next document, or nil at the end of the file.
    public func next() throws(JSONLinesError) -> String? {
        while let line = try nextLine() {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            switch Self.text(of: line) {
            case .success(let text):
                return text
            case .failure(let problem):
                let error = JSONLinesError.malformedLine(file: url.path, line: lineNumber, reason: problem.reason)
                guard skipBadLines else { throw error }
                skippedLineCount += 1
                if skippedLines.count < Self.reportedSkipLimit { skippedLines.append(error) }
            }
        }
        return nil
    }

    /// What is wrong with a line.
    private struct LineProblem: Error {
        let reason: String
    }

    /// The `"text"` string of one line's JSON object.
    private static func text(of line: ArraySlice<UInt8>) -> Result<String, LineProblem> {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
        } catch {
            return .failure(LineProblem(reason: "not valid JSON"))
        }
        guard let fields = object as? [String: Any] else { return .failure(LineProblem(reason: "not a JSON object")) }
        guard let text = fields["text"] else { return .failure(LineProblem(reason: "no \"text\" field")) }
        guard let string = text as? String else { return .failure(LineProblem(reason: "\"text\" is not a string")) }
        return .success(string)
    }

    /// The bytes of the next line without its `\n` (a final line may lack one), or nil at the end.
    private func nextLine() throws(JSONLinesError) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                let line = buffer[start..<newline]
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            if reachedEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                return line
            }
            buffer.removeSubrange(0..<start)
            scanned -= start
            start = 0
            let block: Data?
            do {
                block = try handle.read(upToCount: Self.blockSize)
            } catch {
                throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
            }
            if let block, !block.isEmpty { buffer += block } else { reachedEnd = true }
        }
    }
}
