#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The real disk: the cluster files opened once and read with `pread`, retried on `EINTR`
/// and continued after partial reads until the range is read or the file ends.
public final class FileExpertDisk: ExpertDisk, @unchecked Sendable {
    /// The files, by index.
    public let paths: [String]
    private let descriptors: [Int32]

    /// Opens every file of `paths` read-only (`open` with `O_RDONLY | O_CLOEXEC`).
    public init(paths: [String]) throws {
        var descriptors: [Int32] = []
        for path in paths {
            var descriptor: Int32
            repeat { descriptor = open(path, O_RDONLY | O_CLOEXEC) } while descriptor < 0 && errno == EINTR
            guard descriptor >= 0 else {
                let error = errno
                for opened in descriptors { close(opened) }
                throw ExpertCacheError.io(path: path, call: "open", errno: error)
            }
            descriptors.append(descriptor)
        }
        self.paths = paths
        self.descriptors = descriptors
    }

    /// Opens the cluster files of `cache`.
    public convenience init(cache: ExpertCache) throws {
        try self.init(paths: cache.fileURLs.map(\.path))
    }

    deinit {
        for descriptor in descriptors { close(descriptor) }
    }

    /// `pread` of the range into `buffer`.
    public func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        let descriptor = descriptors[request.file]
        var done = 0
        while done < request.length {
            let n = pread(descriptor, buffer + done, request.length - done, off_t(request.offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ExpertCacheError.io(path: paths[request.file], call: "pread", errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Drops the files' pages from the OS page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), so
    /// the next reads come from the device: a cold-cache run without root. A no-op where the
    /// call does not exist.
    public func dropPageCache() {
        #if os(Linux)
            for descriptor in descriptors { _ = posix_fadvise(descriptor, 0, 0, Int32(POSIX_FADV_DONTNEED)) }
        #endif
    }
}
