import Foundation

/// Text a command reads whole, from a file or from standard input, when it is too long for a
/// command-line argument or holds a byte that an argument cannot (NUL).
public enum TextInput {
    /// The whole file at `path` as UTF-8 text.
    public static func read(path: String) throws(TextInputError) -> String {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(source: path, reason: FileSystemError.reason(error))
        }
        defer { try? handle.close() }
        return try read(handle, source: path)
    }

    /// Standard input, read to its end, as UTF-8 text.
    public static func readStandardInput() throws(TextInputError) -> String {
        try read(FileHandle.standardInput, source: "standard input")
    }

    /// Everything left in `handle` (a file, or a pipe read until its writer closes it) as UTF-8
    /// text, every byte kept, NUL included; `source` names it in errors.
    public static func read(_ handle: FileHandle, source: String) throws(TextInputError) -> String {
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw .unreadable(source: source, reason: FileSystemError.reason(error))
        }
        guard let text = String(validating: data, as: UTF8.self) else { throw .notUTF8(source: source) }
        return text
    }
}

/// Why `TextInput` could not read a text.
public enum TextInputError: Error, Equatable, CustomStringConvertible {
    /// The file or stream could not be opened or read.
    case unreadable(source: String, reason: String)
    /// The bytes are not UTF-8 text.
    case notUTF8(source: String)

    /// The source and what went wrong.
    public var description: String {
        switch self {
        case .unreadable(let source, let reason): "\(source): \(reason)"
        case .notUTF8(let source): "\(source) is not UTF-8 text"
        }
    }
}
