// Block-format weights times 8-bit quantised activations with AVX2: the arithmetic of the
// portable kernels in QuantDot.c, 32 values per instruction. Unsigned weight quants multiply
// signed activation quants with vpmaddubsw (pairs summed into 16 bits, which cannot saturate:
// |q_w| ≤ 128 and |q_y| ≤ 127), vpmaddwd sums pairs again into 32 bits while weighing each
// sub-block by its integer scale, and each block's float scales are applied once. The AVX-512
// tables point at these too, since every AVX-512 processor runs AVX2.

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "Kernels.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/// The most activation rows a weight block is unpacked for at once in the GEMM: the K formats
/// take 8, whose blocks cost more to unpack than to multiply; the 32-value formats take 4.
enum { TOKENS = 8 };

/// Bytes ahead of the weight block in use that are asked for, a cache line at a time: the
/// hardware prefetcher alone leaves the integer work waiting on DRAM between its requests.
#define PREFETCH 2048

AVX2 INLINE float half(uint16_t h) { return _cvtsh_ss(h); }

AVX2 INLINE __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

AVX2 INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Σ u·s over 32 unsigned and 32 signed bytes, in 8 lanes of 32 bits (each the sum of 4 products).
AVX2 INLINE __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/// As `dot_us`, with each 16-bit pair sum weighed by the 16-bit lanes of `scale`.
AVX2 INLINE __m256i dot_us_scaled(__m256i u, __m256i s, __m256i scale) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale);
}

/// acc += d · (float)sum, lane by lane.
AVX2 INLINE __m256 scale_add(__m256i sum, float d, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d), acc);
}

/// 32 nibbles of 16 bytes as bytes: the low nibbles (values 0–15) then the high (16–31).
AVX2 INLINE __m256i nibbles(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0F));
}

/// Byte i is 0xFF where bit i of the little-endian `qh` is set, else 0.
AVX2 INLINE __m256i spread_bits(const uint8_t qh[4]) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits);
    // Byte i takes byte i / 8 of the word, then keeps bit i % 8.
    const __m256i source = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), source);
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
}

/// The activation block of row i, `stride` bytes after row 0's.
#define ROW(T, y, stride, i) ((const T *)((const char *)(y) + (size_t)(i) * (stride)))

// MARK: The 32-value formats

/// Signed weight quants q against Q8_0 activations: |q| times y with q's sign, so that the
/// unsigned operand of vpmaddubsw is |q|.
AVX2 INLINE void dot_signed_32(__m256i q, float d, const chronos_block_q8_0 *y, size_t stride, int rows, __m256 *acc) {
    const __m256i magnitude = _mm256_sign_epi8(q, q);
    for (int i = 0; i < rows; i++) {
        const chronos_block_q8_0 *yi = ROW(chronos_block_q8_0, y, stride, i);
        const __m256i p = dot_us(magnitude, _mm256_sign_epi8(load32(yi->qs), q));
        acc[i] = scale_add(p, d * half(yi->d), acc[i]);
    }
}

/// Unsigned weight quants q with minimum m against Q8_1 activations: d·d_y·Σ q·q_y + m·s_y.
AVX2 INLINE void dot_unsigned_32(__m256i q, float d, float m, const chronos_block_q8_1 *y, size_t stride, int rows,
                                 __m256 *acc, float *bias) {
    for (int i = 0; i < rows; i++) {
        const chronos_block_q8_1 *yi = ROW(chronos_block_q8_1, y, stride, i);
        acc[i] = scale_add(dot_us(q, load32(yi->qs)), d * half(yi->d), acc[i]);
        bias[i] += m * half(yi->s);
    }
}

AVX2 INLINE void dot_q8_0(const chronos_block_q8_0 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    dot_signed_32(load32(w->qs), half(w->d), y, stride, rows, acc);
}

AVX2 INLINE void dot_q4_0(const chronos_block_q4_0 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    dot_signed_32(_mm256_sub_epi8(nibbles(w->qs), _mm256_set1_epi8(8)), half(w->d), y, stride, rows, acc);
}

