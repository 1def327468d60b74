import ChronosTensor
import Foundation

/// Where one tensor lies in a safetensors file and how to read it.
public struct SafetensorsTensorInfo: Sendable, Hashable {
    /// The tensor's key in the header.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// The tensor's bytes as offsets from the start of the file (not of the data section).
    public let byteRange: Range<Int>
}

/// The validated header of a safetensors file: an 8-byte little-endian length, then that many
/// bytes of JSON mapping tensor names to `dtype`, `shape` and `data_offsets` (relative to the
/// data section that follows the header), plus an optional `__metadata__` string map.
struct SafetensorsHeader {
    /// Largest header accepted, as in the reference implementation; real headers are kilobytes.
    static let maximumLength = 100_000_000

    /// Every tensor, ordered by where its bytes begin.
    let tensors: [SafetensorsTensorInfo]
    /// The `__metadata__` map (empty when absent).
    let metadata: [String: String]

    /// Parses and checks the header at the start of `file`, the whole file's bytes, so that
    /// every tensor it describes lies inside the file and no two tensors share bytes.
    init(parsing file: UnsafeRawBufferPointer, path: String) throws {
        guard file.count >= 8 else { throw SafetensorsError.fileTooShort(path: path, byteCount: file.count) }
        let headerLength = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(file.count - 8) else {
            throw SafetensorsError.headerLengthExceedsFile(path: path, headerLength: headerLength, fileSize: file.count)
        }
        guard headerLength <= UInt64(Self.maximumLength) else {
            throw SafetensorsError.headerTooLarge(path: path, headerLength: headerLength, limit: Self.maximumLength)
        }
        let dataStart = 8 + Int(headerLength)
        let header = try Self.decodeJSONObject(UnsafeRawBufferPointer(rebasing: file[8..<dataStart]), path: path)

        var metadata: [String: String] = [:]
        var tensors: [SafetensorsTensorInfo] = []
        // Entries are checked in name order so that a file with several faults always reports the same one.
        for (name, value) in header.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                metadata = try Self.metadata(from: value, path: path)
            } else {
                tensors.append(
                    try Self.tensorInfo(
                        name: name, value: value, dataStart: dataStart,
                        dataSize: file.count - dataStart, path: path))
            }
        }
        tensors.sort {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        try Self.checkNoOverlap(tensors, path: path)
        try Self.applyQuantizedTypes(&tensors, metadata: metadata, path: path)
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The header bytes as a JSON object, or a `malformedHeader` error.
    private static func decodeJSONObject(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [String: JSONValue] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SafetensorsError.malformedHeader(path: path, reason: "not valid UTF-8")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw SafetensorsError.malformedHeader(path: path, reason: "not valid JSON")
        }
        guard case .object(let object) = value else {
            throw SafetensorsError.malformedHeader(path: path, reason: "expected a JSON object, found \(value.kind)")
        }
        return object
    }

    /// The `__metadata__` entry, which must map strings to strings.
    private static func metadata(from value: JSONValue, path: String) throws -> [String: String] {
        guard case .object(let object) = value else {
            throw SafetensorsError.invalidMetadata(path: path, reason: "expected an object, found \(value.kind)")
        }
        return try object.mapValues { entry in
            guard case .string(let string) = entry else {
                throw SafetensorsError.invalidMetadata(path: path, reason: "expected string values, found \(entry.kind)")
            }
            return string
        }
    }

    /// One tensor entry, checked field by field against the data section of `dataSize` bytes
    /// that starts at file offset `dataStart`.
    private static func tensorInfo(
        name: String, value: JSONValue, dataStart: Int, dataSize: Int,
        path: String
    ) throws -> SafetensorsTensorInfo {
        guard case .object(let entry) = value else {
            throw SafetensorsError.malformedHeader(path: path, reason: "entry '\(name)' is \(value.kind), not an object")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let value = entry[key] else { throw SafetensorsError.missingField(path: path, tensor: name, field: key) }
            return value
        }
        func integers(_ key: String) throws -> [Int] {
            let value = try field(key)
            guard case .array(let elements) = value else {
                throw SafetensorsError.invalidField(
                    path: path, tensor: name, field: key,
                    reason: "expected an array of integers, found \(value.kind)")
            }
            return try elements.map { element in
                guard case .integer(let integer) = element else {
                    throw SafetensorsError.invalidField(
                        path: path, tensor: name, field: key,
                        reason: "expected integers, found \(element.kind)")
                }
                return integer
            }
        }

        let dtypeValue = try field("dtype")
        guard case .string(let dtypeName) = dtypeValue else {
            throw SafetensorsError.invalidField(
                path: path, tensor: name, field: "dtype",
                reason: "expected a string, found \(dtypeValue.kind)")
        }
        guard let dtype = DType(safetensorsName: dtypeName) else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: dtypeName)
        }

        let shape = try integers("shape")
        var byteCount = dtype.byteSize
        for dimension in shape {
            guard dimension >= 0 else {
                throw SafetensorsError.invalidShape(path: path, tensor: name, shape: shape, reason: "negative dimension")
            }
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError.invalidShape(path: path, tensor: name, shape: shape, reason: "byte size overflows")
            }
            byteCount = product
        }

        let offsets = try integers("data_offsets")
        guard offsets.count == 2, offsets[0] >= 0, offsets[1] >= 0 else {
            throw SafetensorsError.invalidField(
                path: path, tensor: name, field: "data_offsets",
                reason: "expected two non-negative integers, found \(offsets)")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw SafetensorsError.invalidDataOffsets(path: path, tensor: name, begin: begin, end: end)
        }
        guard end <= dataSize else {
            throw SafetensorsError.dataOutOfBounds(path: path, tensor: name, end: end, dataSectionSize: dataSize)
        }
        guard end - begin == byteCount else {
            throw SafetensorsError.byteLengthMismatch(path: path, tensor: name, expected: byteCount, actual: end - begin)
        }
        return SafetensorsTensorInfo(
            name: name, dtype: dtype, shape: shape,
            byteRange: (dataStart + begin)..<(dataStart + end))
    }

    /// Gives the tensors that `__metadata__` marks as block formats their type and logical shape:
    /// stored as `U8` rows of whole blocks, `[…, rowBytes]` becomes `[…, rowBytes / blockBytes ·
    /// blockElements]` of the type.
    private static func applyQuantizedTypes(_ tensors: inout [SafetensorsTensorInfo], metadata: [String: String], path: String) throws {
        let prefix = DType.quantizedMetadataPrefix
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where key.hasPrefix(prefix) {
            let name = String(key.dropFirst(prefix.count))
            guard let index = tensors.firstIndex(where: { $0.name == name }) else {
                throw SafetensorsError.invalidMetadata(path: path, reason: "'\(key)' names no tensor of the file")
            }
            let stored = tensors[index]
            guard let type = DType(rawValue: value), type.isQuantized else {
                let known = DType.allCases.filter(\.isQuantized).map(\.rawValue).joined(separator: ", ")
                throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: "\(value) (block formats read: \(known))")
            }
            guard stored.dtype == .u8, let rowBytes = stored.shape.last, rowBytes > 0, rowBytes % type.blockBytes == 0 else {
                throw SafetensorsError.invalidShape(
                    path: path, tensor: name, shape: stored.shape,
                    reason: "a \(type) tensor is stored as U8 rows of whole \(type.blockBytes)-byte blocks")
            }
            tensors[index] = SafetensorsTensorInfo(
                name: name, dtype: type, shape: stored.shape.dropLast() + [rowBytes / type.blockBytes * type.blockElements],
                byteRange: stored.byteRange)
        }
    }

    /// Throws if any two non-empty byte ranges of `tensors` (sorted by start) intersect.
    private static func checkNoOverlap(_ tensors: [SafetensorsTensorInfo], path: String) throws {
        var furthest: SafetensorsTensorInfo?
        for tensor in tensors where !tensor.byteRange.isEmpty {
            if let previous = furthest, tensor.byteRange.lowerBound < previous.byteRange.upperBound {
                throw SafetensorsError.overlappingTensors(path: path, tensor: tensor.name, other: previous.name)
            }
            if tensor.byteRange.upperBound > furthest?.byteRange.upperBound ?? -1 { furthest = tensor }
        }
    }
}

/// A JSON value with its type kept, so each header field can be checked and named in errors.
private enum JSONValue: Decodable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// The JSON type's name, for error messages.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer: "an integer"
        case .number: "a non-integer or out-of-range number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
