import ChronosModel
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fault to inject into chosen reads, to check that decoding survives storage errors.
public struct InjectedFault: Sendable, Equatable, CustomStringConvertible {
    /// What goes wrong.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// The read fails with `EIO`.
        case ioError = "io-error"
        /// The read returns only half of the bytes.
        case shortRead = "short-read"
        /// The read returns every byte, some of them flipped (caught by the expert's hash).
        case corruption = "corrupt"
    }

    /// Which reads it strikes.
    public enum Target: Sendable, Equatable {
        /// The n-th read of the disk, counting from 1.
        case read(Int)
        /// Reads of this expert.
        case expert(ExpertKey)
    }

    /// What goes wrong.
    public var kind: Kind
    /// Which reads it strikes.
    public var target: Target
    /// How many matching reads it strikes, one after another (1: a transient fault that a retry
    /// survives; more than the retries: the expert falls back).
    public var count: Int

    /// A fault of `kind` on `target`, `count` times.
    public init(_ kind: Kind, on target: Target, count: Int = 1) {
        self.kind = kind
        self.target = target
        self.count = max(1, count)
    }

    /// Parses `KIND:N` (the N-th read) or `KIND:L<layer>/E<expert>` (that expert's reads), with
    /// an optional `xCOUNT`; KIND is `io-error`, `short-read` or `corrupt`. E.g. `corrupt:L0/E1x3`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let kind = Kind(rawValue: parts[0]) else { return nil }
        var target = parts[1], count = 1
        if let x = target.lastIndex(of: "x"), let n = Int(target[target.index(after: x)...]) {
            count = n
            target = String(target[..<x])
        }
        if let n = Int(target), n > 0 {
            self.init(kind, on: .read(n), count: count)
            return
        }
        let fields = target.split(separator: "/")
        guard fields.count == 2, fields[0].hasPrefix("L"), fields[1].hasPrefix("E"),
            let layer = Int(fields[0].dropFirst()), let expert = Int(fields[1].dropFirst())
        else { return nil }
        self.init(kind, on: .expert(ExpertKey(layer: layer, expert: expert)), count: count)
    }

    /// The form `init(parsing:)` reads.
    public var description: String {
        let target =
            switch self.target {
            case .read(let n): "\(n)"
            case .expert(let key): key.description
            }
        return "\(kind.rawValue):\(target)\(count > 1 ? "x\(count)" : "")"
    }
}

/// A disk that makes chosen reads of the disk it wraps fail (see `InjectedFault`), and counts
/// the faults it injected.
public final class FaultInjectingDisk: ExpertDisk, @unchecked Sendable {
    /// The disk that supplies the bytes.
    public let base: any ExpertDisk
    private let lock = NSLock()
    private var remaining: [InjectedFault]
    private var reads = 0
    private var injected: [InjectedFault.Kind: Int] = [:]

    /// `base` with `faults` injected.
    public init(wrapping base: any ExpertDisk, faults: [InjectedFault]) {
        self.base = base
        remaining = faults
    }

    /// Faults injected so far, by kind.
    public var injectedCounts: [InjectedFault.Kind: Int] { lock.withLock { injected } }

    /// Reads through `base` unless a fault strikes this read.
    public func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        let fault: InjectedFault.Kind? = lock.withLock {
            reads += 1
            guard
                let index = remaining.firstIndex(where: { fault in
                    switch fault.target {
                    case .read(let n): n == reads
                    case .expert(let key): key == request.expert
                    }
                })
            else { return nil }
            let kind = remaining[index].kind
            remaining[index].count -= 1
            // A read-numbered fault that strikes several times strikes the reads that follow.
            if remaining[index].count == 0 {
                remaining.remove(at: index)
            } else if case .read = remaining[index].target {
                remaining[index].target = .read(reads + 1)
            }
            injected[kind, default: 0] += 1
            return kind
        }
        switch fault {
        case nil:
            return try base.read(request, into: buffer)
        case .ioError:
            throw ExpertCacheError.io(path: request.path, call: "pread (injected fault)", errno: EIO)
        case .shortRead:
            let count = try base.read(request, into: buffer)
            return min(count, request.length / 2)
        case .corruption:
            let count = try base.read(request, into: buffer)
            let bytes = buffer.assumingMemoryBound(to: UInt8.self)
            for i in stride(from: 0, to: count, by: max(1, count / 7)) { bytes[i] ^= 0xA5 }
            return count
        }
    }

    /// Charges through `base`.
    public func charge(bytes: Int, file: Int) { base.charge(bytes: bytes, file: file) }
}
