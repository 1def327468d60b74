/// MXFP4 as Hugging Face's gpt-oss checkpoints store it: `*_blocks` `[…, G, 16]` u8 (a block's
/// 32 4-bit codes, code 2j in the low nibble of byte j and 2j + 1 in the high) and `*_scales`
/// `[…, G]` u8 (each block's E8M0 exponent), for rows of G·32 values.
public enum HuggingFaceMXFP4 {
    /// The `mxfp4` tensor `[…, G·32]` of `blocks` `[…, G, 16]` and `scales` `[…, G]` (both u8, of
    /// matching leading shape; the caller checks), its codes reordered to GGML's layout (code i
    /// in byte i % 16, the high nibble for i ≥ 16).
    public static func tensor(blocks: Tensor, scales: Tensor) -> Tensor {
        precondition(
            blocks.dtype == .u8 && scales.dtype == .u8 && blocks.shape.last == 16 && Array(blocks.shape.dropLast()) == scales.shape,
            "MXFP4 blocks \(blocks.shape) and scales \(scales.shape) do not match")
        var shape = scales.shape
        shape[shape.count - 1] *= DType.mxfp4.blockElements
        let out = Tensor(zeros: shape, dtype: .mxfp4)
        let codes = blocks.contiguous(), exponents = scales.contiguous()
        let source = UnsafeRawPointer(codes.rawPointer).assumingMemoryBound(to: UInt8.self)
        let exponent = UnsafeRawPointer(exponents.rawPointer).assumingMemoryBound(to: UInt8.self)
        let target = out.rawPointer.assumingMemoryBound(to: UInt8.self)
        for block in 0..<scales.count {
            let from = source + block * 16, to = target + block * DType.mxfp4.blockBytes
            to[0] = exponent[block]
            // Code i of the block sits in byte i / 2, in the high nibble for odd i.
            func code(_ i: Int) -> UInt8 { i % 2 == 0 ? from[i / 2] & 0x0F : from[i / 2] >> 4 }
            for j in 0..<16 { to[1 + j] = code(j) | code(j + 16) << 4 }
        }
        return out
    }
}
