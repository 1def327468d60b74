import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The `mmap` baseline (what llama.cpp does): experts are views of memory maps of the cluster
/// files, and the OS page cache decides what stays in memory; nothing is prefetched.
///
/// On a real disk a need is a hit when every page of the expert is resident (`mincore`), and
/// the time spent faulting its pages in (touching one byte per page) is the stall. With a
/// simulated disk, the page cache is modelled as an LRU of `pageCacheBytes` at expert
/// granularity: an expert not in it is charged the device's time for its bytes (on first
/// touch, and again after the model dropped it).
public final class MappedExperts: ExpertProvider, @unchecked Sendable {
    private let files: [SafetensorsFile]
    private let experts: [ExpertKey: (weights: ExpertWeights, bytes: Int, file: Int)]
    private let simulated: SimulatedDisk?
    private let pageCacheBytes: Int
    private let lock = NSLock()
    private var pageCache: [ExpertKey: UInt64] = [:]
    private var pageCacheHeld = 0
    private var touched: Set<ExpertKey> = []
    private var tick: UInt64 = 0
    private var counters = StorageMetrics()
    private let verification: ExpertVerification

    /// Maps the cluster files of `cache`; `simulated` (if any) charges reads by its model and
    /// `pageCacheBytes` bounds the modelled page cache.
    public init(cache: ExpertCache, simulated: SimulatedDisk?, pageCacheBytes: Int) throws {
        do {
            files = try cache.fileURLs.map { try SafetensorsFile(url: $0) }
        } catch {
            throw ExpertCacheError.stale(path: cache.directory.path, reason: "a cluster file cannot be mapped: \(error)")
        }
        var experts: [ExpertKey: (ExpertWeights, Int, Int)] = [:]
        for entry in cache.manifest.experts {
            let file = files[entry.file]
            let tensors = try entry.tensors.map { try file.tensor(named: $0.name) }
            experts[entry.key] = (ExpertWeights(gate: tensors[0], up: tensors[1], down: tensors[2]), entry.length, entry.file)
        }
        self.experts = experts
        verification = ExpertVerification(records: cache.verificationRecords)
        self.simulated = simulated
        self.pageCacheBytes = pageCacheBytes
    }

    /// The mapped weights of `key`, after faulting them in (or charging the simulated device).
    public func weights(for key: ExpertKey) -> ExpertWeights? {
        guard let expert = experts[key] else { return nil }
        lock.lock()
        defer { lock.unlock() }
        counters.needed += 1
        touched.insert(key)
        let start = DispatchTime.now().uptimeNanoseconds
        if let simulated {
            tick += 1
            if pageCache[key] != nil {
                counters.hits += 1
            } else {
                counters.missedBytes += expert.bytes
                simulated.charge(bytes: expert.bytes, file: expert.file)
                counters.bytesRead += expert.bytes
                counters.reads += 1
                pageCacheHeld += expert.bytes
                while pageCacheHeld > pageCacheBytes, let oldest = pageCache.min(by: { $0.value < $1.value })?.key {
                    pageCache.removeValue(forKey: oldest)
                    pageCacheHeld -= experts[oldest]!.bytes
                    counters.evictions += 1
                }
            }
            pageCache[key] = tick
            counters.peakResidentBytes = max(counters.peakResidentBytes, pageCacheHeld)
            counters.residentBytes = pageCacheHeld
        } else {
            let missing = Self.missingBytes(expert.weights)
            if missing == 0 {
                counters.hits += 1
            } else {
                counters.missedBytes += missing
                counters.bytesRead += missing
                counters.reads += 1
                Self.touch(expert.weights)
            }
            let held = touched.reduce(0) { $0 + experts[$1]!.bytes }
            counters.peakResidentBytes = max(counters.peakResidentBytes, held)
            counters.residentBytes = held
        }
        counters.stallNanoseconds += DispatchTime.now().uptimeNanoseconds - start
        return verification.check(key, base: expert.weights.firstByte) ? expert.weights : nil
    }

    /// The first expert whose bytes failed verification.
    public var failure: (any Error)? { verification.failure }

    /// A snapshot of the counters (resident bytes on a real disk: the experts touched, an upper
    /// bound on what the page cache holds).
    public func metrics() -> StorageMetrics { lock.withLock { counters } }

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Bytes of `weights`' pages not resident now (`mincore`); 0 where `mincore` is unavailable.
    private static func missingBytes(_ weights: ExpertWeights) -> Int {
        [weights.gate, weights.up, weights.down].reduce(0) { total, tensor in
            let start = Int(bitPattern: tensor.rawPointer) & ~(pageSize - 1)
            let end = Int(bitPattern: tensor.rawPointer) + tensor.byteCount
            let pages = (end - start + pageSize - 1) / pageSize
            var vector = [UInt8](repeating: 0, count: pages)
            #if os(Linux)
                guard mincore(UnsafeMutableRawPointer(bitPattern: start), end - start, &vector) == 0 else { return total }
            #else
                return total
            #endif
            return total + vector.reduce(0) { $0 + ($1 & 1 == 0 ? pageSize : 0) }
        }
    }

    /// Reads one byte of every page of `weights`, so the faults happen here and are timed.
    private static func touch(_ weights: ExpertWeights) {
        var sink: UInt8 = 0
        for tensor in [weights.gate, weights.up, weights.down] {
            let base = UnsafeRawPointer(tensor.rawPointer)
            for offset in stride(from: 0, to: tensor.byteCount, by: pageSize) {
                sink &+= base.load(fromByteOffset: offset, as: UInt8.self)
            }
        }
        withExtendedLifetime(sink) {}
    }
}
