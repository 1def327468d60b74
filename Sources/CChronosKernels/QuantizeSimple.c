// Quantisers of GGML's 32-value formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), as llama.cpp's
// reference quantisers compute them, so that the same floats give the same bytes.

#pragma STDC FP_CONTRACT OFF

#include "ChronosQuant.h"
#include "QuantInternal.h"

#include <math.h>
#include <string.h>

/// The value of largest magnitude, with its sign.
static float signed_extreme(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        float v = fabsf(x[j]);
        if (v > amax) {
            amax = v;
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = INFINITY;
    *max = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

static int clamp_max(int value, int max) { return value < max ? value : max; }

void chronos_quantize_q8_0_block(const float *x, chronos_block_q8_0 *y) {
    y->d = chronos_float_to_half(chronos_quantize_32(x, y->qs));
}

static void quantize_q4_0_block(const float *x, chronos_block_q4_0 *y) {
    float d = signed_extreme(x, CHRONOS_QK) / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y->d = chronos_float_to_half(d);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = clamp_max((int8_t)(x[j] * id + 8.5f), 15);
        int high = clamp_max((int8_t)(x[j + CHRONOS_QK / 2] * id + 8.5f), 15);
        y->qs[j] = (uint8_t)(low | high << 4);
    }
}

static void quantize_q4_1_block(const float *x, chronos_block_q4_1 *y) {
    float min, max;
    min_max(x, CHRONOS_QK, &min, &max);
    float d = (max - min) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y->d = chronos_float_to_half(d);
    y->m = chronos_float_to_half(min);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = clamp_max((int8_t)((x[j] - min) * id + 0.5f), 15);
        int high = clamp_max((int8_t)((x[j + CHRONOS_QK / 2] - min) * id + 0.5f), 15);
        y->qs[j] = (uint8_t)(low | high << 4);
    }
}

/// Packs 32 five-bit values into a q5 block's nibbles and high bits.
static void pack_q5(const int values[CHRONOS_QK], uint8_t qs[CHRONOS_QK / 2], uint8_t qh[4]) {
    uint32_t high = 0;
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = values[j], upper = values[j + CHRONOS_QK / 2];
        qs[j] = (uint8_t)((low & 0x0F) | (upper & 0x0F) << 4);
        high |= (uint32_t)((low & 0x10) >> 4) << j;
        high |= (uint32_t)((upper & 0x10) >> 4) << (j + CHRONOS_QK / 2);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(high >> (8 * k));
}

static void quantize_q5_0_block(const float *x, chronos_block_q5_0 *y) {
    float d = signed_extreme(x, CHRONOS_QK) / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y->d = chronos_float_to_half(d);
    int values[CHRONOS_QK];
    for (int j = 0; j < CHRONOS_QK; j++) values[j] = clamp_max((int8_t)(x[j] * id + 16.5f), 31);
    pack_q5(values, y->qs, y->qh);
}

static void quantize_q5_1_block(const float *x, chronos_block_q5_1 *y) {
    float min, max;
    min_max(x, CHRONOS_QK, &min, &max);
    float d = (max - min) / 31.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y->d = chronos_float_to_half(d);
    y->m = chronos_float_to_half(min);
    int values[CHRONOS_QK];
    for (int j = 0; j < CHRONOS_QK; j++) values[j] = (int8_t)((x[j] - min) * id + 0.5f);
    pack_q5(values, y->qs, y->qh);
}

/// MXFP4 as llama.cpp's reference quantiser: e = ⌊log2 max |x|⌋ − 2 + 127, so the largest
/// magnitude lands in [4, 8) of the doubled values, and each value takes the nearest code (the
/// first on ties).
static void quantize_mxfp4_block(const float *x, chronos_block_mxfp4 *y) {
    float amax = 0;
    for (int j = 0; j < CHRONOS_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    y->e = amax > 0 ? (uint8_t)(floorf(log2f(amax)) - 2 + 127) : 0;
    const float d = chronos_e8m0_half(y->e);
    int codes[CHRONOS_QK];
    for (int j = 0; j < CHRONOS_QK; j++) {
        int best = 0;
        float best_error = fabsf((float)chronos_mxfp4_values[0] * d - x[j]);
        for (int q = 1; q < 16; q++) {
            const float error = fabsf((float)chronos_mxfp4_values[q] * d - x[j]);
            if (error < best_error) {
                best = q;
                best_error = error;
            }
        }
        codes[j] = best;
    }
    for (int j = 0; j < CHRONOS_QK / 2; j++) y->qs[j] = (uint8_t)(codes[j] | (codes[j + CHRONOS_QK / 2] << 4));
}

int chronos_quantize_simple(int type, const float *x, void *blocks, ptrdiff_t n) {
    ptrdiff_t count = n / CHRONOS_QK;
    for (ptrdiff_t i = 0; i < count; i++) {
        const float *v = x + i * CHRONOS_QK;
        switch (type) {
        case CHRONOS_Q8_0: chronos_quantize_q8_0_block(v, (chronos_block_q8_0 *)blocks + i); break;
        case CHRONOS_Q4_0: quantize_q4_0_block(v, (chronos_block_q4_0 *)blocks + i); break;
        case CHRONOS_Q4_1: quantize_q4_1_block(v, (chronos_block_q4_1 *)blocks + i); break;
        case CHRONOS_Q5_0: quantize_q5_0_block(v, (chronos_block_q5_0 *)blocks + i); break;
        case CHRONOS_Q5_1: quantize_q5_1_block(v, (chronos_block_q5_1 *)blocks + i); break;
        case CHRONOS_MXFP4: quantize_mxfp4_block(v, (chronos_block_mxfp4 *)blocks + i); break;
        default: return 0;
        }
    }
    return 1;
}
