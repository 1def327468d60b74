import Foundation

/// A Foundation file-system error as one line: the path and what the operating system said
/// ("No such file or directory", "Is a directory", "Permission denied"), in place of
/// Foundation's "The operation could not be completed" with an error domain and code.
public struct FileSystemError: Error, CustomStringConvertible {
    /// The path and the reason.
    public let description: String

    /// The readable form of `error` when it is a Foundation or POSIX file error; nil otherwise.
    public init?(_ error: any Error) {
        let error = error as NSError
        guard error.domain == NSCocoaErrorDomain || error.domain == NSPOSIXErrorDomain else { return nil }
        let path = error.userInfo[NSFilePathErrorKey] as? String ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
        let reason = Self.reason(error)
        description = path.map { "\($0): \(reason)" } ?? reason
    }

    /// What went wrong in `error`, in the operating system's words where it has them.
    public static func reason(_ error: any Error) -> String {
        let error = error as NSError
        let underlying = (error.userInfo[NSUnderlyingErrorKey] as? any Error).map { $0 as NSError }
        guard let posix = [error, underlying].compactMap({ $0 }).first(where: { $0.domain == NSPOSIXErrorDomain }) else {
            return error.localizedDescription
        }
        return String(cString: strerror(Int32(posix.code)))
    }
}
