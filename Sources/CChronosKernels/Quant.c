// GGML's block formats: sizes and dequantisation, in portable C. The products are written so
// that each value is computed with the same float operations, in the same order, as gguf-py's
// numpy dequantisers: no multiply-add is fused, so both give the same bits.

#pragma STDC FP_CONTRACT OFF

#include "ChronosQuant.h"
#include "QuantInternal.h"

#include <string.h>

float chronos_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    uint32_t bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal: shift the mantissa up until its leading one is the implicit bit.
        exponent = 113;
        while ((mantissa & 0x400) == 0) {
            mantissa <<= 1;
            exponent -= 1;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
    }
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

int chronos_quant_block_elements(int type) {
    switch (type) {
    case CHRONOS_Q4_0: case CHRONOS_Q4_1: case CHRONOS_Q5_0: case CHRONOS_Q5_1: case CHRONOS_Q8_0: case CHRONOS_Q8_1:
    case CHRONOS_MXFP4:
        return CHRONOS_QK;
    case CHRONOS_Q2_K: case CHRONOS_Q3_K: case CHRONOS_Q4_K: case CHRONOS_Q5_K: case CHRONOS_Q6_K: case CHRONOS_Q8_K:
        return CHRONOS_QK_K;
    default:
        return 0;
    }
}

int chronos_quant_block_bytes(int type) {
    switch (type) {
    case CHRONOS_Q4_0: return sizeof(chronos_block_q4_0);
    case CHRONOS_Q4_1: return sizeof(chronos_block_q4_1);
    case CHRONOS_Q5_0: return sizeof(chronos_block_q5_0);
    case CHRONOS_Q5_1: return sizeof(chronos_block_q5_1);
    case CHRONOS_Q8_0: return sizeof(chronos_block_q8_0);
    case CHRONOS_Q8_1: return sizeof(chronos_block_q8_1);
    case CHRONOS_Q2_K: return sizeof(chronos_block_q2_K);
    case CHRONOS_Q3_K: return sizeof(chronos_block_q3_K);
    case CHRONOS_Q4_K: return sizeof(chronos_block_q4_K);
    case CHRONOS_Q5_K: return sizeof(chronos_block_q5_K);
    case CHRONOS_Q6_K: return sizeof(chronos_block_q6_K);
    case CHRONOS_Q8_K: return sizeof(chronos_block_q8_K);
    case CHRONOS_MXFP4: return sizeof(chronos_block_mxfp4);
    default: return 0;
    }
}

const int8_t chronos_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static void dequantize_mxfp4(const chronos_block_mxfp4 *b, float *y) {
    const float d = chronos_e8m0_half(b->e);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        y[j] = d * (float)chronos_mxfp4_values[b->qs[j] & 0x0F];
        y[j + CHRONOS_QK / 2] = d * (float)chronos_mxfp4_values[b->qs[j] >> 4];
    }
}

static void dequantize_q4_0(const chronos_block_q4_0 *b, float *y) {
    float d = chronos_half_to_float(b->d);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        y[j] = (float)((b->qs[j] & 0x0F) - 8) * d;
        y[j + CHRONOS_QK / 2] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

static void dequantize_q4_1(const chronos_block_q4_1 *b, float *y) {
    float d = chronos_half_to_float(b->d), m = chronos_half_to_float(b->m);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        y[j] = (float)(b->qs[j] & 0x0F) * d + m;
        y[j + CHRONOS_QK / 2] = (float)(b->qs[j] >> 4) * d + m;
    }
}

/// The fifth bits of a q5 block, bit i for value i.
static uint32_t high_bits(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dequantize_q5_0(const chronos_block_q5_0 *b, float *y) {
    float d = chronos_half_to_float(b->d);
    uint32_t qh = high_bits(b->qh);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = (b->qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int high = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = (float)(low - 16) * d;
        y[j + CHRONOS_QK / 2] = (float)(high - 16) * d;
    }
}

static void dequantize_q5_1(const chronos_block_q5_1 *b, float *y) {
    float d = chronos_half_to_float(b->d), m = chronos_half_to_float(b->m);
    uint32_t qh = high_bits(b->qh);
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = (b->qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int high = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = (float)low * d + m;
        y[j + CHRONOS_QK / 2] = (float)high * d + m;
    }
}

static void dequantize_q8_0(const chronos_block_q8_0 *b, float *y) {
    float d = chronos_half_to_float(b->d);
    for (int j = 0; j < CHRONOS_QK; j++) y[j] = (float)b->qs[j] * d;
}

static void dequantize_q2_K(const chronos_block_q2_K *b, float *y) {
    float d = chronos_half_to_float(b->d), dmin = chronos_half_to_float(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    // Two halves of 128 values; each reads 32 bytes of q four times, two bits at a time, and
    // each 16 values share one 4-bit scale and 4-bit min.
    for (int half = 0; half < 2; half++) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; part++) {
                uint8_t sc = b->scales[is++];
                float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * part] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

/// Unpacks the sixteen 6-bit scales of a q3_K block from its 12 bytes: low 4 bits from bytes
/// 0-7 (low then high nibbles), high 2 bits from bytes 8-11.
static void q3_K_scales(const uint8_t packed[12], int scales[16]) {
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? packed[j] & 0x0F : packed[j - 8] >> 4;
        int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (low | high << 4) - 32;
    }
}

static void dequantize_q3_K(const chronos_block_q3_K *b, float *y) {
    float d = chronos_half_to_float(b->d);
    int scales[16];
    q3_K_scales(b->scales, scales);
    const uint8_t *q = b->qs;
    int is = 0;
    uint8_t mask = 1;
    for (int half = 0; half < 2; half++) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; part++) {
                float dl = d * (float)scales[is++];
                for (int l = 0; l < 16; l++) {
                    int index = l + 16 * part;
                    int value = (q[index] >> shift) & 3;
                    if (!(b->hmask[index] & mask)) value -= 4;
                    *y++ = dl * (float)value;
                }
            }
            mask <<= 1;
        }
        q += 32;
    }
}