AVX2 INLINE void dot_mxfp4(const chronos_block_mxfp4 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    // Each code's doubled e2m1 value, looked up 32 at a time.
    const __m256i values = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0, 1, 2, 3, 4, 6, 8, 12, 0, -1,
                                            -2, -3, -4, -6, -8, -12);
    float e;
    {
        uint32_t bits = w->e < 2 ? 0x00200000u << w->e : (uint32_t)(w->e - 1) << 23;
        memcpy(&e, &bits, sizeof e);
    }
    dot_signed_32(_mm256_shuffle_epi8(values, nibbles(w->qs)), e, y, stride, rows, acc);
}

AVX2 INLINE void dot_q5_0(const chronos_block_q5_0 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    // q - 16 as a signed byte: the nibble with 0xF0 above it where the fifth bit is clear.
    const __m256i q = _mm256_or_si256(nibbles(w->qs), _mm256_andnot_si256(spread_bits(w->qh), _mm256_set1_epi8((char)0xF0)));
    dot_signed_32(q, half(w->d), y, stride, rows, acc);
}

AVX2 INLINE void dot_q4_1(const chronos_block_q4_1 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    dot_unsigned_32(nibbles(w->qs), half(w->d), half(w->m), y, stride, rows, acc, bias);
}

AVX2 INLINE void dot_q5_1(const chronos_block_q5_1 *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    const __m256i q = _mm256_or_si256(nibbles(w->qs), _mm256_and_si256(spread_bits(w->qh), _mm256_set1_epi8(0x10)));
    dot_unsigned_32(q, half(w->d), half(w->m), y, stride, rows, acc, bias);
}

// MARK: The K formats

/// The 16-bit scale lanes of 32 values that span sub-blocks 2c and 2c + 1 of 16 (lanes 0–7
/// and 8–15): `low` holds scales 0–7 and `high` scales 8–15 as 16-bit lanes, in both halves.
AVX2 INLINE __m256i pair_scales(__m256i low, __m256i high, int c) {
    // Low half picks bytes 4c' and 4c' + 1 (scale 2c'), high half bytes 4c' + 2 and 4c' + 3.
    const __m256i base = _mm256_set_epi16(0x0302, 0x0302, 0x0302, 0x0302, 0x0302, 0x0302, 0x0302, 0x0302, 0x0100, 0x0100,
                                          0x0100, 0x0100, 0x0100, 0x0100, 0x0100, 0x0100);
    const __m256i pick = _mm256_add_epi16(base, _mm256_set1_epi16((short)(0x0404 * (c % 4))));
    return _mm256_shuffle_epi8(c < 4 ? low : high, pick);
}

/// Sixteen 8-bit scales (signed or not, as `widen` says) as the `low` and `high` operands of `pair_scales`.
#define SPLIT_SCALES(widen, bytes, low, high)                                                                      \
    const __m256i low = _mm256_broadcastsi128_si256(widen(bytes));                                                 \
    const __m256i high = _mm256_broadcastsi128_si256(widen(_mm_srli_si128(bytes, 8)))

/// Per row: acc += d_y · (d · sum − d_min · mins), the K formats' closing step.
AVX2 INLINE void close_K(const chronos_block_q8_K *y, size_t stride, int rows, const __m256i *sum, const __m256i *mins,
                         float d, float dmin, __m256 *acc) {
    for (int i = 0; i < rows; i++) {
        const float dy = ROW(chronos_block_q8_K, y, stride, i)->d;
        acc[i] = scale_add(sum[i], d * dy, acc[i]);
        if (mins) acc[i] = scale_add(mins[i], -dmin * dy, acc[i]);
    }
}

/// Σ_j s_j · Σ_{sub-block j} q_y over the 16 sub-blocks, with the 16 scales s as 16-bit lanes.
AVX2 INLINE __m256i scaled_bsums(__m256i scales, const chronos_block_q8_K *yi) {
    return _mm256_madd_epi16(scales, _mm256_loadu_si256((const __m256i *)yi->bsums));
}

