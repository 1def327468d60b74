import Foundation

/// Why a safetensors file or checkpoint directory could not be read or written; each case
/// names the file (or directory) and, where one is involved, the tensor.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    /// A system call on the file failed with `errno`.
    case io(path: String, call: String, errno: Int32)
    /// The path names a directory, device or other non-regular file.
    case notARegularFile(path: String)
    /// The file is too short to hold the 8-byte header length.
    case fileTooShort(path: String, byteCount: Int)
    /// The header length claims more bytes than the file holds after the length field.
    case headerLengthExceedsFile(path: String, headerLength: UInt64, fileSize: Int)
    /// The header length is beyond what any real checkpoint needs.
    case headerTooLarge(path: String, headerLength: UInt64, limit: Int)
    /// The header is not UTF-8 text holding one JSON object.
    case malformedHeader(path: String, reason: String)
    /// A tensor entry lacks a required field (`dtype`, `shape` or `data_offsets`).
    case missingField(path: String, tensor: String, field: String)
    /// A tensor entry has a field of the wrong JSON type or form.
    case invalidField(path: String, tensor: String, field: String, reason: String)
    /// A tensor has a dtype this reader does not support (e.g. `F64`, `BOOL`).
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// A tensor's shape has a negative dimension or its byte size overflows.
    case invalidShape(path: String, tensor: String, shape: [Int], reason: String)
    /// A tensor's byte range does not match its shape times its element size.
    case byteLengthMismatch(path: String, tensor: String, expected: Int, actual: Int)
    /// A tensor's `data_offsets` begin after they end.
    case invalidDataOffsets(path: String, tensor: String, begin: Int, end: Int)
    /// A tensor's bytes extend past the end of the data section (the file is truncated).
    case dataOutOfBounds(path: String, tensor: String, end: Int, dataSectionSize: Int)
    /// Two tensors claim some of the same bytes.
    case overlappingTensors(path: String, tensor: String, other: String)
    /// `__metadata__` is not a map from strings to strings.
    case invalidMetadata(path: String, reason: String)
    /// No tensor of that name exists in the file or checkpoint directory at `path`.
    case tensorNotFound(tensor: String, path: String)
    /// The directory has neither `model.safetensors` nor `model.safetensors.index.json`.
    case noCheckpoint(directory: String)
    /// The shard index is not JSON with a `weight_map` from tensor names to shard file names.
    case invalidIndex(path: String, reason: String)
    /// The shard index names a shard file that does not exist.
    case missingShard(index: String, shard: String)
    /// The shard index places a tensor in a shard that does not contain it.
    case tensorMissingFromShard(path: String, tensor: String)
    /// A tensor cannot be written under this name (duplicate or reserved).
    case invalidTensorName(path: String, tensor: String, reason: String)

    /// A one-line explanation naming the file and, where relevant, the tensor.
    public var description: String {
        switch self {
        case .io(let path, let call, let errno):
            "\(path): \(call) failed: \(String(cString: strerror(errno)))"
        case .notARegularFile(let path):
            "\(path): not a regular file"
        case .fileTooShort(let path, let byteCount):
            "\(path): file of \(byteCount) bytes is too short for a safetensors header (needs at least 8)"
        case .headerLengthExceedsFile(let path, let headerLength, let fileSize):
            "\(path): header length \(headerLength) exceeds the \(fileSize)-byte file"
        case .headerTooLarge(let path, let headerLength, let limit):
            "\(path): header length \(headerLength) exceeds the limit of \(limit) bytes"
        case .malformedHeader(let path, let reason):
            "\(path): malformed header: \(reason)"
        case .missingField(let path, let tensor, let field):
            "\(path): tensor '\(tensor)' has no '\(field)'"
        case .invalidField(let path, let tensor, let field, let reason):
            "\(path): tensor '\(tensor)' has an invalid '\(field)': \(reason)"
        case .unsupportedDType(let path, let tensor, let dtype):
            "\(path): tensor '\(tensor)' has unsupported dtype '\(dtype)'"
        case .invalidShape(let path, let tensor, let shape, let reason):
            "\(path): tensor '\(tensor)' has invalid shape \(shape): \(reason)"
        case .byteLengthMismatch(let path, let tensor, let expected, let actual):
            "\(path): tensor '\(tensor)' occupies \(actual) bytes but its shape and dtype need \(expected)"
        case .invalidDataOffsets(let path, let tensor, let begin, let end):
            "\(path): tensor '\(tensor)' has data_offsets [\(begin), \(end)] that begin after they end"
        case .dataOutOfBounds(let path, let tensor, let end, let dataSectionSize):
            "\(path): tensor '\(tensor)' ends at data offset \(end) beyond the \(dataSectionSize)-byte data section (truncated file?)"
        case .overlappingTensors(let path, let tensor, let other):
            "\(path): tensor '\(tensor)' overlaps tensor '\(other)'"
        case .invalidMetadata(let path, let reason):
            "\(path): invalid __metadata__: \(reason)"
        case .tensorNotFound(let tensor, let path):
            "\(path): no tensor named '\(tensor)'"
        case .noCheckpoint(let directory):
            "\(directory): neither model.safetensors nor model.safetensors.index.json exists"
        case .invalidIndex(let path, let reason):
            "\(path): invalid shard index: \(reason)"
        case .missingShard(let index, let shard):
            "\(index): shard file '\(shard)' does not exist"
        case .tensorMissingFromShard(let path, let tensor):
            "\(path): tensor '\(tensor)' is listed in the shard index but absent from this shard"
        case .invalidTensorName(let path, let tensor, let reason):
            "\(path): cannot write tensor '\(tensor)': \(reason)"
        }
    }
}
