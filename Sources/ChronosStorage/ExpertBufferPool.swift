import Foundation

/// Reusable 64-byte-aligned buffers that expert reads land in, so that loading and evicting
/// experts token after token does not allocate and free large blocks each time.
///
/// A buffer goes back to the pool when the last reference to it (the tier that held it, or a
/// tensor viewing it while a layer computes) goes away; at most `maximumIdleBytes` are kept
/// idle, the rest freed.
public final class ExpertBufferPool: @unchecked Sendable {
    /// Most bytes kept idle for reuse.
    public let maximumIdleBytes: Int
    private let lock = NSLock()
    private var idle: [Int: [UnsafeMutableRawPointer]] = [:]
    private var idleBytes = 0

    /// A pool keeping at most `maximumIdleBytes` idle.
    public init(maximumIdleBytes: Int) {
        self.maximumIdleBytes = max(0, maximumIdleBytes)
    }

    deinit {
        for (_, blocks) in idle { for block in blocks { block.deallocate() } }
    }

    /// A buffer of exactly `capacity` bytes (contents undefined), reused when one is idle.
    public func acquire(capacity: Int) -> ExpertBuffer {
        let reused: UnsafeMutableRawPointer? = lock.withLock {
            guard let block = idle[capacity]?.popLast() else { return nil }
            idleBytes -= capacity
            return block
        }
        let base = reused ?? UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 64)
        return ExpertBuffer(base: base, capacity: capacity, pool: self)
    }

    /// Bytes idle in the pool now.
    public var idleByteCount: Int { lock.withLock { idleBytes } }

    /// Takes back a block whose buffer died; frees it when the pool is full.
    fileprivate func recycle(_ base: UnsafeMutableRawPointer, capacity: Int) {
        let kept = lock.withLock { () -> Bool in
            guard idleBytes + capacity <= maximumIdleBytes else { return false }
            idle[capacity, default: []].append(base)
            idleBytes += capacity
            return true
        }
        if !kept { base.deallocate() }
    }
}

/// One block of expert bytes from an `ExpertBufferPool`; tensors view it and keep it alive.
public final class ExpertBuffer: @unchecked Sendable {
    /// First byte (64-byte aligned).
    public let base: UnsafeMutableRawPointer
    /// Size in bytes.
    public let capacity: Int
    private let pool: ExpertBufferPool

    fileprivate init(base: UnsafeMutableRawPointer, capacity: Int, pool: ExpertBufferPool) {
        self.base = base
        self.capacity = capacity
        self.pool = pool
    }

    deinit { pool.recycle(base, capacity: capacity) }
}
