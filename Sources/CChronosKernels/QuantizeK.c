// Quantisers of GGML's K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), computing what llama.cpp's
// computes: without an importance matrix its reference quantisers (`quantize_row_qN_K_ref`),
// with one its weighted quantisers (`quantize_qN_K` given `quant_weights`). Each scale search
// repeats llama.cpp's float operations in the same order, with no multiply-add fused, so the
// same floats give the same bytes.
//
// A super-block is 256 values in sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K). Each
// sub-block gets its own scale (and, for the affine formats, its own min) from a search that
// minimises a weighted squared or absolute error; those scales are themselves quantised to 4,
// 6 or 8 bits against one half-precision factor per super-block, and the values are then
// re-rounded against the scales as stored.

#pragma STDC FP_CONTRACT OFF

#include "ChronosQuant.h"
#include "QuantInternal.h"

#include <math.h>
#include <string.h>

/// Below this largest magnitude a group counts as all zero.
#define ZERO_GROUP 1e-15f

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }
static inline int clamp_int(int value, int low, int high) { return max_int(low, min_int(high, value)); }

/// The value of largest magnitude among n, with its sign; its magnitude in `amax`.
static float signed_extreme(const float *x, int n, float *amax) {
    float extreme = 0;
    *amax = 0;
    for (int i = 0; i < n; i++) {
        float magnitude = fabsf(x[i]);
        if (magnitude > *amax) {
            *amax = magnitude;
            extreme = x[i];
        }
    }
    return extreme;
}

// MARK: - Scale searches

/// Rounds iscale · x to levels l in [-nmax, nmax) and sums Σ w x l and Σ w l² over them, w the
/// weights or x² without them; writes l + offset to L unless L is NULL.
static void symmetric_sums(int n, int nmax, const float *x, const float *weights, float iscale, int8_t *L, int offset,
                           float *sumlx, float *suml2) {
    *sumlx = *suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(chronos_nearest(iscale * x[i]), -nmax, nmax - 1);
        if (L) L[i] = (int8_t)(l + offset);
        float w = weights ? weights[i] : x[i] * x[i];
        *sumlx += w * x[i] * (float)l;
        *suml2 += w * (float)l * (float)l;
    }
}

