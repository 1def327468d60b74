// The AVX-512 kernels (16 lanes of f32, masked tails), and the AVX512-BF16 set, which adds the
// bf16 dot product for activations times bf16 weights.

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include "Kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/// The lanes below n (n ≤ 16).
AVX512 INLINE __mmask16 lanes(ptrdiff_t n) { return (__mmask16)((1u << n) - 1); }

/// Sixteen elements of a `dtype` row from index i, widened to f32; lanes outside `mask` are zero.
AVX512 INLINE __m512 load16(int dtype, const void *p, ptrdiff_t i, __mmask16 mask) {
    switch (dtype) {
    case CHRONOS_F32: return _mm512_maskz_loadu_ps(mask, (const float *)p + i);
    case CHRONOS_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + i));
    default: {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    }
    }
}

AVX512 INLINE size_t element_size(int dtype) { return dtype == CHRONOS_F32 ? 4 : 2; }

/// Zero in a register the compiler cannot see through: a loop that stores a known zero into the
/// accumulator array becomes a memset of it on the stack, and the accumulators then live in
/// memory instead of registers.
AVX512 INLINE __m512 opaque_zero(void) {
    __m512 zero = _mm512_setzero_ps();
    __asm__("" : "+v"(zero));
    return zero;
}

// MARK: Matrix-vector

