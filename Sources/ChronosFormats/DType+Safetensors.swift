import ChronosTensor

extension DType {
    /// The dtype a safetensors header names `name` (`"F32"`, `"BF16"`, …), or nil if unsupported.
    public init?(safetensorsName name: String) {
        switch name {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "I8": self = .i8
        case "U8": self = .u8
        case "I32": self = .i32
        case "I64": self = .i64
        default: return nil
        }
    }

    /// The name a safetensors header uses for this dtype; a quantised tensor is stored as its
    /// blocks' bytes.
    public var safetensorsName: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .i8: "I8"
        case .u8: "U8"
        case .i32: "I32"
        case .i64: "I64"
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .mxfp4: "U8"
        }
    }

    /// The `__metadata__` key that marks a tensor stored as the bytes of a block format (`U8`
    /// rows of whole blocks); its value is the type's name, `q4_k` for example.
    public static func quantizedMetadataKey(tensor name: String) -> String { quantizedMetadataPrefix + name }

    /// The prefix of `quantizedMetadataKey`.
    static let quantizedMetadataPrefix = "chronos.dtype."
}