AVX2 INLINE void dot_q2_K(const chronos_block_q2_K *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    const __m128i packed = _mm_loadu_si128((const __m128i *)w->scales), low4 = _mm_set1_epi8(0x0F);
    const __m128i scales = _mm_and_si128(packed, low4);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    SPLIT_SCALES(_mm_cvtepu8_epi16, scales, low, high);
    __m256i sum[TOKENS], minsum[TOKENS];
    for (int i = 0; i < rows; i++) sum[i] = _mm256_setzero_si256();
    // Chunk c = 4h + s (values 32c …) is bits 2s of the 32 bytes of half h.
    for (int h = 0; h < 2; h++) {
        const __m256i q = load32(w->qs + 32 * h);
        for (int s = 0; s < 4; s++) {
            const int c = 4 * h + s;
            const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), _mm256_set1_epi8(3));
            const __m256i scale = pair_scales(low, high, c);
            for (int i = 0; i < rows; i++) {
                const __m256i yq = load32(ROW(chronos_block_q8_K, y, stride, i)->qs + 32 * c);
                sum[i] = _mm256_add_epi32(sum[i], dot_us_scaled(v, yq, scale));
            }
        }
    }
    for (int i = 0; i < rows; i++) minsum[i] = scaled_bsums(mins, ROW(chronos_block_q8_K, y, stride, i));
    close_K(y, stride, rows, sum, minsum, half(w->d), half(w->dmin), acc);
}

AVX2 INLINE void dot_q3_K(const chronos_block_q3_K *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    // Sixteen 6-bit scales: low nibbles of bytes 0–7 (scales 0–7) and their high nibbles
    // (8–15), the top two bits from bytes 8–11, two bits per scale in turn.
    uint32_t a[3];
    memcpy(a, w->scales, sizeof a);
    const uint32_t nib = 0x0F0F0F0F, two = 0x03030303;
    const __m128i scales = _mm_sub_epi8(
        _mm_set_epi32((int)(((a[1] >> 4) & nib) | ((a[2] >> 6) & two) << 4), (int)(((a[0] >> 4) & nib) | ((a[2] >> 4) & two) << 4),
                      (int)((a[1] & nib) | ((a[2] >> 2) & two) << 4), (int)((a[0] & nib) | (a[2] & two) << 4)),
        _mm_set1_epi8(32));
    SPLIT_SCALES(_mm_cvtepi8_epi16, scales, low, high);
    const __m256i all = _mm256_cvtepi8_epi16(scales);
    const __m256i hmask = load32(w->hmask);
    __m256i sum[TOKENS];
    for (int i = 0; i < rows; i++) sum[i] = _mm256_setzero_si256();
    // Chunk c = 4h + s: bits 2s of half h's bytes, and bit c of hmask above them. The quant
    // is (those three bits) − 4; the − 4 is taken off once per block through the sums of 16.
    for (int h = 0; h < 2; h++) {
        const __m256i q = load32(w->qs + 32 * h);
        for (int s = 0; s < 4; s++) {
            const int c = 4 * h + s;
            const __m256i high_bit = _mm256_and_si256(_mm256_srli_epi16(hmask, c), _mm256_set1_epi8(1));
            const __m256i v =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), _mm256_set1_epi8(3)), _mm256_slli_epi16(high_bit, 2));
            const __m256i scale = pair_scales(low, high, c);
            for (int i = 0; i < rows; i++) {
                const __m256i yq = load32(ROW(chronos_block_q8_K, y, stride, i)->qs + 32 * c);
                sum[i] = _mm256_add_epi32(sum[i], dot_us_scaled(v, yq, scale));
            }
        }
    }
    for (int i = 0; i < rows; i++)
        sum[i] = _mm256_sub_epi32(sum[i], _mm256_slli_epi32(scaled_bsums(all, ROW(chronos_block_q8_K, y, stride, i)), 2));
    close_K(y, stride, rows, sum, NULL, half(w->d), 0, acc);
}

/// q4_K's and q5_K's eight 6-bit scales (bytes 0–7) and minima (8–15) from their 12 bytes.
AVX2 INLINE __m128i k4_scales(const uint8_t packed[12]) {
    uint32_t a[3];
    memcpy(a, packed, sizeof a);
    const uint32_t six = 0x3F3F3F3F, nib = 0x0F0F0F0F, two = 0x03030303;
    return _mm_set_epi32((int)(((a[2] >> 4) & nib) | ((a[1] >> 6) & two) << 4), (int)(a[1] & six),
                         (int)((a[2] & nib) | ((a[0] >> 6) & two) << 4), (int)(a[0] & six));
}

