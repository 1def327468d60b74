// The AVX2 + FMA + F16C kernels: the x86-64 baseline, 8 lanes of f32.

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include "Kernels.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/// Eight elements of a `dtype` row from index i, widened to f32.
AVX2 INLINE __m256 load8(int dtype, const void *p, ptrdiff_t i) {
    switch (dtype) {
    case CHRONOS_F32: return _mm256_loadu_ps((const float *)p + i);
    case CHRONOS_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    default: {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    }
}

/// Element i of a `dtype` row, widened to f32.
AVX2 INLINE float load1(int dtype, const void *p, ptrdiff_t i) {
    switch (dtype) {
    case CHRONOS_F32: return ((const float *)p)[i];
    case CHRONOS_F16: return _cvtsh_ss(((const uint16_t *)p)[i]);
    default: {
        union { uint32_t u; float f; } v = { (uint32_t)((const uint16_t *)p)[i] << 16 };
        return v.f;
    }
    }
}

AVX2 INLINE size_t element_size(int dtype) { return dtype == CHRONOS_F32 ? 4 : 2; }

AVX2 INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// MARK: Matrix-vector

/// Σ_c w[c] · x[c] for one row.
AVX2 INLINE float dot_row(int dtype, const char *w, ptrdiff_t cols, const float *x) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    ptrdiff_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        a = _mm256_fmadd_ps(load8(dtype, w, c), _mm256_loadu_ps(x + c), a);
        b = _mm256_fmadd_ps(load8(dtype, w, c + 8), _mm256_loadu_ps(x + c + 8), b);
    }
    float s = hsum(_mm256_add_ps(a, b));
    for (; c < cols; c++) s += load1(dtype, w, c) * x[c];
    return s;
}

/// Where the bf16 weights widen by pairs (`dot_rows`), x with each full block of 16 reordered
/// as its 8 even then its 8 odd elements: a shift gives a 32-bit lane's even bf16, a mask its
/// odd one, with no shuffle per weight.
AVX2 INLINE void deinterleave_pairs(const float *x, ptrdiff_t cols, float *out) {
    ptrdiff_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        const __m256 a = _mm256_loadu_ps(x + c), b = _mm256_loadu_ps(x + c + 8);
        // Per 128-bit lane: a0 a2 b0 b2 | a4 a6 b4 b6; the 64-bit permute puts the a pairs first.
        const __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 odd = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(out + c, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(out + c + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; c < cols; c++) out[c] = x[c];
}

/// y[i · ystride] = Σ_c w_i[c] · x[c] for the n ≤ 4 rows w_i = w + i · stride bytes, sharing
/// each load of x. With `pairs`, bf16 rows widen by pairs against `xp` from
/// `deinterleave_pairs`; otherwise `xp` is x. Row tails use x as it is.
AVX2 INLINE void dot_rows(int dtype, int pairs, int n, const char *w, size_t stride, ptrdiff_t cols, const float *xp,
                          const float *x, float *y, ptrdiff_t ystride) {
    const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
    __m256 a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = b[i] = _mm256_setzero_ps();
    ptrdiff_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        const __m256 x0 = _mm256_loadu_ps(xp + c), x1 = _mm256_loadu_ps(xp + c + 8);
        for (int i = 0; i < n; i++) {
            const char *row = w + i * stride;
            if (pairs) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(row + 2 * c));
                a[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), x0, a[i]);
                b[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)), x1, b[i]);
            } else {
                a[i] = _mm256_fmadd_ps(load8(dtype, row, c), x0, a[i]);
                b[i] = _mm256_fmadd_ps(load8(dtype, row, c + 8), x1, b[i]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        float s = hsum(_mm256_add_ps(a[i], b[i]));
        for (ptrdiff_t t = c; t < cols; t++) s += load1(dtype, w + i * stride, t) * x[t];
        y[i * ystride] = s;
    }
}