AVX512 INLINE void matvec_typed(int dtype, const void *weights, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                                const float *x, float *y) {
    const size_t stride = (size_t)cols * element_size(dtype);
    const char *base = (const char *)weights;
    const ptrdiff_t full = cols - cols % 16;
    const __mmask16 tail = lanes(cols % 16);
    // One row after another, as the AVX2 kernel.
    for (ptrdiff_t r = row0; r < row1; r++) {
        const char *w = base + r * stride;
        __m512 a = _mm512_setzero_ps(), b = a;
        ptrdiff_t c = 0;
        for (; c + 32 <= full; c += 32) {
            a = _mm512_fmadd_ps(load16(dtype, w, c, 0xFFFF), _mm512_loadu_ps(x + c), a);
            b = _mm512_fmadd_ps(load16(dtype, w, c + 16, 0xFFFF), _mm512_loadu_ps(x + c + 16), b);
        }
        if (c < full) a = _mm512_fmadd_ps(load16(dtype, w, c, 0xFFFF), _mm512_loadu_ps(x + c), a);
        if (tail) b = _mm512_fmadd_ps(load16(dtype, w, full, tail), _mm512_maskz_loadu_ps(tail, x + full), b);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

AVX512 static void matvec(int dtype, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const float *x, float *y) {
    switch (dtype) {
    case CHRONOS_F32: matvec_typed(CHRONOS_F32, w, row0, row1, cols, x, y); break;
    case CHRONOS_F16: matvec_typed(CHRONOS_F16, w, row0, row1, cols, x, y); break;
    default: matvec_typed(CHRONOS_BF16, w, row0, row1, cols, x, y); break;
    }
}

// MARK: Activations times weights (prefill)

enum { RM = 4, RN = 6 };

/// c[i, j] for i < rm, j < rn: rm activation rows against rn weight rows, accumulated along k
/// in rm × rn registers (the tail of k masked) and summed across lanes at the end.
AVX512 INLINE void tile_nt(int dtype, int rm, int rn, ptrdiff_t k, const float *a, ptrdiff_t lda,
                           const char *b, size_t bstride, float *c, ptrdiff_t ldc) {
    __m512 acc[RM][RN];
    const __m512 zero = opaque_zero();
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) acc[i][j] = zero;
    const ptrdiff_t full = k - k % 16;
    for (ptrdiff_t p = 0; p < full; p += 16) {
        __m512 bv[RN];
        for (int j = 0; j < rn; j++) bv[j] = load16(dtype, b + j * bstride, p, 0xFFFF);
        for (int i = 0; i < rm; i++) {
            __m512 av = _mm512_loadu_ps(a + i * lda + p);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    if (full < k) {
        const __mmask16 tail = lanes(k - full);
        __m512 bv[RN];
        for (int j = 0; j < rn; j++) bv[j] = load16(dtype, b + j * bstride, full, tail);
        for (int i = 0; i < rm; i++) {
            __m512 av = _mm512_maskz_loadu_ps(tail, a + i * lda + full);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) c[i * ldc + j] = _mm512_reduce_add_ps(acc[i][j]);
}

#define TILE_CASES(CALL) \
    CALL(4, 6) CALL(4, 5) CALL(4, 4) CALL(4, 3) CALL(4, 2) CALL(4, 1) \
    CALL(3, 6) CALL(3, 5) CALL(3, 4) CALL(3, 3) CALL(3, 2) CALL(3, 1) \
    CALL(2, 6) CALL(2, 5) CALL(2, 4) CALL(2, 3) CALL(2, 2) CALL(2, 1) \
    CALL(1, 6) CALL(1, 5) CALL(1, 4) CALL(1, 3) CALL(1, 2) CALL(1, 1)

AVX512 INLINE void gemm_nt_typed(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const float *a,
                                 ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    const size_t bstride = (size_t)ldb * element_size(dtype);
    for (ptrdiff_t j = col0; j < col1; j += RN) {
        const int rn = col1 - j < RN ? (int)(col1 - j) : RN;
        const char *bj = (const char *)b + j * bstride;
        for (ptrdiff_t i = 0; i < m; i += RM) {
            const int rm = m - i < RM ? (int)(m - i) : RM;
            const float *ai = a + i * lda;
            float *ci = c + i * ldc + j;
#define TILE(M, N) case (M) * 8 + (N): tile_nt(dtype, M, N, k, ai, lda, bj, bstride, ci, ldc); break;
            switch (rm * 8 + rn) { TILE_CASES(TILE) }
#undef TILE
        }
    }
}

AVX512 static void gemm_nt(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *a,
                           ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    switch (dtype) {
    case CHRONOS_F32: gemm_nt_typed(CHRONOS_F32, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    case CHRONOS_F16: gemm_nt_typed(CHRONOS_F16, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    default: gemm_nt_typed(CHRONOS_BF16, m, col0, col1, k, a, lda, b, ldb, c, ldc); break;
    }
}

/// As `tile_nt` for bf16 activations and bf16 weights: each vdpbf16ps multiplies 32 pairs and
/// adds them into 16 f32 lanes.
AVX512BF16 INLINE void tile_bf16(int rm, int rn, ptrdiff_t k, const uint16_t *a, ptrdiff_t lda,
                                 const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    __m512 acc[RM][RN];
    const __m512 zero = opaque_zero();
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) acc[i][j] = zero;
    const ptrdiff_t full = k - k % 32;
    for (ptrdiff_t p = 0; p < full; p += 32) {
        __m512bh bv[RN];
        for (int j = 0; j < rn; j++) bv[j] = (__m512bh)_mm512_loadu_si512(b + j * ldb + p);
        for (int i = 0; i < rm; i++) {
            __m512bh av = (__m512bh)_mm512_loadu_si512(a + i * lda + p);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
        }
    }
    if (full < k) {
        const __mmask32 tail = (__mmask32)((1ull << (k - full)) - 1);
        __m512bh bv[RN];
        for (int j = 0; j < rn; j++) bv[j] = (__m512bh)_mm512_maskz_loadu_epi16(tail, b + j * ldb + full);
        for (int i = 0; i < rm; i++) {
            __m512bh av = (__m512bh)_mm512_maskz_loadu_epi16(tail, a + i * lda + full);
            for (int j = 0; j < rn; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
        }
    }
    for (int i = 0; i < rm; i++)
        for (int j = 0; j < rn; j++) c[i * ldc + j] = _mm512_reduce_add_ps(acc[i][j]);
}

AVX512BF16 static void gemm_nt_bf16(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *a,
                                    ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    if (dtype != CHRONOS_BF16) {
        gemm_nt(dtype, m, col0, col1, k, a, lda, b, ldb, c, ldc);
        return;
    }
    for (ptrdiff_t j = col0; j < col1; j += RN) {
        const int rn = col1 - j < RN ? (int)(col1 - j) : RN;
        const uint16_t *bj = (const uint16_t *)b + j * ldb;
        for (ptrdiff_t i = 0; i < m; i += RM) {
            const int rm = m - i < RM ? (int)(m - i) : RM;
            const uint16_t *ai = (const uint16_t *)a + i * lda;
            float *ci = c + i * ldc + j;
#define TILE(M, N) case (M) * 8 + (N): tile_bf16(M, N, k, ai, lda, bj, ldb, ci, ldc); break;
            switch (rm * 8 + rn) { TILE_CASES(TILE) }
#undef TILE
        }
    }
}

/// x rounded to bf16 (nearest, ties to even), 32 values per conversion, the tail masked.
AVX512BF16 static void round_to_bf16(const float *x, uint16_t *out, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i += 32) {
        const ptrdiff_t left = n - i;
        const __mmask16 lo = left >= 16 ? 0xFFFF : lanes(left), hi = left >= 32 ? 0xFFFF : left > 16 ? lanes(left - 16) : 0;
        __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16), _mm512_maskz_loadu_ps(lo, x + i));
        _mm512_mask_storeu_epi16(out + i, left >= 32 ? 0xFFFFFFFFu : (__mmask32)((1ull << left) - 1), (__m512i)pair);
    }
}

/// As `matvec`, with bf16 weights multiplied by x rounded to bf16 through the bf16 dot
/// product, as a batch is (`gemm_nt_bf16`), so that one token gives the same result either way.
AVX512BF16 static void matvec_bf16(int dtype, const void *weights, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                                   const float *x, float *y) {
    if (dtype != CHRONOS_BF16) {
        matvec(dtype, weights, row0, row1, cols, x, y);
        return;
    }
    uint16_t local[4096];
    uint16_t *xb = cols <= 4096 ? local : malloc((size_t)cols * sizeof(uint16_t));
    if (!xb) {
        matvec(dtype, weights, row0, row1, cols, x, y);
        return;
    }
    round_to_bf16(x, xb, cols);
    const uint16_t *w = (const uint16_t *)weights;
    const ptrdiff_t full = cols - cols % 32;
    const __mmask32 tail = (__mmask32)((1ull << (cols - full)) - 1);
    for (ptrdiff_t r = row0; r < row1; r++) {
        const uint16_t *wr = w + r * cols;
        __m512 a = _mm512_setzero_ps(), b = a;
        ptrdiff_t c = 0;
        for (; c + 64 <= full; c += 64) {
            a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(wr + c), (__m512bh)_mm512_loadu_si512(xb + c));
            b = _mm512_dpbf16_ps(b, (__m512bh)_mm512_loadu_si512(wr + c + 32), (__m512bh)_mm512_loadu_si512(xb + c + 32));
        }
        if (c < full) a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(wr + c), (__m512bh)_mm512_loadu_si512(xb + c));
        if (tail) {
            b = _mm512_dpbf16_ps(b, (__m512bh)_mm512_maskz_loadu_epi16(tail, wr + full),
                                 (__m512bh)_mm512_maskz_loadu_epi16(tail, xb + full));
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
    if (xb != local) free(xb);
}

// MARK: Packed GEMM tile (TILE_ROWS × 32)

enum { TILE_ROWS = 6 };

AVX512 static void tile(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int rows, int cols,
                        float alpha, float beta) {
    __m512 acc[TILE_ROWS][2];
    for (int i = 0; i < TILE_ROWS; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b + p * 32), b1 = _mm512_loadu_ps(b + p * 32 + 16);
        for (int i = 0; i < TILE_ROWS; i++) {
            __m512 x = _mm512_set1_ps(a[p * TILE_ROWS + i]);
            acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : lanes(cols), m1 = cols >= 32 ? 0xFFFF : cols > 16 ? lanes(cols - 16) : 0;
    for (int i = 0; i < rows; i++) {
        float *row = c + i * ldc;
        __m512 lo = _mm512_mul_ps(va, acc[i][0]), hi = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0) {
            lo = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), lo);
            hi = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), hi);
        }
        _mm512_mask_storeu_ps(row, m0, lo);
        _mm512_mask_storeu_ps(row + 16, m1, hi);
    }
}