/// The q4_K / q5_K dot product; `qh` is q5_K's fifth bits, or NULL for q4_K.
AVX2 INLINE void dot_k4(uint16_t d, uint16_t dmin, const uint8_t packed[12], const uint8_t *qs, const uint8_t *qh,
                        const void *y, size_t stride, int rows, __m256 *acc) {
    const __m128i scales_mins = k4_scales(packed);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales_mins));
    // Minimum j weighs the activation sums of 16 numbered 2j and 2j + 1.
    const __m128i mins8 = _mm_srli_si128(scales_mins, 8);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));
    const __m256i high_bits = qh ? load32(qh) : _mm256_setzero_si256();
    __m256i sum[TOKENS], minsum[TOKENS];
    for (int i = 0; i < rows; i++) sum[i] = _mm256_setzero_si256();
    // Sub-blocks 2j and 2j + 1 are the low and high nibbles of bytes 32j …, with bits 2j and
    // 2j + 1 of qh above them in q5_K.
    for (int j = 0; j < 4; j++) {
        const __m256i q = load32(qs + 32 * j), nibble = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
        __m256i lo = _mm256_and_si256(q, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
        if (qh) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j + 1), one), 4));
        }
        const __m256i scale_lo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));
        const __m256i scale_hi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));
        for (int i = 0; i < rows; i++) {
            const int8_t *yq = ROW(chronos_block_q8_K, y, stride, i)->qs + 64 * j;
            sum[i] = _mm256_add_epi32(sum[i], _mm256_add_epi32(dot_us_scaled(lo, load32(yq), scale_lo),
                                                               dot_us_scaled(hi, load32(yq + 32), scale_hi)));
        }
    }
    for (int i = 0; i < rows; i++) minsum[i] = scaled_bsums(mins, ROW(chronos_block_q8_K, y, stride, i));
    close_K(y, stride, rows, sum, minsum, half(d), half(dmin), acc);
}

AVX2 INLINE void dot_q4_K(const chronos_block_q4_K *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    dot_k4(w->d, w->dmin, w->scales, w->qs, NULL, y, stride, rows, acc);
}

AVX2 INLINE void dot_q5_K(const chronos_block_q5_K *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    dot_k4(w->d, w->dmin, w->scales, w->qs, w->qh, y, stride, rows, acc);
}

AVX2 INLINE void dot_q6_K(const chronos_block_q6_K *w, const void *y, size_t stride, int rows, __m256 *acc, float *bias) {
    (void)bias;
    const __m128i scales = _mm_loadu_si128((const __m128i *)w->scales);
    SPLIT_SCALES(_mm_cvtepi8_epi16, scales, low, high);
    const __m256i all = _mm256_cvtepi8_epi16(scales);
    const __m256i nibble = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    __m256i sum[TOKENS];
    for (int i = 0; i < rows; i++) sum[i] = _mm256_setzero_si256();
    // Chunk c = 4h + k: the low (k < 2) or high nibbles of ql[64h + 32·(k % 2) …] with bits 2k
    // of qh[32h …] above them; the quant is that − 32, taken off once per block.
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = load32(w->ql + 64 * h), ql1 = load32(w->ql + 64 * h + 32), qh = load32(w->qh + 32 * h);
        for (int k = 0; k < 4; k++) {
            const int c = 4 * h + k;
            const __m256i ql = k % 2 ? ql1 : ql0;
            const __m256i low4 = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), nibble);
            const __m256i top2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three), 4);
            const __m256i v = _mm256_or_si256(low4, top2);
            const __m256i scale = pair_scales(low, high, c);
            for (int i = 0; i < rows; i++) {
                const __m256i yq = load32(ROW(chronos_block_q8_K, y, stride, i)->qs + 32 * c);
                sum[i] = _mm256_add_epi32(sum[i], dot_us_scaled(v, yq, scale));
            }
        }
    }
    for (int i = 0; i < rows; i++)
        sum[i] = _mm256_sub_epi32(sum[i], _mm256_slli_epi32(scaled_bsums(all, ROW(chronos_block_q8_K, y, stride, i)), 5));
    close_K(y, stride, rows, sum, NULL, half(w->d), 0, acc);
}

// MARK: Kernels

