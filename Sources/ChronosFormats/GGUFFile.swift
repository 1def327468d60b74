import ChronosTensor
import Foundation

/// A value of a GGUF file's metadata.
public enum GGUFValue: Sendable, Equatable {
    /// An unsigned integer (GGUF's uint8 … uint64).
    case unsigned(UInt64)
    /// A signed integer (int8 … int64).
    case signed(Int64)
    /// A float (float32 or float64).
    case float(Double)
    /// A boolean.
    case bool(Bool)
    /// A UTF-8 string.
    case string(String)
    /// An array of values of one type.
    case array([GGUFValue])

    /// The value as an `Int`, for an integer that fits.
    public var int: Int? {
        switch self {
        case .unsigned(let value): Int(exactly: value)
        case .signed(let value): Int(exactly: value)
        default: nil
        }
    }

    /// The value as a string, for a string.
    public var string: String? {
        if case .string(let value) = self { value } else { nil }
    }
}

/// Where one tensor of a GGUF file lies and what it holds.
public struct GGUFTensorInfo: Sendable, Hashable {
    /// The tensor's name.
    public let name: String
    /// Its element type.
    public let dtype: DType
    /// Its shape, outermost first (GGUF lists the dimensions innermost first).
    public let shape: [Int]
    /// Its bytes, as offsets from the start of the file.
    public let byteRange: Range<Int>
}

/// A GGUF file that cannot be read, with what is wrong.
public struct GGUFError: Error, CustomStringConvertible, Equatable {
    /// The file.
    public let path: String
    /// What is wrong, naming the field or tensor.
    public let reason: String

    /// `path: reason`.
    public var description: String { "\(path): \(reason)" }
}

/// A GGUF file (llama.cpp's model format, versions 2 and 3) opened by mapping it: its metadata
/// and its tensors, which view the mapped bytes.
///
/// The header is validated on open: every length and count is checked against the bytes left,
/// every tensor lies inside the file at an aligned offset, and a tensor of a GGML type Chronos
/// does not read is refused with the type's name.
public final class GGUFFile: Sendable {
    /// The file this was opened from.
    public let url: URL
    /// The format version (2 or 3).
    public let version: Int
    /// The metadata, by key.
    public let metadata: [String: GGUFValue]
    /// Every tensor, in the order the file lists them.
    public let tensorInfos: [GGUFTensorInfo]
    private let infoByName: [String: GGUFTensorInfo]
    private let mapping: MappedFile

    /// The alignment of the data section and of each tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32

    /// Maps the file at `url` read-only and validates its header.
    public init(url: URL) throws {
        let mapping = try MappedFile(path: url.path)
        var reader = Reader(bytes: mapping.bytes, path: url.path)
        guard try reader.take(4) == Array("GGUF".utf8) else { throw reader.error("not a GGUF file (no GGUF magic)") }
        let version = Int(try reader.scalar(UInt32.self))
        guard version == 2 || version == 3 else { throw reader.error("GGUF version \(version); versions 2 and 3 are read") }
        let tensorCount = try reader.count("tensor_count", elementBytes: 24)
        let keyCount = try reader.count("kv_count", elementBytes: 12)

        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<keyCount {
            let key = try reader.string("a metadata key")
            let type = try reader.scalar(UInt32.self)
            let value = try reader.value(type: type, field: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw reader.error("metadata key '\(key)' appears twice") }
        }
        var alignment = Self.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let int = value.int, int > 0, int <= 1 << 20, int & (int - 1) == 0 else {
                throw reader.error("general.alignment is \(value), not a power of two up to 2^20")
            }
            alignment = int
        }