/// x ≈ s · (L - nmax) with L in [0, 2·nmax): the scale s minimising Σ w (x - s·l)², w the
/// weights or x² without them, over the 19 trial inverse scales -(nmax + k/10) / x_extreme
/// (GGML's `make_qx_quants` with its squared-value weighting).
static float symmetric_scale(int n, int nmax, const float *x, int8_t *L, const float *weights) {
    float amax;
    float extreme = signed_extreme(x, n, &amax);
    if (amax < ZERO_GROUP) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    float sumlx, suml2;
    symmetric_sums(n, nmax, x, weights, (float)-nmax / extreme, L, nmax, &sumlx, &suml2);
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        float iscale = -((float)nmax + 0.1f * (float)step) / extreme;
        symmetric_sums(n, nmax, x, weights, iscale, NULL, 0, &sumlx, &suml2);
        // A larger (Σ w x l)² / Σ w l² is a smaller weighted error at the best scale.
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clamp_int(chronos_nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/// Q3_K's symmetric search without an importance matrix (GGML's `make_q3_quants`): round
/// against -nmax / x_extreme, then move single values to the level that most improves
/// (Σ w x l)² / Σ w l², w = x², for up to five passes.
static float q3_scale(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    float extreme = signed_extreme(x, n, &amax);
    if (amax < ZERO_GROUP) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    float sumlx, suml2;
    symmetric_sums(n, nmax, x, NULL, (float)-nmax / extreme, L, 0, &sumlx, &suml2);
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int l = clamp_int(chronos_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * (float)l;
            sl2 += w * (float)l * (float)l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (changed == 0) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// How the affine search tries inverse scales: (rmin + rdelta · k + nmax) / (max - min) for k
/// in [0, steps], measuring absolute (`absolute`) or squared error.
typedef struct {
    float rmin, rdelta;
    int steps;
    int absolute;
} affine_search;

/// x ≈ s · L - m with L in [0, nmax] and m ≥ 0: least-squares fits of s and m to each trial
/// rounding, keeping the one of least weighted error (GGML's `make_qkx2_quants`, and
/// `make_qkx3_quants` given weights). Returns s; m in `the_min`.
static float affine_scale(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                          affine_search search) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(chronos_nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = search.absolute ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    uint8_t trial[32];
    for (int step = 0; step <= search.steps; step++) {
        iscale = (search.rmin + search.rdelta * (float)step + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(chronos_nearest(iscale * (x[i] - min)), 0, nmax);
            trial[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        // Weighted least squares of x on (l, 1): D is the normal equations' determinant.
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)trial[i] + this_min - x[i];
            diff = search.absolute ? fabsf(diff) : diff * diff;
            error += weights[i] * diff;
        }
        if (error < best_error) {
            memcpy(L, trial, (size_t)n);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/// Non-negative x ≈ s · L with L in [0, nmax], minimising Σ w (x - s·L)² (GGML's
/// `make_qp_quants`): the best of nine trial inverse scales (nmax + k/10) / max, then single
/// levels moved while that improves the fit. Used to quantise the sub-block scales themselves.
/// L is stored as bytes, so a negative level wraps as it does in GGML.
static float positive_scale(int n, int nmax, const float *x, uint8_t *L, const float *weights) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < ZERO_GROUP) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)chronos_nearest(iscale * x[i]);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)L[i];
        best_error += weights[i] * diff * diff;
    }
    for (int step = -4; step <= 4; step++) {
        if (step == 0) continue;
        float trial_iscale = (0.1f * (float)step + (float)nmax) / max;
        float trial_scale = 1 / trial_iscale;
        float error = 0;
        for (int i = 0; i < n; i++) {
            int l = min_int(nmax, chronos_nearest(trial_iscale * x[i]));
            float diff = x[i] - trial_scale * (float)l;
            error += weights[i] * diff * diff;
        }
        if (error < best_error) {
            best_error = error;
            iscale = trial_iscale;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = min_int(nmax, chronos_nearest(iscale * x[i]));
        L[i] = (uint8_t)l;
        float w = weights[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = weights[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            int l = min_int(nmax, chronos_nearest(x[i] * sl2 / slx));
            if (l == L[i]) continue;
            slx += w * x[i] * (float)l;
            sl2 += w * (float)l * (float)l;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (changed == 0) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// MARK: - Re-rounding against the stored scales

/// L = clamp(round((x + m) / d), 0, nmax) for one sub-block; left as the search set it when
/// the stored scale d is zero.
static void affine_levels(const float *x, int n, int nmax, float d, float m, uint8_t *L) {
    if (d == 0) return;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)clamp_int(chronos_nearest((x[i] + m) / d), 0, nmax);
}

/// L = clamp(round(x / d), -half, half - 1) + half for one sub-block; left as the search set
/// it when the stored scale d is zero.
static void symmetric_levels(const float *x, int n, int half, float d, int8_t *L) {
    if (d == 0) return;
    for (int i = 0; i < n; i++) L[i] = (int8_t)(clamp_int(chronos_nearest(x[i] / d), -half, half - 1) + half);
}

/// Each block's share of sigma² (mean square of its 256 values, times `factor`), which the
/// weighted quantisers add to x² before weighing it by importance.
static float mean_square(const float *x, float factor) {
    float sum = 0;
    for (int i = 0; i < CHRONOS_QK_K; i++) sum += x[i] * x[i];
    return factor * sum / CHRONOS_QK_K;
}

/// w = importance · √(σ² + x²) for n values.
static void importance_weights(const float *x, const float *importance, int n, float sigma2, float *w) {
    for (int i = 0; i < n; i++) w[i] = importance[i] * sqrtf(sigma2 + x[i] * x[i]);
}

// MARK: - Packing

/// Four 2-bit levels a byte: value 128·h + 32·s + l in bits 2s of byte 32·h + l.
static void pack_2bit(const uint8_t L[CHRONOS_QK_K], uint8_t qs[CHRONOS_QK_K / 4]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *v = L + 128 * h;
        for (int l = 0; l < 32; l++) qs[32 * h + l] = (uint8_t)(v[l] | v[l + 32] << 2 | v[l + 64] << 4 | v[l + 96] << 6);
    }
}

/// Q3_K's sixteen 6-bit scale codes in 12 bytes: low nibbles in bytes 0-7 (low then high
/// half), the two high bits of code j at bits 2·(j / 4) of byte 8 + j % 4.
static void pack_q3_scales(const int codes[16], uint8_t packed[12]) {
    memset(packed, 0, 12);
    for (int j = 0; j < 16; j++) {
        int low = codes[j] & 0x0F, high = (codes[j] >> 4) & 3;
        packed[j % 8] |= (uint8_t)(j < 8 ? low : low << 4);
        packed[8 + j % 4] |= (uint8_t)(high << (2 * (j / 4)));
    }
}

/// Q4_K's and Q5_K's eight 6-bit scales and mins in 12 bytes: sub-blocks 0-3 whole in bytes
/// 0-3 and 4-7, sub-blocks 4-7 as nibbles in bytes 8-11 with their top two bits in the top
/// bits of bytes 0-7.
static void pack_k4_scales(const uint8_t scales[8], const uint8_t mins[8], uint8_t packed[12]) {
    for (int j = 0; j < 4; j++) {
        packed[j] = scales[j];
        packed[j + 4] = mins[j];
    }
    for (int j = 4; j < 8; j++) {
        packed[j + 4] = (uint8_t)((scales[j] & 0x0F) | (mins[j] & 0x0F) << 4);
        packed[j - 4] |= (uint8_t)((scales[j] >> 4) << 6);
        packed[j] |= (uint8_t)((mins[j] >> 4) << 6);
    }
}

/// The stored scale and min codes of sub-block j, as `pack_k4_scales` wrote them.
static void unpack_k4_scale(const uint8_t packed[12], int j, int *scale, int *min) {
    if (j < 4) {
        *scale = packed[j] & 63;
        *min = packed[j + 4] & 63;
    } else {
        *scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
        *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
}

// MARK: - Q2_K

static void quantize_q2_K_block(const float *x, chronos_block_q2_K *y, const float *importance) {
    uint8_t L[CHRONOS_QK_K];
    float scales[16], mins[16];
    if (importance == NULL) {
        // Each sub-block weighs |x|, searches in absolute error, and its scale and min are coded
        // in 4 bits against the largest of each.
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            float weights[16];
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = affine_scale(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], (affine_search){-0.5f, 0.1f, 15, 1});
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        memset(y->scales, 0, sizeof y->scales);
        y->d = chronos_float_to_half(0.0f);
        y->dmin = chronos_float_to_half(0.0f);
        if (max_scale > 0) {
            float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)chronos_nearest(iscale * scales[j]);
            y->d = chronos_float_to_half(max_scale / 15.0f);
        }
        if (max_min > 0) {
            float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; j++) y->scales[j] |= (uint8_t)(chronos_nearest(iscale * mins[j]) << 4);
            y->dmin = chronos_float_to_half(max_min / 15.0f);
        }
    } else {
        // Weighted: importance · √(σ² + x²) per value, a finer squared-error search, and the
        // scales and mins coded by their own weighted search with each sub-block's total weight.
        float sigma2 = mean_square(x, 1.0f);
        float sub_weight[16];
        uint8_t scale_codes[16], min_codes[16];
        for (int j = 0; j < 16; j++) {
            float weights[16];
            importance_weights(x + 16 * j, importance + 16 * j, 16, sigma2, weights);
            sub_weight[j] = 0;
            for (int l = 0; l < 16; l++) sub_weight[j] += weights[l];
            scales[j] = affine_scale(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], (affine_search){-0.9f, 0.05f, 36, 0});
        }
        float d = positive_scale(16, 15, scales, scale_codes, sub_weight);
        float dmin = positive_scale(16, 15, mins, min_codes, sub_weight);
        y->d = chronos_float_to_half(d);
        y->dmin = chronos_float_to_half(dmin);
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)(scale_codes[j] | min_codes[j] << 4);
    }
    float d = chronos_half_to_float(y->d), dmin = chronos_half_to_float(y->dmin);
    for (int j = 0; j < 16; j++) {
        affine_levels(x + 16 * j, 16, 3, d * (float)(y->scales[j] & 0x0F), dmin * (float)(y->scales[j] >> 4), L + 16 * j);
    }
    pack_2bit(L, y->qs);
}

// MARK: - Q3_K

static void quantize_q3_K_block(const float *x, chronos_block_q3_K *y, const float *importance) {
    int8_t L[CHRONOS_QK_K];
    float scales[16];
    int codes[16];
    if (importance == NULL) {
        // Scales coded in 6 bits, signed, against the scale of largest magnitude.
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = q3_scale(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_scale != 0) {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) codes[j] = clamp_int((int8_t)chronos_nearest(iscale * scales[j]), -32, 31) + 32;
            pack_q3_scales(codes, y->scales);
            y->d = chronos_float_to_half(1 / iscale);
        } else {
            memset(y->scales, 0, sizeof y->scales);
            y->d = chronos_float_to_half(0.0f);
        }
    } else {
        float sigma2 = mean_square(x, 2.0f);
        float sub_weight[16];
        for (int j = 0; j < 16; j++) {
            float weights[16];
            importance_weights(x + 16 * j, importance + 16 * j, 16, sigma2, weights);
            sub_weight[j] = 0;
            for (int l = 0; l < 16; l++) sub_weight[j] += weights[l];
            scales[j] = symmetric_scale(16, 4, x + 16 * j, L + 16 * j, weights);
        }
        int8_t scale_levels[16];
        float d = symmetric_scale(16, 32, scales, scale_levels, sub_weight);
        for (int j = 0; j < 16; j++) codes[j] = scale_levels[j];
        pack_q3_scales(codes, y->scales);
        y->d = chronos_float_to_half(d);
    }
    float d = chronos_half_to_float(y->d);
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? y->scales[j] & 0x0F : y->scales[j - 8] >> 4;
        int code = low | ((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
        symmetric_levels(x + 16 * j, 16, 4, d * (float)(code - 32), L + 16 * j);
    }
    // The high bit of value j goes to bit j / 32 of hmask[j % 32]; the low two bits to qs.
    uint8_t low[CHRONOS_QK_K];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int j = 0; j < CHRONOS_QK_K; j++) {
        int level = L[j];
        if (level > 3) {
            y->hmask[j % 32] |= (uint8_t)(1 << (j / 32));
            level -= 4;
        }
        low[j] = (uint8_t)level;
    }
    pack_2bit(low, y->qs);
}