/// KERNEL(n, ...) for the n = min(left, 4) activation rows of a tile, n a constant in each
/// branch so that the kernel's loops over them unroll.
#define TOKEN_TILE_4(left, KERNEL, ...)                                                                            \
    switch ((left) < 4 ? (left) : 4) {                                                                             \
    case 4: KERNEL(4, __VA_ARGS__); break;                                                                         \
    case 3: KERNEL(3, __VA_ARGS__); break;                                                                         \
    case 2: KERNEL(2, __VA_ARGS__); break;                                                                         \
    default: KERNEL(1, __VA_ARGS__); break;                                                                        \
    }

/// As `TOKEN_TILE_4`, for tiles of up to 8 rows.
#define TOKEN_TILE_8(left, KERNEL, ...)                                                                            \
    switch ((left) < 8 ? (left) : 8) {                                                                             \
    case 8: KERNEL(8, __VA_ARGS__); break;                                                                         \
    case 7: KERNEL(7, __VA_ARGS__); break;                                                                         \
    case 6: KERNEL(6, __VA_ARGS__); break;                                                                         \
    case 5: KERNEL(5, __VA_ARGS__); break;                                                                         \
    default: TOKEN_TILE_4(left, KERNEL, __VA_ARGS__)                                                               \
    }

/// out[i · ldo] = Σ_b w[b] · y_i[b] for `rows` activation rows y_i (`stride` bytes apart)
/// against one weight row of `blocks` blocks: each weight block is unpacked once for all of them.
/// With RUNS 4 the matrix-vector product takes its rows in four equal runs read side by side
/// (`rows4_`, the four weight rows `apart` blocks from each other), plus the rows left over:
/// four sequential streams in different pages keep more reads in flight than one. The K formats
/// (RUNS 1) spend longer unpacking each block than reading it, and read one row after another.
/// The GEMM takes TILE activation rows (4 or 8) for each weight block it unpacks.
#define ROW_KERNEL(NAME, WBLOCK, YBLOCK, RUNS, TILE)                                                               \
    AVX2 INLINE void row_##NAME(int rows, const WBLOCK *w, ptrdiff_t blocks, const YBLOCK *y, size_t stride,       \
                                float *out, ptrdiff_t ldo) {                                                       \
        __m256 acc[TOKENS];                                                                                        \
        float bias[TOKENS];                                                                                        \
        for (int i = 0; i < rows; i++) {                                                                           \
            acc[i] = _mm256_setzero_ps();                                                                          \
            bias[i] = 0;                                                                                           \
        }                                                                                                          \
        for (ptrdiff_t b = 0; b < blocks; b++) {                                                                   \
            for (size_t line = 0; line < sizeof(WBLOCK); line += 64)                                               \
                _mm_prefetch((const char *)(w + b) + PREFETCH + line, _MM_HINT_T0);                                \
            dot_##NAME(w + b, y + b, stride, rows, acc, bias);                                                     \
        }                                                                                                          \
        for (int i = 0; i < rows; i++) out[i * ldo] = hsum(acc[i]) + bias[i];                                      \
    }                                                                                                              \
    AVX2 INLINE void rows4_##NAME(const WBLOCK *w, ptrdiff_t blocks, size_t apart, const YBLOCK *y, float *out,    \
                                  ptrdiff_t ldo) {                                                                 \
        __m256 acc[4];                                                                                             \
        float bias[4];                                                                                             \
        for (int s = 0; s < 4; s++) {                                                                              \
            acc[s] = _mm256_setzero_ps();                                                                          \
            bias[s] = 0;                                                                                           \
        }                                                                                                          \
        for (ptrdiff_t b = 0; b < blocks; b++) {                                                                   \
            for (int s = 0; s < 4; s++) {                                                                          \
                const WBLOCK *ws = w + s * apart + b;                                                              \
                for (size_t line = 0; line < sizeof(WBLOCK); line += 64)                                           \
                    _mm_prefetch((const char *)ws + PREFETCH + line, _MM_HINT_T0);                                 \
                dot_##NAME(ws, y + b, 0, 1, &acc[s], &bias[s]);                                                    \
            }                                                                                                      \
        }                                                                                                          \
        for (int s = 0; s < 4; s++) out[s * ldo] = hsum(acc[s]) + bias[s];                                         \
    }                                                                                                              \
    AVX2 static void matvec_##NAME(const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const void *xq,  \
                                   float *y) {                                                                     \
        const ptrdiff_t blocks = cols / (ptrdiff_t)(sizeof(((YBLOCK *)0)->qs));                                    \
        const WBLOCK *base = (const WBLOCK *)w;                                                                    \
        const ptrdiff_t run = RUNS == 4 ? (row1 - row0) / 4 : 0;                                                   \
        for (ptrdiff_t i = 0; i < run; i++)                                                                        \
            rows4_##NAME(base + (row0 + i) * blocks, blocks, (size_t)(run * blocks), xq, y + row0 + i, run);       \
        for (ptrdiff_t r = row0 + 4 * run; r < row1; r++) row_##NAME(1, base + r * blocks, blocks, xq, 0, y + r, 0); \
    }                                                                                                              \
    AVX2 static void gemm_##NAME(ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *aq,         \
                                 const void *b, float *c, ptrdiff_t ldc) {                                         \
        const ptrdiff_t blocks = k / (ptrdiff_t)(sizeof(((YBLOCK *)0)->qs));                                       \
        const size_t stride = (size_t)blocks * sizeof(YBLOCK);                                                     \
        for (ptrdiff_t j = col0; j < col1; j++) {                                                                  \
            const WBLOCK *w = (const WBLOCK *)b + j * blocks;                                                      \
            for (ptrdiff_t i = 0; i < m; i += TILE) {                                                              \
                const YBLOCK *a = (const YBLOCK *)((const char *)aq + (size_t)i * stride);                         \
                TOKEN_TILE_##TILE(m - i, row_##NAME, w, blocks, a, stride, c + i * ldc + j, ldc)                   \
            }                                                                                                      \
        }                                                                                                          \
    }

