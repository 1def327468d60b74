import ChronosModel

/// One read an expert store asks of a disk: the whole byte range of one expert in its
/// cluster file.
public struct DiskRead: Sendable, Equatable {
    /// Index of the cluster file.
    public let file: Int
    /// Its path, for errors.
    public let path: String
    /// First byte of the expert in the file.
    public let offset: Int
    /// Bytes to read.
    public let length: Int
    /// The expert being read.
    public let expert: ExpertKey

    /// A read of `length` bytes at `offset` of file `file`.
    public init(file: Int, path: String, offset: Int, length: Int, expert: ExpertKey) {
        self.file = file
        self.path = path
        self.offset = offset
        self.length = length
        self.expert = expert
    }
}

/// Where expert bytes come from: the seam between the expert store and the storage device.
///
/// `FileExpertDisk` reads the cluster files with `pread`; `SimulatedDisk` wraps any disk with a
/// latency and a bandwidth cap for reproducible experiments; `FaultInjectingDisk` wraps any disk
/// and makes chosen reads fail.
public protocol ExpertDisk: Sendable {
    /// Reads `request.length` bytes into `buffer` (which holds at least that many); returns the
    /// bytes read, fewer only when the file ends early. Throws on an IO error.
    func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int

    /// Accounts for `bytes` that were read by other means (a page fault on a memory map), as
    /// if they had been read from this disk; a real disk has nothing to add.
    func charge(bytes: Int, file: Int)
}

extension ExpertDisk {
    /// Nothing to account: the bytes were really read.
    public func charge(bytes: Int, file: Int) {}
}