        var listed: [(name: String, dtype: DType, shape: [Int], offset: Int, byteCount: Int)] = []
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try reader.string("a tensor name")
            guard names.insert(name).inserted else { throw reader.error("tensor '\(name)' is listed twice") }
            let dimensions = Int(try reader.scalar(UInt32.self))
            guard (1...4).contains(dimensions) else { throw reader.error("tensor '\(name)' has \(dimensions) dimensions, not 1 to 4") }
            var innermostFirst: [Int] = []
            for _ in 0..<dimensions {
                let extent = try reader.scalar(UInt64.self)
                guard extent >= 1, extent <= UInt64(Int32.max) else {
                    throw reader.error("tensor '\(name)' has a dimension of \(extent), not 1 to 2^31 − 1")
                }
                innermostFirst.append(Int(extent))
            }
            let code = Int(try reader.scalar(UInt32.self))
            guard let dtype = DType(ggmlType: code) else {
                throw reader.error("tensor '\(name)' is of GGML type \(Self.ggmlTypeName(code)), which Chronos does not read")
            }
            guard innermostFirst[0] % dtype.blockElements == 0 else {
                throw reader.error(
                    "tensor '\(name)' has rows of \(innermostFirst[0]) values, not whole \(dtype) blocks of \(dtype.blockElements)")
            }
            var count = 1
            for extent in innermostFirst {
                let (product, overflow) = count.multipliedReportingOverflow(by: extent)
                guard !overflow else { throw reader.error("tensor '\(name)' is too large") }
                count = product
            }
            // Whole blocks, no more than the file holds: its byte count cannot overflow.
            guard count / dtype.blockElements <= mapping.bytes.count / dtype.blockBytes else {
                throw reader.error("tensor '\(name)' holds \(count) values, more than the file's \(mapping.bytes.count) bytes can")
            }
            let offset = try reader.scalar(UInt64.self)
            guard offset <= UInt64(Int.max / 2), Int(offset) % alignment == 0 else {
                throw reader.error("tensor '\(name)' starts at \(offset), not a multiple of the alignment \(alignment)")
            }
            listed.append((name, dtype, innermostFirst.reversed(), Int(offset), dtype.byteCount(count)))
        }

        let dataStart = (reader.position + alignment - 1) / alignment * alignment
        var infos: [GGUFTensorInfo] = []
        for tensor in listed {
            let start = dataStart + tensor.offset
            guard start <= mapping.bytes.count, tensor.byteCount <= mapping.bytes.count - start else {
                throw reader.error("tensor '\(tensor.name)' ends past the end of the file (truncated?)")
            }
            infos.append(
                GGUFTensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, byteRange: start..<(start + tensor.byteCount)))
        }
        self.url = url
        self.version = version
        self.metadata = metadata
        self.mapping = mapping
        tensorInfos = infos
        infoByName = Dictionary(uniqueKeysWithValues: infos.map { ($0.name, $0) })
    }

    /// Whether `url` names a GGUF file rather than a model directory: its extension is `.gguf`,
    /// or it is a regular file that starts with GGUF's magic.
    public static func isGGUF(_ url: URL) -> Bool {
        if url.pathExtension.lowercased() == "gguf" { return true }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let handle = try? FileHandle(forReadingFrom: url)
        else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    /// Tensor names in the order the file lists them.
    public var tensorNames: [String] { tensorInfos.map(\.name) }

    /// The type, shape and byte range of the tensor called `name`.
    public func info(named name: String) throws -> GGUFTensorInfo {
        guard let info = infoByName[name] else { throw GGUFError(path: url.path, reason: "no tensor '\(name)'") }
        return info
    }

    /// The tensor called `name`, viewing the mapped bytes (copied where they are not aligned for
    /// the kernels' loads).
    public func tensor(named name: String) throws -> Tensor {
        let info = try info(named: name)
        return mapping.tensor(dtype: info.dtype, shape: info.shape, byteRange: info.byteRange)
    }

    /// GGML's name for type `code`, with the number.
    static func ggmlTypeName(_ code: Int) -> String {
        let names = [
            9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
            23: "IQ4_XS", 25: "I16", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"
        ]
        return "\(names[code] ?? "unknown") (\(code))"
    }

    /// Reads the header's fields in order, every read checked against the bytes left.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var position = 0

        /// An error at the current position.
        func error(_ reason: String) -> GGUFError { GGUFError(path: path, reason: reason) }

        mutating func take(_ count: Int) throws -> [UInt8] {
            guard count >= 0, count <= bytes.count - position else {
                throw error("the header ends early at byte \(position) (truncated?)")
            }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }

        mutating func scalar<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard MemoryLayout<T>.size <= bytes.count - position else {
                throw error("the header ends early at byte \(position) (truncated?)")
            }
            defer { position += MemoryLayout<T>.size }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        }

        /// A count of items that take at least `elementBytes` each: more than the bytes left could hold is refused.
        mutating func count(_ field: String, elementBytes: Int) throws -> Int {
            let value = try scalar(UInt64.self)
            guard value <= UInt64((bytes.count - position) / elementBytes) else {
                throw error("\(field) is \(value), more than the \(bytes.count - position) bytes left can hold")
            }
            return Int(value)
        }

        mutating func string(_ what: String) throws -> String {
            let length = try scalar(UInt64.self)
            guard length <= UInt64(bytes.count - position) else {
                throw error("\(what) is \(length) bytes long, more than the \(bytes.count - position) left")
            }
            let raw = try take(Int(length))
            guard let text = String(validating: raw, as: UTF8.self) else { throw error("\(what) is not valid UTF-8") }
            return text
        }

        /// A value of GGUF type `type` (0 uint8 … 12 float64), arrays nested at most 3 deep.
        mutating func value(type: UInt32, field: String, depth: Int) throws -> GGUFValue {
            switch type {
            case 0: return .unsigned(UInt64(try scalar(UInt8.self)))
            case 1: return .signed(Int64(try scalar(Int8.self)))
            case 2: return .unsigned(UInt64(try scalar(UInt16.self)))
            case 3: return .signed(Int64(try scalar(Int16.self)))
            case 4: return .unsigned(UInt64(try scalar(UInt32.self)))
            case 5: return .signed(Int64(try scalar(Int32.self)))
            case 6: return .float(Double(Float(bitPattern: try scalar(UInt32.self))))
            case 7:
                let byte = try scalar(UInt8.self)
                guard byte <= 1 else { throw error("\(field) is a bool of value \(byte), not 0 or 1") }
                return .bool(byte == 1)
            case 8: return .string(try string(field))
            case 9:
                guard depth < 3 else { throw error("\(field) nests arrays more than 3 deep") }
                let elementType = try scalar(UInt32.self)
                let count = try self.count("the length of \(field)", elementBytes: 1)
                var items: [GGUFValue] = []
                items.reserveCapacity(min(count, 1 << 16))
                for _ in 0..<count { items.append(try value(type: elementType, field: field, depth: depth + 1)) }
                return .array(items)
            case 10: return .unsigned(try scalar(UInt64.self))
            case 11: return .signed(try scalar(Int64.self))
            case 12: return .float(Double(bitPattern: try scalar(UInt64.self)))
            default: throw error("\(field) has value type \(type), not one of GGUF's 0 to 12")
            }
        }
    }
}

