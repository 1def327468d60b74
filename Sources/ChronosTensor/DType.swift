/// The element type of a tensor's storage.
///
/// Floating-point types are what kernels compute on; the integer types exist so that metadata
/// tensors (token ids, counters) read from checkpoints keep their exact values. The quantised
/// types are GGML's block formats, bit for bit: a row is a run of blocks, each holding
/// `blockElements` values in `blockBytes` bytes (scales and packed integers). `mxfp4` is the
/// OCP microscaling FP4 of gpt-oss's published experts, in GGML's block layout.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, i8, u8, i32, i64
    // GGML's names for its block formats, as llama.cpp and gguf-py spell them.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    case q8_0, q4_0, q4_1, q5_0, q5_1
    // swift-format-ignore: AlwaysUseLowerCamelCase
    case q2_k, q3_k, q4_k, q5_k, q6_k
    case mxfp4

    /// Bytes one element occupies, for the types that store elements one by one; a quantised
    /// type's elements share blocks, so use `byteCount(_:)` for them.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i8, .u8: 1
        case .i64: 8
        default: blockBytes
        }
    }

    /// Whether kernels can compute on this type (directly or by widening to f32).
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// Whether this is one of GGML's block formats.
    public var isQuantized: Bool { blockElements > 1 }

    /// Whether a weight of this type can be multiplied by the kernels: a float or quantised type.
    public var isWeight: Bool { isFloatingPoint || isQuantized }

    /// Values in one block: 32 for the simple formats, 256 for the K formats, 1 otherwise.
    public var blockElements: Int {
        switch self {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .mxfp4: 32
        case .q2_k, .q3_k, .q4_k, .q5_k, .q6_k: 256
        default: 1
        }
    }

    /// Bytes of one block (of one element for the other types).
    public var blockBytes: Int {
        switch self {
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q2_k: 84
        case .q3_k: 110
        case .q4_k: 144
        case .q5_k: 176
        case .q6_k: 210
        case .mxfp4: 17
        default: byteSize
        }
    }

    /// Bytes `elements` values occupy; for a quantised type `elements` is a whole number of blocks.
    @inline(__always)
    public func byteCount(_ elements: Int) -> Int {
        let block = blockElements
        return block == 1 ? elements * blockBytes : elements / block * blockBytes
    }

    /// The alignment a tensor's first byte needs for the kernels' loads: a block's 16-bit
    /// scales for the block formats (none for MXFP4's byte scales), an element otherwise.
    public var alignment: Int { self == .mxfp4 ? 1 : isQuantized ? 2 : byteSize }

    /// Bits one value costs on average, scales included.
    public var bitsPerElement: Double { Double(blockBytes * 8) / Double(blockElements) }

    /// GGML's number for the type (`ggml_type`), for the types GGML has.
    public var ggmlType: Int? {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q5_0: 6
        case .q5_1: 7
        case .q8_0: 8
        case .q2_k: 10
        case .q3_k: 11
        case .q4_k: 12
        case .q5_k: 13
        case .q6_k: 14
        case .i8: 24
        case .i32: 26
        case .i64: 27
        case .bf16: 30
        case .mxfp4: 39
        case .u8: nil
        }
    }

    /// The type GGML numbers `ggmlType`, or nil for a GGML type Chronos does not read.
    public init?(ggmlType: Int) {
        guard let type = DType.allCases.first(where: { $0.ggmlType == ggmlType }) else { return nil }
        self = type
    }
}

/// Conversions between f32 and the 16-bit float formats.
///
/// bf16 has no Swift type: it is stored as `UInt16`, the high half of an IEEE f32.
public enum HalfPrecision {
    /// Widens a bf16 bit pattern to f32 (exact).
    @inlinable @inline(__always)
    public static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Narrows f32 to bf16 with round-to-nearest-even; NaN stays NaN.
    @inlinable @inline(__always)
    public static func bf16(from value: Float) -> UInt16 {
        if value.isNaN { return 0x7FC0 }
        let bits = value.bitPattern
        let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// Widens an IEEE binary16 bit pattern to f32 (exact).
    @inlinable @inline(__always)
    public static func float(fromF16 bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// Narrows f32 to IEEE binary16 with round-to-nearest-even.
    @inlinable @inline(__always)
    public static func f16(from value: Float) -> UInt16 {
        Float16(value).bitPattern
    }
}
