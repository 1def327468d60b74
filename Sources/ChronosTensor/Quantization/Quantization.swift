import CChronosKernels

/// GGML's block formats on raw memory: dequantisation to f32 and llama.cpp's quantisers,
/// split over the thread pool in whole blocks for long runs.
public enum Quantization {
    /// Dequantises `count` values of `type` (a whole number of blocks) at `blocks` into `values`.
    public static func dequantize(
        _ type: DType, blocks: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool = .shared
    ) {
        precondition(type.isQuantized && count % type.blockElements == 0, "\(count) values are not whole \(type) blocks")
        let code = Int32(type.ggmlType!), block = type.blockElements
        pool.parallelChunks(count / block, minChunk: 256) { range in
            chronos_dequantize(
                code, blocks + range.lowerBound * type.blockBytes, values + range.lowerBound * block, range.count * block)
        }
    }

    /// Quantises `count` values (a whole number of blocks) to `type` at `blocks`, as llama.cpp's
    /// quantiser does; `importance` (one non-negative weight per value) weighs each value's
    /// error in the K formats' scale search, and the 32-value formats ignore it.
    public static func quantize(
        _ type: DType, values: UnsafePointer<Float>, into blocks: UnsafeMutableRawPointer, count: Int,
        importance: UnsafePointer<Float>? = nil, pool: ThreadPool = .shared
    ) {
        precondition(type.isQuantized && count % type.blockElements == 0, "\(count) values are not whole \(type) blocks")
        let code = Int32(type.ggmlType!), block = type.blockElements
        pool.parallelChunks(count / block, minChunk: 16) { range in
            let first = range.lowerBound * block
            chronos_quantize(
                code, values + first, blocks + range.lowerBound * type.blockBytes, range.count * block, importance.map { $0 + first })
        }
    }
}
