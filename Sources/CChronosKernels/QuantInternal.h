#ifndef CHRONOS_QUANT_INTERNAL_H
#define CHRONOS_QUANT_INTERNAL_H

// Helpers shared by the block-format files, not part of the kernels' interface.

#include "ChronosQuant.h"

#include <string.h>

/// Widens an IEEE binary16 bit pattern to f32 (exact).
float chronos_half_to_float(uint16_t h);

/// Narrows f32 to IEEE binary16, round to nearest with ties to even, as GGML's conversion does.
static inline uint16_t chronos_float_to_half(float value) {
    _Float16 half = (_Float16)value;
    uint16_t bits;
    memcpy(&bits, &half, sizeof bits);
    return bits;
}

/// The e2m1 values of MXFP4's 4-bit codes, doubled to integers (GGML's `kvalues_mxfp4`).
extern const int8_t chronos_mxfp4_values[16];

/// Half of MXFP4's block scale 2^(e − 127), as GGML's `GGML_E8M0_TO_FP32_HALF` computes it
/// (exact for every e, subnormal below e = 2): the factor on the doubled values.
static inline float chronos_e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/// Quantises one block of 32 values to Q8_0.
void chronos_quantize_q8_0_block(const float *x, chronos_block_q8_0 *y);

/// Quantises n values to one of the 32-value formats; 0 when `type` is not one of them.
int chronos_quantize_simple(int type, const float *x, void *blocks, ptrdiff_t n);

/// Quantises n values to one of the K formats, weighing by `importance` (one weight a value)
/// when it is not NULL; 0 when `type` is not one of them.
int chronos_quantize_k(int type, const float *x, void *blocks, ptrdiff_t n, const float *importance);

#endif