// MARK: Vectors

AVX512 static float dot(const float *a, const float *b, ptrdiff_t n) {
    __m512 s = _mm512_setzero_ps(), t = s;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
        t = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), t);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : lanes(n - i);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s, t));
}

AVX512 static void axpy(float alpha, const float *x, float *y, ptrdiff_t n) {
    const __m512 s = _mm512_set1_ps(alpha);
    for (ptrdiff_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : lanes(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

// MARK: Peaks

AVX512 static double fma_peak(long iterations) {
    // Twelve independent chains cover the multiply-add latency on two 512-bit FMA ports.
    __m512 c[12], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) c[i] = _mm512_fmadd_ps(c[i], x, y);
        __asm__ volatile("" : "+v"(c[0]), "+v"(c[1]), "+v"(c[2]), "+v"(c[3]), "+v"(c[4]), "+v"(c[5]),
                         "+v"(c[6]), "+v"(c[7]), "+v"(c[8]), "+v"(c[9]), "+v"(c[10]), "+v"(c[11]));
    }
    volatile float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(c[i]);
    (void)sink;
    return (double)iterations * 12 * 16 * 2;
}

AVX512BF16 static double bf16_dot_peak(long iterations) {
    __m512 c[12];
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3F80), y = (__m512bh)_mm512_set1_epi16(0x3400);
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) c[i] = _mm512_dpbf16_ps(c[i], x, y);
        __asm__ volatile("" : "+v"(c[0]), "+v"(c[1]), "+v"(c[2]), "+v"(c[3]), "+v"(c[4]), "+v"(c[5]),
                         "+v"(c[6]), "+v"(c[7]), "+v"(c[8]), "+v"(c[9]), "+v"(c[10]), "+v"(c[11]));
    }
    volatile float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(c[i]);
    (void)sink;
    return (double)iterations * 12 * 32 * 2;
}

// The block-format kernels are the AVX2 ones (QuantDotAVX2.c) in every table: AVX-512
// processors run them.
const chronos_kernels chronos_kernels_avx512 = {
    .mr = TILE_ROWS, .nr = 32, .round_bf16 = NULL,
    .tile = tile, .matvec = matvec, .gemm_nt = gemm_nt, .dot = dot, .axpy = axpy,
    .quant_matvec = chronos_quant_matvec_avx2, .quant_gemm_nt = chronos_quant_gemm_nt_avx2,
    .fma_peak = fma_peak, .bf16_dot_peak = NULL,
};

const chronos_kernels chronos_kernels_avx512bf16 = {
    .mr = TILE_ROWS, .nr = 32, .round_bf16 = round_to_bf16,
    .tile = tile, .matvec = matvec_bf16, .gemm_nt = gemm_nt_bf16, .dot = dot, .axpy = axpy,
    .quant_matvec = chronos_quant_matvec_avx2, .quant_gemm_nt = chronos_quant_gemm_nt_avx2,
    .fma_peak = fma_peak, .bf16_dot_peak = bf16_dot_peak,
};

#endif