/// The 6-bit scale and min of sub-block j of a q4_K or q5_K block.
static void k4_scale_min(int j, const uint8_t packed[12], int *scale, int *min) {
    if (j < 4) {
        *scale = packed[j] & 63;
        *min = packed[j + 4] & 63;
    } else {
        *scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
        *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
}

/// A q4_K block, or a q5_K block with its fifth bits `qh` (NULL for q4_K): sub-blocks 2j and
/// 2j + 1 are the low and high nibbles of 32 bytes, above them bits 2j and 2j + 1 of qh.
static void dequantize_k4(uint16_t d16, uint16_t dmin16, const uint8_t scales[12], const uint8_t *q, const uint8_t *qh, float *y) {
    float d = chronos_half_to_float(d16), dmin = chronos_half_to_float(dmin16);
    for (int j = 0; j < 8; j += 2) {
        int sc, m;
        k4_scale_min(j, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k4_scale_min(j + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 0x0F) + (qh ? ((qh[l] >> j) & 1) << 4 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) + (qh ? ((qh[l] >> (j + 1)) & 1) << 4 : 0)) - m2;
        q += 32;
    }
}

static void dequantize_q6_K(const chronos_block_q6_K *b, float *y) {
    float d = chronos_half_to_float(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void chronos_dequantize(int type, const void *blocks, float *out, ptrdiff_t n) {
    int per_block = chronos_quant_block_elements(type);
    if (per_block == 0) return;
    ptrdiff_t count = n / per_block;
    for (ptrdiff_t i = 0; i < count; i++) {
        float *y = out + i * per_block;
        switch (type) {
        case CHRONOS_Q4_0: dequantize_q4_0((const chronos_block_q4_0 *)blocks + i, y); break;
        case CHRONOS_Q4_1: dequantize_q4_1((const chronos_block_q4_1 *)blocks + i, y); break;
        case CHRONOS_Q5_0: dequantize_q5_0((const chronos_block_q5_0 *)blocks + i, y); break;
        case CHRONOS_Q5_1: dequantize_q5_1((const chronos_block_q5_1 *)blocks + i, y); break;
        case CHRONOS_Q8_0: dequantize_q8_0((const chronos_block_q8_0 *)blocks + i, y); break;
        case CHRONOS_Q2_K: dequantize_q2_K((const chronos_block_q2_K *)blocks + i, y); break;
        case CHRONOS_Q3_K: dequantize_q3_K((const chronos_block_q3_K *)blocks + i, y); break;
        case CHRONOS_Q4_K: {
            const chronos_block_q4_K *b = (const chronos_block_q4_K *)blocks + i;
            dequantize_k4(b->d, b->dmin, b->scales, b->qs, NULL, y);
            break;
        }
        case CHRONOS_Q5_K: {
            const chronos_block_q5_K *b = (const chronos_block_q5_K *)blocks + i;
            dequantize_k4(b->d, b->dmin, b->scales, b->qs, b->qh, y);
            break;
        }
        case CHRONOS_Q6_K: dequantize_q6_K((const chronos_block_q6_K *)blocks + i, y); break;
        case CHRONOS_MXFP4: dequantize_mxfp4((const chronos_block_mxfp4 *)blocks + i, y); break;
        default: break;
        }
    }
}

void chronos_quantize(int type, const float *x, void *blocks, ptrdiff_t n, const float *importance) {
    // llama.cpp weighs the 32-value formats by importance only together with the mean square
    // of a whole row, which a run of blocks does not carry: they are quantised as its reference
    // quantisers do, unweighted.
    if (chronos_quantize_simple(type, x, blocks, n)) return;
    chronos_quantize_k(type, x, blocks, n, importance);
}
