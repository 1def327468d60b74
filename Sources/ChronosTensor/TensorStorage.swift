import Foundation

/// A block of bytes that tensors view: either owned (allocated here, freed on deinit) or
/// borrowed from another object (a memory-mapped file) that it keeps alive.
public final class TensorStorage: @unchecked Sendable {
    /// First byte of the block.
    public let base: UnsafeMutableRawPointer
    /// Size of the block in bytes.
    public let byteCount: Int
    private let owner: AnyObject?

    /// Allocates `byteCount` zeroed bytes, aligned for SIMD loads.
    public init(zeroedByteCount byteCount: Int) {
        let size = max(byteCount, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        self.byteCount = byteCount
        owner = nil
    }

    /// Allocates `byteCount` bytes, aligned for SIMD loads, without clearing them: for outputs
    /// a kernel overwrites entirely.
    init(uninitializedByteCount byteCount: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.byteCount = byteCount
        owner = nil
    }

    /// Views `byteCount` bytes at `base` that belong to `owner`, which stays alive as long as
    /// this storage does. The bytes are not copied.
    public init(borrowing base: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.base = UnsafeMutableRawPointer(mutating: base)
        self.byteCount = byteCount
        self.owner = owner
    }

    deinit {
        if owner == nil { base.deallocate() }
    }
}
