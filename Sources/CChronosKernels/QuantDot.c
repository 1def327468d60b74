// Dot products of GGML block-format weights with quantised activations, in portable C: the
// arithmetic of llama.cpp's `ggml_vec_dot_*`. Activations are quantised per block to 8 bits
// (Q8_0, Q8_1 or Q8_K, after the weight type), each block's integer dot product is exact, and
// the block's scales are applied to it in float once.

#include "ChronosQuant.h"
#include "QuantInternal.h"

#include <math.h>
#include <string.h>

int chronos_quant_dot_type(int type) {
    switch (type) {
    case CHRONOS_Q4_0: case CHRONOS_Q5_0: case CHRONOS_Q8_0: case CHRONOS_MXFP4: return CHRONOS_Q8_0;
    case CHRONOS_Q4_1: case CHRONOS_Q5_1: return CHRONOS_Q8_1;
    case CHRONOS_Q2_K: case CHRONOS_Q3_K: case CHRONOS_Q4_K: case CHRONOS_Q5_K: case CHRONOS_Q6_K: return CHRONOS_Q8_K;
    default: return 0;
    }
}

// MARK: Activations

/// Q8_K: the value of largest magnitude maps to ∓127 through a negative scale, as llama.cpp's
/// quantiser does, and each 16 quants' sum is kept for the weights' minima.
static void quantize_block_q8_K(const float *x, chronos_block_q8_K *y) {
    float max = 0, amax = 0;
    for (int j = 0; j < CHRONOS_QK_K; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax == 0) {
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < CHRONOS_QK_K; j++) {
        int v = chronos_nearest(iscale * x[j]);
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < CHRONOS_QK_K / 16; j++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += y->qs[16 * j + l];
        y->bsums[j] = (int16_t)sum;
    }
    y->d = 1 / iscale;
}

void chronos_quantize_activations(int dot_type, const float *x, void *out, ptrdiff_t n) {
    switch (dot_type) {
    case CHRONOS_Q8_0: {
        chronos_block_q8_0 *y = out;
        for (ptrdiff_t b = 0; b < n / CHRONOS_QK; b++) chronos_quantize_q8_0_block(x + b * CHRONOS_QK, y + b);
        break;
    }
    case CHRONOS_Q8_1: {
        chronos_block_q8_1 *y = out;
        for (ptrdiff_t b = 0; b < n / CHRONOS_QK; b++) {
            const float d = chronos_quantize_32(x + b * CHRONOS_QK, y[b].qs);
            int sum = 0;
            for (int j = 0; j < CHRONOS_QK; j++) sum += y[b].qs[j];
            y[b].d = chronos_float_to_half(d);
            y[b].s = chronos_float_to_half(d * (float)sum);
        }
        break;
    }
    case CHRONOS_Q8_K: {
        chronos_block_q8_K *y = out;
        for (ptrdiff_t b = 0; b < n / CHRONOS_QK_K; b++) quantize_block_q8_K(x + b * CHRONOS_QK_K, y + b);
        break;
    }
    default: break;
    }
}

// MARK: One block of weights against one block of activations

static float half(uint16_t h) { return chronos_half_to_float(h); }

/// Σ q·y over one 32-value block: q the nibbles of `qs` (low for values 0–15, high for 16–31)
/// plus their fifth bits from `qh` where given, minus `offset`.
static int dot_nibbles_32(const uint8_t qs[16], uint32_t qh, int offset, const int8_t y[32]) {
    int sum = 0;
    for (int j = 0; j < CHRONOS_QK / 2; j++) {
        int low = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int high = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        sum += (low - offset) * y[j] + (high - offset) * y[j + 16];
    }
    return sum;
}

static uint32_t fifth_bits(const uint8_t qh[4]) { return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24; }

