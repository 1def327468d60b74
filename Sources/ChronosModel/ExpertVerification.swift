import ChronosFormats
import Foundation

/// The bytes of an expert that do not hash to the value recorded when it was packed.
public struct CorruptExpertError: Error, CustomStringConvertible, Equatable {
    /// The file the expert's bytes come from.
    public var file: String
    /// The expert.
    public var expert: ExpertKey
    /// The recorded and the found XXH64, as hex.
    public var expected: String, found: String

    /// One line naming the file, the expert and what to do.
    public var description: String {
        "\(file): expert \(expert) hashes to \(found), the manifest records \(expected): the file is corrupted; restore it, or re-pack the model from its full checkpoint"
    }
}

/// Checks each expert's bytes against its recorded XXH64 the first time the expert is used,
/// for providers that hand out views of mapped files (which are read lazily, so cannot be
/// checked up front without reading every expert). The first mismatch is kept as the
/// provider's `failure`.
public final class ExpertVerification: @unchecked Sendable {
    /// Where an expert's bytes lie and what they must hash to.
    public struct Record: Sendable {
        /// The file, for messages.
        public var file: String
        /// The recorded XXH64.
        public var hash: UInt64
        /// The expert's whole byte range.
        public var length: Int

        /// A record of `length` bytes in `file` hashing to `hash`.
        public init(file: String, hash: UInt64, length: Int) {
            self.file = file
            self.hash = hash
            self.length = length
        }
    }

    private let records: [ExpertKey: Record]
    private let lock = NSLock()
    private var verified: Set<ExpertKey> = []
    private var firstFailure: CorruptExpertError?

    /// Verification against `records`; experts without a record are not checked.
    public init(records: [ExpertKey: Record]) {
        self.records = records
    }

    /// The first mismatch found, if any.
    public var failure: CorruptExpertError? { lock.withLock { firstFailure } }

    /// Whether `key`, whose range starts at `base`, may be used: true when it was verified
    /// before, has no record, or hashes to its record now; false (and `failure` set) otherwise.
    public func check(_ key: ExpertKey, base: UnsafeRawPointer) -> Bool {
        guard let record = records[key] else { return true }
        if lock.withLock({ verified.contains(key) }) { return true }
        // Hashing outside the lock: two threads may both hash a new expert, which is harmless.
        let found = ContentHash.xxh64(UnsafeRawBufferPointer(start: base, count: record.length))
        return lock.withLock {
            if found == record.hash {
                verified.insert(key)
                return true
            }
            if firstFailure == nil {
                firstFailure = CorruptExpertError(
                    file: record.file, expert: key, expected: ContentHash.hex(record.hash),
                    found: ContentHash.hex(found))
            }
            return false
        }
    }
}