/// Rows [row0, row1) in four equal runs read side by side, plus the rows left over: four
/// sequential streams in different pages keep more reads in flight than one, which a single
/// core needs to approach the memory's bandwidth (rows next to each other would share pages
/// and confuse the hardware prefetcher instead).
AVX2 INLINE void matvec_typed(int dtype, int pairs, const void *weights, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                              const float *xp, const float *x, float *y) {
    const size_t stride = (size_t)cols * element_size(dtype);
    const char *base = (const char *)weights;
    const ptrdiff_t run = (row1 - row0) / 4;
    for (ptrdiff_t i = 0; i < run; i++) {
        const ptrdiff_t r = row0 + i;
        dot_rows(dtype, pairs, 4, base + r * stride, run * stride, cols, xp, x, y + r, run);
    }
    // Literal row counts, so that each call's accumulators stay in registers.
    for (ptrdiff_t r = row0 + 4 * run; r < row1; r++) dot_rows(dtype, pairs, 1, base + r * stride, 0, cols, xp, x, y + r, 1);
}

AVX2 static void matvec(int dtype, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const float *x, float *y) {
    switch (dtype) {
    case CHRONOS_F32: matvec_typed(CHRONOS_F32, 0, w, row0, row1, cols, x, x, y); break;
    case CHRONOS_F16: matvec_typed(CHRONOS_F16, 0, w, row0, row1, cols, x, x, y); break;
    default: {
        float local[4096];
        float *xp = cols <= 4096 ? local : malloc((size_t)cols * sizeof(float));
        if (!xp) {
            matvec_typed(CHRONOS_BF16, 0, w, row0, row1, cols, x, x, y);
            break;
        }
        deinterleave_pairs(x, cols, xp);
        matvec_typed(CHRONOS_BF16, 1, w, row0, row1, cols, xp, x, y);
        if (xp != local) free(xp);
        break;
    }
    }
}

// MARK: Activations times weights (prefill)

enum { RM = 4, RN = 3 };

/// c[i, j · cstep] for i < rm, j < rn (rm · rn ≤ 12): rm rows of activations against rn weight
/// rows `bstride` bytes apart, accumulated along k in rm × rn registers and summed across lanes
/// at the end.
AVX2 INLINE void tile_nt(int dtype, int rm, int rn, ptrdiff_t k, const float *a, ptrdiff_t lda,
                         const char *b, size_t bstride, float *c, ptrdiff_t ldc, ptrdiff_t cstep) {
    __m256 acc[RM][4];
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) acc[i][j] = _mm256_setzero_ps();
    ptrdiff_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 bv[4];
        for (int j = 0; j < rn; j++) bv[j] = load8(dtype, b + j * bstride, p);
        for (int i = 0; i < rm; i++) {
            __m256 av = _mm256_loadu_ps(a + i * lda + p);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < rm; i++) {
        for (int j = 0; j < rn; j++) {
            float s = hsum(acc[i][j]);
            for (ptrdiff_t q = p; q < k; q++) s += a[i * lda + q] * load1(dtype, b + j * bstride, q);
            c[i * ldc + j * cstep] = s;
        }
    }
}

/// Batches of up to `RUNS_BATCH` tokens, where reading the weights bounds the product: the columns
/// go in four runs read side by side, as in `matvec_typed`, each tile taking one weight row of
/// every run against two activation rows; the columns left over go as below.
enum { RUNS_BATCH = 8 };

