import ChronosTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole regular file mapped read-only into memory (`mmap` with `PROT_READ`, `MAP_PRIVATE`),
/// unmapped (`munmap`) when the last reference goes away.
///
/// Tensors read from the mapping keep this object alive through their storage. As with any
/// mapping, truncating the file on disk while it is mapped makes later reads fault.
final class MappedFile: @unchecked Sendable {
    /// The path the file was opened at.
    let path: String
    /// The file's bytes (empty, with no base address, for an empty file).
    let bytes: UnsafeRawBufferPointer

    /// Opens (`open`, retried on `EINTR`), sizes (`fstat`) and maps (`mmap`) the file at `path`.
    init(path: String) throws {
        self.path = path
        var descriptor: Int32
        repeat {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else { throw SafetensorsError.io(path: path, call: "open", errno: errno) }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafetensorsError.io(path: path, call: "fstat", errno: errno)
        }
        guard status.st_mode & S_IFMT == S_IFREG else { throw SafetensorsError.notARegularFile(path: path) }
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SafetensorsError.io(path: path, call: "mmap", errno: errno)
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}

extension MappedFile {
    /// A tensor of `dtype` and `shape` over the mapped bytes `byteRange` (inside the file),
    /// viewing them without a copy, or copying them where they are not aligned for the
    /// kernels' loads (possible in a file whose writer did not pad).
    func tensor(dtype: DType, shape: [Int], byteRange: Range<Int>) -> Tensor {
        let base = bytes.baseAddress!.advanced(by: byteRange.lowerBound)
        let storage: TensorStorage
        if Int(bitPattern: base) % dtype.alignment == 0 {
            storage = TensorStorage(borrowing: base, byteCount: byteRange.count, owner: self)
        } else {
            storage = TensorStorage(zeroedByteCount: byteRange.count)
            storage.base.copyMemory(from: base, byteCount: byteRange.count)
        }
        return Tensor(dtype: dtype, shape: shape, storage: storage)
    }
}