/// w·y for one block of `type` against its activation block: d_w·d_y·Σ q_w·q_y, plus for the
/// formats with a minimum m the term m·s_y (Q8_1) or −d_min·d_y·Σ m_j·Σ_{sub-block j} q_y (Q8_K).
static float dot_block(int type, const void *wb, const void *yb) {
    switch (type) {
    case CHRONOS_Q8_0: {
        const chronos_block_q8_0 *w = wb, *y = yb;
        int sum = 0;
        for (int j = 0; j < CHRONOS_QK; j++) sum += w->qs[j] * y->qs[j];
        return half(w->d) * half(y->d) * (float)sum;
    }
    case CHRONOS_Q4_0: {
        const chronos_block_q4_0 *w = wb;
        const chronos_block_q8_0 *y = yb;
        return half(w->d) * half(y->d) * (float)dot_nibbles_32(w->qs, 0, 8, y->qs);
    }
    case CHRONOS_MXFP4: {
        const chronos_block_mxfp4 *w = wb;
        const chronos_block_q8_0 *y = yb;
        int sum = 0;
        for (int j = 0; j < CHRONOS_QK / 2; j++) {
            sum += chronos_mxfp4_values[w->qs[j] & 0x0F] * y->qs[j] + chronos_mxfp4_values[w->qs[j] >> 4] * y->qs[j + CHRONOS_QK / 2];
        }
        return chronos_e8m0_half(w->e) * half(y->d) * (float)sum;
    }
    case CHRONOS_Q5_0: {
        const chronos_block_q5_0 *w = wb;
        const chronos_block_q8_0 *y = yb;
        return half(w->d) * half(y->d) * (float)dot_nibbles_32(w->qs, fifth_bits(w->qh), 16, y->qs);
    }
    case CHRONOS_Q4_1: {
        const chronos_block_q4_1 *w = wb;
        const chronos_block_q8_1 *y = yb;
        return half(w->d) * half(y->d) * (float)dot_nibbles_32(w->qs, 0, 0, y->qs) + half(w->m) * half(y->s);
    }
    case CHRONOS_Q5_1: {
        const chronos_block_q5_1 *w = wb;
        const chronos_block_q8_1 *y = yb;
        return half(w->d) * half(y->d) * (float)dot_nibbles_32(w->qs, fifth_bits(w->qh), 0, y->qs) + half(w->m) * half(y->s);
    }
    case CHRONOS_Q2_K: {
        const chronos_block_q2_K *w = wb;
        const chronos_block_q8_K *y = yb;
        // Sub-block j (16 values) is bits 2·(j/2 % 4) of bytes 32·(j/8) + 16·(j % 2) + l.
        int sum = 0, mins = 0;
        for (int j = 0; j < 16; j++) {
            const uint8_t *q = w->qs + 32 * (j / 8) + 16 * (j % 2);
            const int shift = 2 * ((j / 2) % 4);
            int s = 0;
            for (int l = 0; l < 16; l++) s += ((q[l] >> shift) & 3) * y->qs[16 * j + l];
            sum += (w->scales[j] & 0x0F) * s;
            mins += (w->scales[j] >> 4) * y->bsums[j];
        }
        return y->d * (half(w->d) * (float)sum - half(w->dmin) * (float)mins);
    }
    case CHRONOS_Q3_K: {
        const chronos_block_q3_K *w = wb;
        const chronos_block_q8_K *y = yb;
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            const int low = j < 8 ? w->scales[j] & 0x0F : w->scales[j - 8] >> 4;
            const int scale = (low | ((w->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
            // Laid out as q2_K; the high bit of value i (within its half) is bit (i / 32) of hmask[i % 32].
            const int index = 16 * (j % 2), shift = 2 * ((j / 2) % 4), bit = (j / 8) * 4 + (j / 2) % 4;
            const uint8_t *q = w->qs + 32 * (j / 8) + index;
            int s = 0;
            for (int l = 0; l < 16; l++) {
                int value = ((q[l] >> shift) & 3) - ((w->hmask[index + l] >> bit) & 1 ? 0 : 4);
                s += value * y->qs[16 * j + l];
            }
            sum += scale * s;
        }
        return half(w->d) * y->d * (float)sum;
    }
    case CHRONOS_Q4_K:
    case CHRONOS_Q5_K: {
        const chronos_block_q8_K *y = yb;
        const int five = type == CHRONOS_Q5_K;
        const chronos_block_q4_K *w4 = wb;
        const chronos_block_q5_K *w5 = wb;
        const uint16_t d = five ? w5->d : w4->d, dmin = five ? w5->dmin : w4->dmin;
        const uint8_t *packed = five ? w5->scales : w4->scales, *qs = five ? w5->qs : w4->qs;
        int sum = 0, mins = 0;
        // Sub-block j (32 values) is the low (even j) or high nibbles of bytes 32·(j/2) + l,
        // with bit j of qh[l] above them in q5_K.
        for (int j = 0; j < 8; j++) {
            int scale, min;
            if (j < 4) {
                scale = packed[j] & 63;
                min = packed[j + 4] & 63;
            } else {
                scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
                min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
            }
            const uint8_t *q = qs + 32 * (j / 2);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int value = (j % 2 ? q[l] >> 4 : q[l] & 0x0F) + (five ? ((w5->qh[l] >> j) & 1) << 4 : 0);
                s += value * y->qs[32 * j + l];
            }
            sum += scale * s;
            mins += min * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
        }
        return y->d * (half(d) * (float)sum - half(dmin) * (float)mins);
    }
    case CHRONOS_Q6_K: {
        const chronos_block_q6_K *w = wb;
        const chronos_block_q8_K *y = yb;
        int sum = 0;
        // Value 128·h + 32·k + l: low nibble of ql[64h + l + 32·(k % 2)] (high nibble for k ≥ 2),
        // bits 2k of qh[32h + l] above it; sub-block 8h + 2k + l / 16.
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 4; k++) {
                const uint8_t *ql = w->ql + 64 * h + 32 * (k % 2), *qh = w->qh + 32 * h;
                const int8_t *q8 = y->qs + 128 * h + 32 * k;
                int s[2] = { 0, 0 };
                for (int l = 0; l < 32; l++) {
                    int value = ((k < 2 ? ql[l] & 0x0F : ql[l] >> 4) | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                    s[l / 16] += value * q8[l];
                }
                sum += w->scales[8 * h + 2 * k] * s[0] + w->scales[8 * h + 2 * k + 1] * s[1];
            }
        }
        return half(w->d) * y->d * (float)sum;
    }
    default: return 0;
    }
}

