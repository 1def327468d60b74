#ifndef CHRONOS_KERNELS_H
#define CHRONOS_KERNELS_H

// The instruction-set-specific kernels: each x86-64 variant is compiled for its own instruction
// set through function attributes, so one build carries all of them and picks at run time.

#include <stddef.h>
#include <stdint.h>

#include "ChronosQuant.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets with kernels of their own, narrowest first.
typedef enum {
    CHRONOS_ISA_AVX2 = 1,        ///< AVX2 + FMA + F16C (x86-64, Haswell and later)
    CHRONOS_ISA_AVX512 = 2,      ///< AVX-512 F/BW/VL/DQ
    CHRONOS_ISA_AVX512BF16 = 3,  ///< AVX-512 with the bf16 dot product (vdpbf16ps)
} chronos_isa;

/// Element types of weights the kernels read (the values of Swift's `DType` for them).
typedef enum {
    CHRONOS_F32 = 0,
    CHRONOS_F16 = 1,
    CHRONOS_BF16 = 2,
} chronos_dtype;

/// One instruction set's kernels. Leading dimensions and counts are in elements.
typedef struct {
    /// Rows and columns of the packed GEMM's register tile.
    int mr, nr;
    /// Where bf16 weights multiply activations rounded to bf16 (the set's bf16 dot product):
    /// rounds n values to bf16, nearest with ties to even, for `gemm_nt`'s activations (`matvec`
    /// rounds x itself). NULL where activations stay f32.
    void (*round_bf16)(const float *x, uint16_t *out, ptrdiff_t n);
    /// c[i, j] = alpha · Σ_p a[p·mr + i] · b[p·nr + j] + beta · c[i, j] over `kc` packed steps,
    /// for i < rows ≤ mr and j < cols ≤ nr; c is read only when beta ≠ 0.
    void (*tile)(ptrdiff_t kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int rows, int cols,
                 float alpha, float beta);
    /// y[r] = Σ_c w[r, c] · x[c] for rows r in [row0, row1) of a row-major `dtype` matrix.
    void (*matvec)(int dtype, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols,
                   const float *x, float *y);
    /// c[i, j] = Σ_p a[i, p] · b[j, p] for i < m and j in [col0, col1): activations `a` (f32,
    /// or bf16 from `round_bf16` where the set has it and `dtype` is bf16) times row-major
    /// weights `b`.
    void (*gemm_nt)(int dtype, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k,
                    const void *a, ptrdiff_t lda, const void *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);
    /// y[r] = Σ_c w[r, c] · x[c] for rows r in [row0, row1) of row-major block-format `type`
    /// weights, x quantised by `chronos_quantize_activations` to the type's dot format.
    void (*quant_matvec)(int type, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const void *xq, float *y);
    /// c[i, j] = Σ_p a[i, p] · b[j, p] for i < m and j in [col0, col1): m activation rows
    /// quantised as for `quant_matvec` (rows back to back) times row-major `type` weights b.
    void (*quant_gemm_nt)(int type, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *aq, const void *b,
                          float *c, ptrdiff_t ldc);
    /// Σ a[i] · b[i].
    float (*dot)(const float *a, const float *b, ptrdiff_t n);
    /// y[i] += alpha · x[i].
    void (*axpy)(float alpha, const float *x, float *y, ptrdiff_t n);
    /// Runs `iterations` rounds of independent multiply-adds at the set's full width and
    /// returns the floating-point operations done (a multiply-add counts two).
    double (*fma_peak)(long iterations);
    /// As `fma_peak` with the bf16 dot product, or NULL where the set has none.
    double (*bf16_dot_peak)(long iterations);
} chronos_kernels;

/// Whether this processor and operating system can run `isa` (cpuid and the saved register state).
int chronos_isa_supported(chronos_isa isa);

/// Runs `iterations` rounds of independent AVX512-VNNI int8 dot products (vpdpbusd, 64
/// multiply-adds each) and returns the integer operations done (a multiply-add counts two), or
/// 0 where the processor lacks AVX512-VNNI.
double chronos_int8_dot_peak(long iterations);

/// The kernels for `isa`, or NULL when this build has none for it (not x86-64).
const chronos_kernels *chronos_kernels_for(chronos_isa isa);

/// Packs op(A)[row0 ..< row0+rows, col0 ..< col0+cols] of an f32 matrix into mr-row panels:
/// panel q holds cols × mr floats (for each k, the mr rows), zero-padded past `rows`.
void chronos_pack_a(int trans, const float *a, ptrdiff_t lda, ptrdiff_t row0, ptrdiff_t rows, ptrdiff_t col0,
                    ptrdiff_t cols, int mr, float *out);

/// Packs op(B)[row0 ..< row0+rows, col0 ..< col0+cols] of an f32 matrix into nr-wide panels:
/// panel p holds rows × nr floats, row-major, zero-padded past `cols`.
void chronos_pack_b(int trans, const float *b, ptrdiff_t ldb, ptrdiff_t row0, ptrdiff_t rows, ptrdiff_t col0,
                    ptrdiff_t cols, int nr, float *out);

#ifdef __cplusplus
}
#endif

#endif
