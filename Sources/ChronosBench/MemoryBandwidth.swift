import ChronosTensor
import Foundation

/// Measures what the memory system delivers, the bound for memory-bound kernels.
public enum MemoryBandwidth {
    /// Streaming-read bandwidth in GB/s over `bytes` (far larger than the caches), split over the
    /// pool's threads, best of `repeats` (see `ReadBuffer.measure`).
    public static func streamingRead(bytes: Int = 1 << 30, repeats: Int = 5, pool: ThreadPool = .shared) -> Double {
        let buffer = ReadBuffer(bytes: bytes)
        return (0..<repeats).map { _ in buffer.measure(pool: pool) }.max()!
    }

    /// A buffer far larger than the caches, for repeated streaming-read measurements.
    public final class ReadBuffer {
        /// Floats in the buffer.
        public let count: Int
        let values: UnsafeMutablePointer<Float>

        /// A buffer of `bytes` bytes of ones.
        public init(bytes: Int) {
            count = bytes / 4
            values = UnsafeMutablePointer<Float>.allocate(capacity: count)
            values.initialize(repeating: 1, count: count)
        }

        deinit { values.deallocate() }

        /// GB/s of the faster of two reads of the whole buffer in 64 MiB blocks, each block split
        /// over the pool's threads: a SIMD sum, and an f32 matrix-vector product taking the block
        /// as rows of 4096 (the kernel that decode's bound is for; where it reads faster than the
        /// sum, the sum is not the machine's bound).
        public func measure(pool: ThreadPool) -> Double {
            var total: Float = 0
            let block = (64 << 20) / 4, width = 4096
            let summed = Stopwatch.time {
                for start in stride(from: 0, to: count, by: block) {
                    total += MemoryBandwidth.sum(values + start, count: min(block, count - start), pool: pool)
                }
            }
            precondition(total > 0)
            let summedRate = Double(count * 4) / summed / 1e9
            let readByProduct = count / width * width
            guard readByProduct > 0 else { return summedRate }
            let ones = [Float](repeating: 1, count: width)
            var rowSums = [Float](repeating: 0, count: block / width)
            let multiplied = Stopwatch.time {
                for start in stride(from: 0, to: count - width + 1, by: block) {
                    let rows = min(block, count - start) / width
                    rowSums.withUnsafeMutableBufferPointer { y in
                        MatVec.multiply(
                            weights: UnsafeRawPointer(values + start), dtype: .f32, rows: rows, cols: width, x: ones, y: y.baseAddress!,
                            pool: pool)
                    }
                }
            }
            return max(summedRate, Double(readByProduct * 4) / multiplied / 1e9)
        }
    }

    /// Copy bandwidth in GB/s counting bytes read plus bytes written, best of `repeats`.
    public static func copy(bytes: Int = 1 << 29, repeats: Int = 5, pool: ThreadPool = .shared) -> Double {
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        source.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        let seconds = Stopwatch.best(repeats: repeats) {
            pool.parallelChunks(bytes, minChunk: 1 << 20) { range in
                (destination + range.lowerBound).copyMemory(from: source + range.lowerBound, byteCount: range.count)
            }
        }
        return Double(2 * bytes) / seconds / 1e9
    }

    /// Σ p[0..<count]: each thread sums its share as four interleaved streams (like a
    /// matrix-vector product reading four rows at once), which the hardware prefetchers serve
    /// better than one stream.
    public static func sum(_ p: UnsafePointer<Float>, count: Int, pool: ThreadPool) -> Float {
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
        defer { partials.deallocate() }
        partials.initialize(repeating: 0, count: pool.threadCount)
        let chunk = (count + pool.threadCount - 1) / pool.threadCount
        pool.parallelFor(pool.threadCount) { t in
            typealias V = SIMD8<Float>
            let start = t * chunk, end = min(count, start + chunk)
            let stream = (end - start) / 4 / 16 * 16
            let r0 = UnsafeRawPointer(p + start), r1 = r0 + stream * 4, r2 = r1 + stream * 4, r3 = r2 + stream * 4
            var a = V(), b = V(), c = V(), d = V(), e = V(), f = V(), g = V(), h = V()
            var i = 0
            while i < stream * 4 {
                a += r0.loadUnaligned(fromByteOffset: i, as: V.self)
                b += r0.loadUnaligned(fromByteOffset: i + 32, as: V.self)
                c += r1.loadUnaligned(fromByteOffset: i, as: V.self)
                d += r1.loadUnaligned(fromByteOffset: i + 32, as: V.self)
                e += r2.loadUnaligned(fromByteOffset: i, as: V.self)
                f += r2.loadUnaligned(fromByteOffset: i + 32, as: V.self)
                g += r3.loadUnaligned(fromByteOffset: i, as: V.self)
                h += r3.loadUnaligned(fromByteOffset: i + 32, as: V.self)
                i += 64
            }
            var s = (a + b + c + d + e + f + g + h).sum()
            for j in (start + 4 * stream)..<end { s += p[j] }
            partials[t] = s
        }
        return (0..<pool.threadCount).reduce(0) { $0 + partials[$1] }
    }
}