// MARK: Kernels

void chronos_quant_matvec_portable(int type, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                                   const void *xq, float *y) {
    const ptrdiff_t blocks = cols / chronos_quant_block_elements(type);
    const size_t wbytes = (size_t)chronos_quant_block_bytes(type);
    const size_t xbytes = (size_t)chronos_quant_block_bytes(chronos_quant_dot_type(type));
    for (ptrdiff_t r = row0; r < row1; r++) {
        const char *row = (const char *)w + (size_t)r * (size_t)blocks * wbytes;
        float sum = 0;
        for (ptrdiff_t b = 0; b < blocks; b++) sum += dot_block(type, row + b * wbytes, (const char *)xq + b * xbytes);
        y[r] = sum;
    }
}

void chronos_quant_gemm_nt_portable(int type, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k,
                                    const void *aq, const void *b, float *c, ptrdiff_t ldc) {
    const ptrdiff_t blocks = k / chronos_quant_block_elements(type);
    const size_t abytes = (size_t)blocks * (size_t)chronos_quant_block_bytes(chronos_quant_dot_type(type));
    for (ptrdiff_t i = 0; i < m; i++) {
        const void *a = (const char *)aq + (size_t)i * abytes;
        chronos_quant_matvec_portable(type, b, col0, col1, k, a, c + i * ldc);
    }
}