// MARK: - Q4_K and Q5_K

/// Fits the eight sub-blocks of 32 to x ≈ d·sc·L - dmin·m with L in [0, nmax], storing d,
/// dmin and the packed codes in the block's fields and each value's level in L. `reference` is
/// the search the unweighted quantiser uses for this format.
static void quantize_k4_block(const float *x, int nmax, const float *importance, affine_search reference, uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t packed[12], uint8_t L[CHRONOS_QK_K]) {
    float scales[8], mins[8];
    uint8_t scale_codes[8], min_codes[8];
    if (importance == NULL) {
        // Each sub-block weighs rms + |x|; the codes are 6-bit against the largest scale and min.
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *v = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += v[l] * v[l];
            float rms = sqrtf(sum_x2 / 32);
            float weights[32];
            for (int l = 0; l < 32; l++) weights[l] = rms + fabsf(v[l]);
            scales[j] = affine_scale(32, nmax, v, weights, L + 32 * j, &mins[j], reference);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < 8; j++) {
            // Codes are bytes before the clamp, so a negative one wraps as it does in GGML.
            scale_codes[j] = (uint8_t)min_int(63, (uint8_t)chronos_nearest(inv_scale * scales[j]));
            min_codes[j] = (uint8_t)min_int(63, (uint8_t)chronos_nearest(inv_min * mins[j]));
        }
        *d_out = chronos_float_to_half(max_scale / 63.0f);
        *dmin_out = chronos_float_to_half(max_min / 63.0f);
    } else {
        float sigma2 = mean_square(x, 2.0f);
        float sub_weight[8];
        for (int j = 0; j < 8; j++) {
            float weights[32];
            importance_weights(x + 32 * j, importance + 32 * j, 32, sigma2, weights);
            sub_weight[j] = 0;
            for (int l = 0; l < 32; l++) sub_weight[j] += weights[l];
            scales[j] = affine_scale(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], (affine_search){-0.9f, 0.05f, 36, 0});
        }
        float d = positive_scale(8, 63, scales, scale_codes, sub_weight);
        float dmin = positive_scale(8, 63, mins, min_codes, sub_weight);
        for (int j = 0; j < 8; j++) {
            scale_codes[j] = (uint8_t)min_int(63, scale_codes[j]);
            min_codes[j] = (uint8_t)min_int(63, min_codes[j]);
        }
        *d_out = chronos_float_to_half(d);
        *dmin_out = chronos_float_to_half(dmin);
    }
    pack_k4_scales(scale_codes, min_codes, packed);
    float d = chronos_half_to_float(*d_out), dmin = chronos_half_to_float(*dmin_out);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        unpack_k4_scale(packed, j, &sc, &m);
        affine_levels(x + 32 * j, 32, nmax, d * (float)sc, dmin * (float)m, L + 32 * j);
    }
}

