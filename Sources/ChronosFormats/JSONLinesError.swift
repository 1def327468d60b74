/// Why a JSON Lines file could not be read.
public enum JSONLinesError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened, read or decompressed.
    case inaccessibleFile(file: String, reason: String)
    /// A line is not a record of the expected shape; `line` counts from 1.
    case malformedLine(file: String, line: Int, reason: String)
    /// The file holds no records.
    case empty(file: String)

    /// A one-line explanation that names the file and line at fault.
    public var description: String {
        switch self {
        case .inaccessibleFile(let file, let reason): "\(file): cannot read file: \(reason)"
        case .malformedLine(let file, let line, let reason): "\(file):\(line): malformed line: \(reason)"
        case .empty(let file): "\(file): no records"
        }
    }
}
