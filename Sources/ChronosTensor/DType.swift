/// The element type of a tensor's storage.
///
/// Floating-point types are what kernels compute on; the integer types exist so that metadata
/// tensors (token ids, counters) read from checkpoints keep their exact values.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, i8, u8, i32, i64

    /// Bytes one element occupies.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i8, .u8: 1
        case .i64: 8
        }
    }

    /// Whether kernels can compute on this type (directly or by widening to f32).
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 }
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