static void quantize_q4_K_block(const float *x, chronos_block_q4_K *y, const float *importance) {
    uint8_t L[CHRONOS_QK_K];
    quantize_k4_block(x, 15, importance, (affine_search){-1.0f, 0.1f, 20, 0}, &y->d, &y->dmin, y->scales, L);
    // Sub-blocks 2p and 2p + 1 share bytes 32p..32p+31: low then high nibbles.
    for (int p = 0; p < 4; p++) {
        for (int l = 0; l < 32; l++) y->qs[32 * p + l] = (uint8_t)(L[64 * p + l] | L[64 * p + l + 32] << 4);
    }
}

static void quantize_q5_K_block(const float *x, chronos_block_q5_K *y, const float *importance) {
    uint8_t L[CHRONOS_QK_K];
    quantize_k4_block(x, 31, importance, (affine_search){-0.5f, 0.1f, 15, 0}, &y->d, &y->dmin, y->scales, L);
    // As Q4_K, with the fifth bit of sub-block j's value l in bit j of qh[l].
    memset(y->qh, 0, sizeof y->qh);
    for (int p = 0; p < 4; p++) {
        for (int l = 0; l < 32; l++) {
            int first = L[64 * p + l], second = L[64 * p + l + 32];
            y->qh[l] |= (uint8_t)((first >> 4) << (2 * p) | (second >> 4) << (2 * p + 1));
            y->qs[32 * p + l] = (uint8_t)((first & 0x0F) | (second & 0x0F) << 4);
        }
    }
}

