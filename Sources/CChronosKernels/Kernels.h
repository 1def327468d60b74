#ifndef CHRONOS_KERNELS_INTERNAL_H
#define CHRONOS_KERNELS_INTERNAL_H

#include "ChronosKernels.h"

#if defined(__x86_64__)
extern const chronos_kernels chronos_kernels_avx2;
extern const chronos_kernels chronos_kernels_avx512;
extern const chronos_kernels chronos_kernels_avx512bf16;

/// The AVX2 block-format kernels, shared by every x86-64 table.
void chronos_quant_matvec_avx2(int type, const void *w, ptrdiff_t row0, ptrdiff_t row1, ptrdiff_t cols, const void *xq,
                               float *y);
void chronos_quant_gemm_nt_avx2(int type, ptrdiff_t m, ptrdiff_t col0, ptrdiff_t col1, ptrdiff_t k, const void *aq,
                                const void *b, float *c, ptrdiff_t ldc);
#endif

#endif