ROW_KERNEL(q8_0, chronos_block_q8_0, chronos_block_q8_0, 4, 4)
ROW_KERNEL(q4_0, chronos_block_q4_0, chronos_block_q8_0, 1, 4)
ROW_KERNEL(q5_0, chronos_block_q5_0, chronos_block_q8_0, 4, 4)
ROW_KERNEL(q4_1, chronos_block_q4_1, chronos_block_q8_1, 4, 4)
ROW_KERNEL(q5_1, chronos_block_q5_1, chronos_block_q8_1, 4, 4)
ROW_KERNEL(q2_K, chronos_block_q2_K, chronos_block_q8_K, 1, 8)
ROW_KERNEL(q3_K, chronos_block_q3_K, chronos_block_q8_K, 1, 8)
ROW_KERNEL(q4_K, chronos_block_q4_K, chronos_block_q8_K, 1, 8)
ROW_KERNEL(q5_K, chronos_block_q5_K, chronos_block_q8_K, 1, 8)
ROW_KERNEL(q6_K, chronos_block_q6_K, chronos_block_q8_K, 1, 8)
ROW_KERNEL(mxfp4, chronos_block_mxfp4, chronos_block_q8_0, 4, 4)

/// The 16 bytes at p in both halves of a register.
AVX2 INLINE __m256i load16_twice(const void *p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

/// The quants of Q4_0 rows w and w + apart, unpacked: the 16 quant bytes of both rows in one
/// register, so that the low nibbles are values 0–15 of each row (in its half) and the high
/// nibbles values 16–31.
typedef struct { __m256i low, high; } q4_0_pair;

AVX2 INLINE q4_0_pair unpack_pair(const chronos_block_q4_0 *w, size_t apart) {
    const __m256i q = _mm256_loadu2_m128i((const __m128i *)w[apart].qs, (const __m128i *)w->qs);
    const __m256i mask = _mm256_set1_epi8(0x0F);
    return (q4_0_pair){_mm256_and_si256(q, mask), _mm256_and_si256(_mm256_srli_epi16(q, 4), mask)};
}

/// Σ q·y of a pair of rows against the 32 activation quants y (its first and last 16 bytes in
/// both halves): lanes 0–3 sum the first row's products, lanes 4–7 the second's.
AVX2 INLINE __m256i dot_pair(q4_0_pair q, const int8_t *y) {
    const __m256i low = _mm256_maddubs_epi16(q.low, load16_twice(y));
    const __m256i high = _mm256_maddubs_epi16(q.high, load16_twice(y + 16));
    // Each 16-bit sum is at most 4 · 15 · 128, so adding before widening cannot overflow.
    return _mm256_madd_epi16(_mm256_add_epi16(low, high), _mm256_set1_epi16(1));
}

/// The two Q4_0 scales of rows w and w + apart, converted, as [d d d d d' d' d' d'].
AVX2 INLINE __m256 pair_scales_q4_0(const chronos_block_q4_0 *w, size_t apart) {
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)w->d | (uint32_t)w[apart].d << 16)));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
}