// MARK: - Q6_K

static void quantize_q6_K_block(const float *x, chronos_block_q6_K *y, const float *importance) {
    int8_t L[CHRONOS_QK_K];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        // The weighted quantiser weighs by importance alone, without GGML's σ² term.
        scales[j] = symmetric_scale(16, 32, x + 16 * j, L + 16 * j, importance ? importance + 16 * j : NULL);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    if (amax < ZERO_GROUP) {
        memset(y, 0, sizeof *y);
        return;
    }
    float iscale = -128.0f / max_scale;
    y->d = chronos_float_to_half(1 / iscale);
    for (int j = 0; j < 16; j++) y->scales[j] = (int8_t)min_int(127, chronos_nearest(iscale * scales[j]));
    float d = chronos_half_to_float(y->d);
    for (int j = 0; j < 16; j++) symmetric_levels(x + 16 * j, 16, 32, d * (float)y->scales[j], L + 16 * j);
    // Value 128·h + 32·s + l: low nibble in ql[64·h + l + 32·(s & 1)] (high nibble for s ≥ 2),
    // top two bits at bits 2s of qh[32·h + l].
    for (int h = 0; h < 2; h++) {
        const int8_t *v = L + 128 * h;
        uint8_t *ql = y->ql + 64 * h, *qh = y->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((v[l] & 0x0F) | (v[l + 64] & 0x0F) << 4);
            ql[l + 32] = (uint8_t)((v[l + 32] & 0x0F) | (v[l + 96] & 0x0F) << 4);
            qh[l] = (uint8_t)(v[l] >> 4 | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
    }
}

int chronos_quantize_k(int type, const float *x, void *blocks, ptrdiff_t n, const float *importance) {
    ptrdiff_t count = n / CHRONOS_QK_K;
    for (ptrdiff_t i = 0; i < count; i++) {
        const float *v = x + i * CHRONOS_QK_K;
        const float *w = importance ? importance + i * CHRONOS_QK_K : NULL;
        switch (type) {
        case CHRONOS_Q2_K: quantize_q2_K_block(v, (chronos_block_q2_K *)blocks + i, w); break;
        case CHRONOS_Q3_K: quantize_q3_K_block(v, (chronos_block_q3_K *)blocks + i, w); break;
        case CHRONOS_Q4_K: quantize_q4_K_block(v, (chronos_block_q4_K *)blocks + i, w); break;
        case CHRONOS_Q5_K: quantize_q5_K_block(v, (chronos_block_q5_K *)blocks + i, w); break;
        case CHRONOS_Q6_K: quantize_q6_K_block(v, (chronos_block_q6_K *)blocks + i, w); break;
        default: return 0;
        }
    }
    return 1;
}
