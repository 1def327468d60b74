#ifndef CHRONOS_QUANT_INTERNAL_H
#define CHRONOS_QUANT_INTERNAL_H

// Helpers shared by the block-format files, not part of the kernels' interface.

#include "ChronosQuant.h"

#include <math.h>
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

/// roundf(v), halves away from zero, for |v| ≤ 128: the truncation plus the sign where the
/// fraction left is half or more, all exact. It stays in registers and vectorises, where
/// roundf is a library call on processors without SSE4.1's rounding instruction.
static inline int chronos_round_half_away(float v) {
    const int t = (int)v;
    const float fraction = v - (float)t;
    return t + (fraction >= 0.5f) - (fraction <= -0.5f);
}

/// Rounds to the nearest integer, ties to even, as GGML rounds: adding 1.5 · 2^23 puts the
/// integer in the low mantissa bits. Exact for |value| < 2^22.
static inline int chronos_nearest(float value) {
    float shifted = value + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007FFFFF) - 0x00400000;
}

/// q = round(x / d) for 32 values with d = max |x| / 127, halves away from zero, as llama.cpp's
/// reference Q8_0 and Q8_1 quantisers; returns d.
static inline float chronos_quantize_32(const float *x, int8_t *qs) {
    float amax = 0;
    for (int j = 0; j < CHRONOS_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < CHRONOS_QK; j++) qs[j] = (int8_t)chronos_round_half_away(x[j] * id);
    return d;
}

/// Quantises one block of 32 values to Q8_0.
void chronos_quantize_q8_0_block(const float *x, chronos_block_q8_0 *y);

/// Quantises n values to one of the 32-value formats; 0 when `type` is not one of them.
int chronos_quantize_simple(int type, const float *x, void *blocks, ptrdiff_t n);

/// Quantises n values to one of the K formats, weighing by `importance` (one weight a value)
/// when it is not NULL; 0 when `type` is not one of them.
int chronos_quantize_k(int type, const float *x, void *blocks, ptrdiff_t n, const float *importance);

#endif