AVX2 INLINE void gemm_nt_typed(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const float *a,
                               ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    const size_t bstride = (size_t)ldb * element_size(dtype);
    if (m <= RUNS_BATCH) {
        const ptrdiff_t run = (col1 - col0) / 4;
        for (ptrdiff_t q = 0; q < run; q++) {
            const char *bj = (const char *)b + (col0 + q) * bstride;
            for (ptrdiff_t i = 0; i < m; i += 2) {
                float *ci = c + i * ldc + col0 + q;
                if (m - i >= 2) {
                    tile_nt(dtype, 2, 4, k, a + i * lda, lda, bj, run * bstride, ci, ldc, run);
                } else {
                    tile_nt(dtype, 1, 4, k, a + i * lda, lda, bj, run * bstride, ci, ldc, run);
                }
            }
        }
        col0 += 4 * run;
    }
    for (ptrdiff_t j = col0; j < col1; j += RN) {
        const int rn = col1 - j < RN ? (int)(col1 - j) : RN;
        const char *bj = (const char *)b + j * bstride;
        for (ptrdiff_t i = 0; i < m; i += RM) {
            const int rm = m - i < RM ? (int)(m - i) : RM;
            const float *ai = a + i * lda;
            float *ci = c + i * ldc + j;
#define TILE(M, N) case (M) * 8 + (N): tile_nt(dtype, M, N, k, ai, lda, bj, bstride, ci, ldc, 1); break;
            switch (rm * 8 + rn) {
                TILE(4, 3) TILE(4, 2) TILE(4, 1) TILE(3, 3) TILE(3, 2) TILE(3, 1)
                TILE(2, 3) TILE(2, 2) TILE(2, 1) TILE(1, 3) TILE(1, 2) TILE(1, 1)
            }
#undef TILE
        }
    }
}

AVX2 static void gemm_nt(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *a,
                         ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    switch (dtype) {
    case CHRONOS_F32: gemm_nt_typed(CHRONOS_F32, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    case CHRONOS_F16: gemm_nt_typed(CHRONOS_F16, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    default: gemm_nt_typed(CHRONOS_BF16, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    }
}

// MARK: Packed GEMM tile (6 × 16)

AVX2 static void tile(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int rows, int cols,
                      float alpha, float beta) {
    __m256 acc[6][2];
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b + p * 16), b1 = _mm256_loadu_ps(b + p * 16 + 8);
        for (int i = 0; i < 6; i++) {
            __m256 x = _mm256_broadcast_ss(a + p * 6 + i);
            acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (rows == 6 && cols == 16) {
        for (int i = 0; i < 6; i++) {
            float *row = c + i * ldc;
            __m256 lo = _mm256_mul_ps(va, acc[i][0]), hi = _mm256_mul_ps(va, acc[i][1]);
            if (beta != 0) {
                lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), lo);
                hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), hi);
            }
            _mm256_storeu_ps(row, lo);
            _mm256_storeu_ps(row + 8, hi);
        }
        return;
    }
    float out[6 * 16];
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(out + i * 16, acc[i][0]);
        _mm256_storeu_ps(out + i * 16 + 8, acc[i][1]);
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            c[i * ldc + j] = alpha * out[i * 16 + j] + (beta != 0 ? beta * c[i * ldc + j] : 0);
}

// MARK: Vectors

AVX2 static float dot(const float *a, const float *b, ptrdiff_t n) {
    return dot_row(CHRONOS_F32, (const char *)a, n, b);
}

AVX2 static void axpy(float alpha, const float *x, float *y, ptrdiff_t n) {
    __m256 s = _mm256_set1_ps(alpha);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

// MARK: Peak

AVX2 static double fma_peak(long iterations) {
    // Ten independent chains cover the multiply-add latency on both FMA ports.
    __m256 c[10], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-6f);
    for (int i = 0; i < 10; i++) c[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 10; i++) c[i] = _mm256_fmadd_ps(c[i], x, y);
        __asm__ volatile("" : "+x"(c[0]), "+x"(c[1]), "+x"(c[2]), "+x"(c[3]), "+x"(c[4]),
                         "+x"(c[5]), "+x"(c[6]), "+x"(c[7]), "+x"(c[8]), "+x"(c[9]));
    }
    volatile float sink = 0;
    for (int i = 0; i < 10; i++) sink += hsum(c[i]);
    (void)sink;
    return (double)iterations * 10 * 8 * 2;
}

const chronos_kernels chronos_kernels_avx2 = {
    .mr = 6, .nr = 16, .round_bf16 = NULL,
    .tile = tile, .matvec = matvec, .gemm_nt = gemm_nt, .dot = dot, .axpy = axpy,
    .quant_matvec = chronos_quant_matvec_avx2, .quant_gemm_nt = chronos_quant_gemm_nt_avx2,
    .fma_peak = fma_peak, .bf16_dot_peak = NULL,
};

#endif