/// Each activation block's d_x and −2·d_x·Σ q_x: a quarter of the −8·d_x·Σ q_x that takes the
/// −8 out of Σ (q − 8)·q_x, for each of a row's four lanes to carry.
typedef struct { float d, shift; } q4_0_block_terms;

AVX2 INLINE q4_0_block_terms block_terms(const chronos_block_q8_0 *x) {
    // Σ q_x as the dot product with ones; its partial sums (|·| ≤ 32 · 127) add exactly as floats.
    const float sum = hsum(_mm256_cvtepi32_ps(dot_us(_mm256_set1_epi8(1), load32(x->qs))));
    const float d = half(x->d);
    return (q4_0_block_terms){d, -2.0f * d * sum};
}

/// acc += (d_x · p + shift) · scales, lane by lane: one block's contribution to a pair of rows.
AVX2 INLINE __m256 add_pair(__m256i p, const q4_0_block_terms *t, __m256 scales, __m256 acc) {
    const __m256 value =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&t->d), _mm256_broadcast_ss(&t->shift));
    return _mm256_fmadd_ps(value, scales, acc);
}

/// Row w's and row w + apart's sums: lanes 0–3 and 4–7 of acc, added up.
AVX2 INLINE void store_pair(__m256 acc, float *out, ptrdiff_t apart) {
    const __m128 s = _mm_hadd_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 t = _mm_hadd_ps(s, s);
    out[0] = _mm_cvtss_f32(t);
    out[apart] = _mm_cvtss_f32(_mm_movehdup_ps(t));
}

/// The Q4_0 matrix-vector product, rows in four runs side by side as `matvec_` does, two rows
/// to a register (`unpack_pair`) so that one 8-lane product, conversion and multiply-add
/// serve two rows, and a row's four lanes are summed once at its end rather than per block.
/// Each activation block's terms are computed once for all rows. `matvec_q4_0`, one row after
/// another, is the fallback where the terms get no memory.
AVX2 static void matvec_q4_0_pairs(const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const void *xq,
                                   float *y) {
    const ptrdiff_t blocks = cols / CHRONOS_QK;
    const chronos_block_q8_0 *x = (const chronos_block_q8_0 *)xq;
    q4_0_block_terms local[512];
    q4_0_block_terms *terms = blocks <= 512 ? local : malloc((size_t)blocks * sizeof *terms);
    if (!terms) {
        matvec_q4_0(w, row0, row1, cols, xq, y);
        return;
    }
    for (ptrdiff_t b = 0; b < blocks; b++) terms[b] = block_terms(x + b);
    const chronos_block_q4_0 *base = (const chronos_block_q4_0 *)w;
    const ptrdiff_t run = (row1 - row0) / 4;
    const size_t apart = (size_t)(run * blocks);
    for (ptrdiff_t i = 0; i < run; i++) {
        const chronos_block_q4_0 *rows = base + (row0 + i) * blocks;
        __m256 acc01 = _mm256_setzero_ps(), acc23 = _mm256_setzero_ps();
        for (ptrdiff_t b = 0; b < blocks; b++) {
            const chronos_block_q4_0 *wb = rows + b;
            for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(wb + r * apart) + PREFETCH, _MM_HINT_T0);
            const chronos_block_q4_0 *wc = wb + 2 * apart;
            acc01 = add_pair(dot_pair(unpack_pair(wb, apart), x[b].qs), terms + b, pair_scales_q4_0(wb, apart), acc01);
            acc23 = add_pair(dot_pair(unpack_pair(wc, apart), x[b].qs), terms + b, pair_scales_q4_0(wc, apart), acc23);
        }
        store_pair(acc01, y + row0 + i, run);
        store_pair(acc23, y + row0 + i + 2 * run, run);
    }
    for (ptrdiff_t r = row0 + 4 * run; r < row1; r++) row_q4_0(1, base + r * blocks, blocks, xq, 0, y + r, 0);
    if (terms != local) free(terms);
}

