#ifndef CHRONOS_KERNELS_INTERNAL_H
#define CHRONOS_KERNELS_INTERNAL_H

#include "ChronosKernels.h"

#if defined(__x86_64__)
extern const chronos_kernels chronos_kernels_avx2;
extern const chronos_kernels chronos_kernels_avx512;
extern const chronos_kernels chronos_kernels_avx512bf16;
#endif

#endif