extension GGUFFile {
    /// Writes a GGUF version 3 file holding `metadata` (keys in sorted order) and no tensors,
    /// atomically. Integers are written as 32-bit where every value fits, else 64-bit; floats
    /// as float32; an array takes the widest type its elements need.
    public static func write(metadata: [String: GGUFValue], to url: URL) throws {
        var bytes: [UInt8] = Array("GGUF".utf8)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func appendString(_ string: String) {
            append(UInt64(string.utf8.count))
            bytes += string.utf8
        }
        /// The GGUF type code that holds every value in `values` (all of one kind).
        func typeCode(_ values: [GGUFValue]) throws -> UInt32 {
            switch values.first {
            case .unsigned?: values.allSatisfy { if case .unsigned(let v) = $0 { v <= UInt32.max } else { false } } ? 4 : 10
            case .signed?:
                values.allSatisfy { if case .signed(let v) = $0 { Int64(Int32.min)...Int64(Int32.max) ~= v } else { false } } ? 5 : 11
            case .float?: 6
            case .bool?: 7
            case .string?, nil: 8
            case .array?: 9
            }
        }
        func appendValue(_ value: GGUFValue, as code: UInt32) throws {
            switch (value, code) {
            case (.unsigned(let v), 4): append(UInt32(v))
            case (.unsigned(let v), 10): append(v)
            case (.signed(let v), 5): append(Int32(v))
            case (.signed(let v), 11): append(v)
            case (.float(let v), 6): append(Float(v).bitPattern)
            case (.bool(let v), 7): append(UInt8(v ? 1 : 0))
            case (.string(let v), 8): appendString(v)
            case (.array(let items), 9):
                let element = try typeCode(items)
                append(element)
                append(UInt64(items.count))
                for item in items { try appendValue(item, as: element) }
            default: throw GGUFError(path: url.path, reason: "an array mixes value kinds (\(value))")
            }
        }
        append(UInt32(3))
        append(UInt64(0))
        append(UInt64(metadata.count))
        for key in metadata.keys.sorted() {
            let value = metadata[key]!
            let code = try typeCode([value])
            appendString(key)
            append(code)
            try appendValue(value, as: code)
        }
        try AtomicFile.write(Data(bytes), to: url)
    }
}