/// Rows w and w + blocks of Q4_0 weights times `n` activation rows a (each `blocks` blocks, with
/// their `terms`): each weight block is unpacked once for all of them.
AVX2 INLINE void pair_tokens_q4_0(int n, const chronos_block_q4_0 *w, ptrdiff_t blocks, const chronos_block_q8_0 *a,
                                  const q4_0_block_terms *terms, float *out, ptrdiff_t ldc) {
    __m256 acc[TOKENS];
    for (int i = 0; i < n; i++) acc[i] = _mm256_setzero_ps();
    for (ptrdiff_t b = 0; b < blocks; b++) {
        _mm_prefetch((const char *)(w + b) + PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)(w + blocks + b) + PREFETCH, _MM_HINT_T0);
        const q4_0_pair q = unpack_pair(w + b, (size_t)blocks);
        const __m256 scales = pair_scales_q4_0(w + b, (size_t)blocks);
        for (int i = 0; i < n; i++)
            acc[i] = add_pair(dot_pair(q, a[i * blocks + b].qs), terms + i * blocks + b, scales, acc[i]);
    }
    for (int i = 0; i < n; i++) store_pair(acc[i], out + i * ldc, 1);
}

/// The Q4_0 product of `m` activation rows and weight rows col0..<col1, two weight rows at a
/// time as the matrix-vector product takes them, against up to four activation rows at once.
/// `gemm_q4_0` takes an odd row left over, and everything where the terms get no memory.
AVX2 static void gemm_q4_0_pairs(ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *aq, const void *b,
                                 float *c, ptrdiff_t ldc) {
    const ptrdiff_t blocks = k / CHRONOS_QK;
    const chronos_block_q8_0 *a = (const chronos_block_q8_0 *)aq;
    q4_0_block_terms *terms = malloc((size_t)(m * blocks) * sizeof *terms);
    if (!terms) {
        gemm_q4_0(m, col0, col1, k, aq, b, c, ldc);
        return;
    }
    for (ptrdiff_t i = 0; i < m * blocks; i++) terms[i] = block_terms(a + i);
    ptrdiff_t j = col0;
    for (; j + 1 < col1; j += 2) {
        const chronos_block_q4_0 *w = (const chronos_block_q4_0 *)b + j * blocks;
        for (ptrdiff_t i = 0; i < m; i += 4)
            TOKEN_TILE_4(m - i, pair_tokens_q4_0, w, blocks, a + i * blocks, terms + i * blocks, c + i * ldc + j, ldc)
    }
    if (j < col1) gemm_q4_0(m, j, col1, k, aq, b, c, ldc);
    free(terms);
}

#define EACH_TYPE_BUT_Q4_0(X)                                                                                      \
    X(CHRONOS_Q8_0, q8_0) X(CHRONOS_Q5_0, q5_0) X(CHRONOS_Q4_1, q4_1) X(CHRONOS_Q5_1, q5_1) X(CHRONOS_Q2_K, q2_K)  \
    X(CHRONOS_Q3_K, q3_K) X(CHRONOS_Q4_K, q4_K) X(CHRONOS_Q5_K, q5_K) X(CHRONOS_Q6_K, q6_K) X(CHRONOS_MXFP4, mxfp4)

AVX2 void chronos_quant_matvec_avx2(int type, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                                    const void *xq, float *y) {
    switch (type) {
    case CHRONOS_Q4_0: matvec_q4_0_pairs(w, row0, row1, cols, xq, y); break;
#define CASE(TYPE, NAME) case TYPE: matvec_##NAME(w, row0, row1, cols, xq, y); break;
        EACH_TYPE_BUT_Q4_0(CASE)
#undef CASE
    default: break;
    }
}

AVX2 void chronos_quant_gemm_nt_avx2(int type, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k,
                                     const void *aq, const void *b, float *c, ptrdiff_t ldc) {
    switch (type) {
    case CHRONOS_Q4_0: gemm_q4_0_pairs(m, col0, col1, k, aq, b, c, ldc); break;
#define CASE(TYPE, NAME) case TYPE: gemm_##NAME(m, col0, col1, k, aq, b, c, ldc); break;
        EACH_TYPE_BUT_Q4_0(CASE)
#undef CASE
    default: break;
    }
}

#endif
