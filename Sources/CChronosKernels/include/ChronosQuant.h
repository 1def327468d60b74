#ifndef CHRONOS_QUANT_H
#define CHRONOS_QUANT_H

// GGML's block formats, bit for bit: the layouts llama.cpp's GGUF files and gguf-py use. Every
// scale named `d`, `m` or `dmin` is an IEEE binary16 bit pattern unless its type says float.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Values in a block of the simple formats.
#define CHRONOS_QK 32
/// Values in a super-block of the K formats.
#define CHRONOS_QK_K 256

/// The block formats, numbered as GGML numbers them (`ggml_type`).
typedef enum {
    CHRONOS_Q4_0 = 2,
    CHRONOS_Q4_1 = 3,
    CHRONOS_Q5_0 = 6,
    CHRONOS_Q5_1 = 7,
    CHRONOS_Q8_0 = 8,
    CHRONOS_Q8_1 = 9,
    CHRONOS_Q2_K = 10,
    CHRONOS_Q3_K = 11,
    CHRONOS_Q4_K = 12,
    CHRONOS_Q5_K = 13,
    CHRONOS_Q6_K = 14,
    CHRONOS_Q8_K = 15,
    CHRONOS_MXFP4 = 39,
} chronos_quant_type;

/// x = d · (q - 8), q the low then high nibbles of `qs` (value i in byte i % 16, high for i ≥ 16).
typedef struct { uint16_t d; uint8_t qs[CHRONOS_QK / 2]; } chronos_block_q4_0;
/// x = d · q + m, nibbles as q4_0.
typedef struct { uint16_t d, m; uint8_t qs[CHRONOS_QK / 2]; } chronos_block_q4_1;
/// x = d · (q - 16), q's fifth bit i in bit i of the little-endian `qh`.
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[CHRONOS_QK / 2]; } chronos_block_q5_0;
/// x = d · q + m, bits as q5_0.
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[CHRONOS_QK / 2]; } chronos_block_q5_1;
/// x = d · q.
typedef struct { uint16_t d; int8_t qs[CHRONOS_QK]; } chronos_block_q8_0;
/// x = d · q, with s = d · Σ q (the activations of q4_1 and q5_1 dot products).
typedef struct { uint16_t d, s; int8_t qs[CHRONOS_QK]; } chronos_block_q8_1;
/// 16 sub-blocks of 16: x = d · (scales & 15) · q - dmin · (scales >> 4), q 2 bits.
typedef struct { uint8_t scales[CHRONOS_QK_K / 16]; uint8_t qs[CHRONOS_QK_K / 4]; uint16_t d, dmin; } chronos_block_q2_K;
/// 16 sub-blocks of 16: x = d · (s - 32) · (q - 4 · !hmask bit), q 2 low bits, 6-bit scales s packed in 12 bytes.
typedef struct { uint8_t hmask[CHRONOS_QK_K / 8]; uint8_t qs[CHRONOS_QK_K / 4]; uint8_t scales[12]; uint16_t d; } chronos_block_q3_K;
/// 8 sub-blocks of 32: x = d · sc · q - dmin · m, q 4 bits, 6-bit sc and m packed in 12 bytes.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[CHRONOS_QK_K / 2]; } chronos_block_q4_K;
/// As q4_K with a fifth bit per value in `qh`.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[CHRONOS_QK_K / 8]; uint8_t qs[CHRONOS_QK_K / 2]; } chronos_block_q5_K;
/// 16 sub-blocks of 16: x = d · scales · (q - 32), q's low 4 bits in `ql`, high 2 in `qh`.
typedef struct { uint8_t ql[CHRONOS_QK_K / 2]; uint8_t qh[CHRONOS_QK_K / 4]; int8_t scales[CHRONOS_QK_K / 16]; uint16_t d; } chronos_block_q6_K;
/// x = d · q with a float d, and the sums of each 16 q (the activations of the K formats' dot products).
typedef struct { float d; int8_t qs[CHRONOS_QK_K]; int16_t bsums[CHRONOS_QK_K / 16]; } chronos_block_q8_K;

/// OCP microscaling FP4: x = 2^(e − 127) · v(q), v the e2m1 value of the 4-bit code q
/// (0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6; bit 3 the sign), e an unbiased-by-127 power of two
/// (E8M0); codes as q4_0 (value i in byte i % 16, high nibble for i ≥ 16).
typedef struct { uint8_t e; uint8_t qs[CHRONOS_QK / 2]; } chronos_block_mxfp4;

_Static_assert(sizeof(chronos_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(chronos_block_mxfp4) == 17, "mxfp4 block");
_Static_assert(sizeof(chronos_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(chronos_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(chronos_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(chronos_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(chronos_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(chronos_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(chronos_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(chronos_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(chronos_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(chronos_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(chronos_block_q8_K) == 292, "q8_K block");

/// Values per block of `type`, or 0 for a type that is not a block format here.
int chronos_quant_block_elements(int type);

/// Bytes per block of `type`, or 0.
int chronos_quant_block_bytes(int type);

/// Dequantises n values of `type` (a whole number of blocks) at `blocks` to f32.
void chronos_dequantize(int type, const void *blocks, float *out, ptrdiff_t n);

/// Quantises n values (a whole number of blocks) to `type` as llama.cpp's quantiser does;
/// `importance` (n non-negative weights, or NULL for none) weighs each value's squared error in
/// the K formats' scale search, as llama.cpp's importance matrix does. The 32-value formats
/// ignore it.
void chronos_quantize(int type, const float *x, void *blocks, ptrdiff_t n, const float *importance);

/// The block format a weight type's dot product takes its activations in: Q8_0 for Q4_0, Q5_0,
/// Q8_0 and MXFP4; Q8_1 for Q4_1 and Q5_1; Q8_K for the K formats.
int chronos_quant_dot_type(int type);

/// Quantises n activations (a whole number of blocks) to `dot_type` (Q8_0, Q8_1 or Q8_K).
void chronos_quantize_activations(int dot_type, const float *x, void *out, ptrdiff_t n);

/// y[r] = Σ_c w[r, c] · x[c] for rows r in [row0, row1) of row-major `type` weights (cols / block
/// blocks a row), with x already quantised by `chronos_quantize_activations`: the portable C
/// kernel, for processors without an instruction set's kernels.
void chronos_quant_matvec_portable(int type, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                                   const void *xq, float *y);

/// c[i, j] = Σ_p a[i, p] · b[j, p] for i < m and j in [col0, col1): m activation rows quantised by
/// `chronos_quantize_activations` (k values each, rows back to back) times row-major `type`
/// weights b; the portable C kernel.
void chronos_quant_gemm_nt_portable(int type, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k,
                                    const void *aq, const void *b, float *c, ptrdiff_t ldc);

#ifdef __cplusplus
}
#endif

#endif
