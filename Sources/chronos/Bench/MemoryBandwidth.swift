import ChronosTensor
import Foundation

/// Measures what the memory system delivers, the bound for memory-bound kernels.
enum MemoryBandwidth {
    /// Streaming-read bandwidth in GB/s: a SIMD sum over `bytes` (far larger than the caches)
    /// split over the pool's threads, best of `repeats`.
    static func streamingRead(bytes: Int = 1 << 30, repeats: Int = 5, pool: ThreadPool = .shared) -> Double {
        let count = bytes / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        var sink: Float = 0
        let seconds = Stopwatch.best(repeats: repeats) {
            sink += sum(buffer, count: count, pool: pool)
        }
        precondition(sink > 0)
        return Double(bytes) / seconds / 1e9
    }

    /// Copy bandwidth in GB/s counting bytes read plus bytes written, best of `repeats`.
    static func copy(bytes: Int = 1 << 29, repeats: Int = 5, pool: ThreadPool = .shared) -> Double {
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); destination.deallocate() }
        source.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        let seconds = Stopwatch.best(repeats: repeats) {
            pool.parallelChunks(bytes, minChunk: 1 << 20) { range in
                (destination + range.lowerBound).copyMemory(from: source + range.lowerBound, byteCount: range.count)
            }
        }
        return Double(2 * bytes) / seconds / 1e9
    }

    private static func sum(_ p: UnsafePointer<Float>, count: Int, pool: ThreadPool) -> Float {
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
        defer { partials.deallocate() }
        partials.initialize(repeating: 0, count: pool.threadCount)
        let chunk = (count + pool.threadCount - 1) / pool.threadCount
        pool.parallelFor(pool.threadCount) { t in
            let start = t * chunk, end = min(count, start + chunk)
            let raw = UnsafeRawPointer(p)
            typealias V = SIMD8<Float>
            var a = V(), b = V(), c = V(), d = V(), e = V(), f = V(), g = V(), h = V()
            var i = start
            while i + 64 <= end {
                a += raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                b += raw.loadUnaligned(fromByteOffset: i * 4 + 32, as: V.self)
                c += raw.loadUnaligned(fromByteOffset: i * 4 + 64, as: V.self)
                d += raw.loadUnaligned(fromByteOffset: i * 4 + 96, as: V.self)
                e += raw.loadUnaligned(fromByteOffset: i * 4 + 128, as: V.self)
                f += raw.loadUnaligned(fromByteOffset: i * 4 + 160, as: V.self)
                g += raw.loadUnaligned(fromByteOffset: i * 4 + 192, as: V.self)
                h += raw.loadUnaligned(fromByteOffset: i * 4 + 224, as: V.self)
                i += 64
            }
            var s = (a + b + c + d + e + f + g + h).sum()
            while i < end { s += p[i]; i += 1 }
            partials[t] = s
        }
        return (0..<pool.threadCount).reduce(0) { $0 + partials[$1] }
    }
}
