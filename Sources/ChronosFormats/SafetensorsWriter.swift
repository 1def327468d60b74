import ChronosTensor
import Foundation

/// Writes tensors as a safetensors file (a tensor of a block format as `U8` rows of its blocks,
/// its type named in `__metadata__`) that the Python `safetensors` library and Hugging Face
/// loaders read.
public enum SafetensorsWriter {
    /// Writes `tensors` in the given order, with `metadata` as `__metadata__` (omitted when
    /// empty), to `url` atomically: a crash leaves either the old file or the complete new one.
    ///
    /// The header JSON has sorted keys and is padded with spaces to a multiple of 8 bytes; each
    /// tensor's elements follow, row-major and contiguous, in the machine's little-endian order.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
        to url: URL
    ) throws {
        let entries = tensors.map { Entry(name: $0.name, dtype: $0.tensor.dtype, shape: $0.tensor.shape) }
        try write(entries, metadata: metadata, to: url) { tensors[$0].tensor }
    }

    /// What the header says of one tensor.
    public struct Entry: Sendable {
        /// The tensor's key.
        public var name: String
        /// Its element type.
        public var dtype: DType
        /// Its shape.
        public var shape: [Int]

        /// An entry for a tensor called `name` of `dtype` and `shape`.
        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// Writes the tensors `entries` describe, asking `tensor(i)` for each in turn as it is
    /// written, so that only one need be in memory; atomically, as `write(_:metadata:to:)`.
    /// Throws if a tensor does not match its entry.
    public static func write(
        _ entries: [Entry], metadata: [String: String] = [:], to url: URL, tensor: (Int) throws -> Tensor
    ) throws {
        let header = try encodeHeader(entries, metadata: metadata, path: url.path)
        try AtomicFile.write(to: url) { handle in
            var length = UInt64(header.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: header)
            for (index, entry) in entries.enumerated() {
                let contiguous = try tensor(index).contiguous()
                guard contiguous.dtype == entry.dtype, contiguous.shape == entry.shape else {
                    throw SafetensorsError.invalidTensorName(
                        path: url.path, tensor: entry.name,
                        reason: "the tensor is \(contiguous.dtype) \(contiguous.shape), its entry \(entry.dtype) \(entry.shape)")
                }
                if contiguous.byteCount > 0 {
                    try handle.write(contentsOf: UnsafeRawBufferPointer(start: contiguous.rawPointer, count: contiguous.byteCount))
                }
            }
        }
    }

    /// The header JSON, space-padded to a multiple of 8 bytes so the data section is aligned.
    private static func encodeHeader(_ tensors: [Entry], metadata: [String: String], path: String) throws -> Data {
        var entries: [String: Any] = [:]
        var metadata = metadata
        for tensor in tensors where tensor.dtype.isQuantized {
            metadata[DType.quantizedMetadataKey(tensor: tensor.name)] = tensor.dtype.rawValue
        }
        if !metadata.isEmpty { entries["__metadata__"] = metadata }
        var offset = 0
        for tensor in tensors {
            let name = tensor.name, byteCount = tensor.dtype.byteCount(tensor.shape.reduce(1, *))
            guard name != "__metadata__" else {
                throw SafetensorsError.invalidTensorName(path: path, tensor: name, reason: "the name is reserved")
            }
            guard entries[name] == nil else {
                throw SafetensorsError.invalidTensorName(path: path, tensor: name, reason: "duplicate name")
            }
            entries[name] =
                [
                    "dtype": tensor.dtype.safetensorsName,
                    "shape": tensor.storedShape,
                    "data_offsets": [offset, offset + byteCount]
                ] as [String: Any]
            offset += byteCount
        }
        var header = try JSONSerialization.data(withJSONObject: entries, options: [.sortedKeys, .withoutEscapingSlashes])
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        return header
    }
}

extension SafetensorsWriter.Entry {
    /// The shape safetensors stores: a block format's rows as their bytes.
    fileprivate var storedShape: [Int] {
        guard dtype.isQuantized, let last = shape.last else { return shape }
        return shape.dropLast() + [dtype.byteCount(last)]
    }
}
