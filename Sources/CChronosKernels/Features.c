// Which instruction sets this processor and its operating system support, read once from cpuid
// and xgetbv, and the table of kernels for each.

#include "ChronosKernels.h"
#include "Kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

int chronos_isa_supported(chronos_isa isa) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = read_xcr0();
    // The OS must save the YMM state (bits 1–2) for AVX, and the opmask and ZMM state (bits 5–7) for AVX-512.
    if ((xcr0 & 0x6) != 0x6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int baseline = avx2 && fma && f16c;
    int wide = baseline && avx512f && avx512dq && avx512bw && avx512vl && (xcr0 & 0xE0) == 0xE0;
    switch (isa) {
    case CHRONOS_ISA_AVX2: return baseline;
    case CHRONOS_ISA_AVX512: return wide;
    case CHRONOS_ISA_AVX512BF16: {
        unsigned a1, b1, c1, d1;
        if (!wide || !__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) return 0;
        return (a1 >> 5) & 1;
    }
    }
    return 0;
}

static int has_avx512_vnni(void) {
    unsigned a, b, c, d;
    if (!chronos_isa_supported(CHRONOS_ISA_AVX512) || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (c >> 11) & 1;
}

__attribute__((target("avx512f,avx512vnni")))
static double int8_dot_peak(long iterations) {
    __m512i c[12];
    const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_epi32(i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) c[i] = _mm512_dpbusd_epi32(c[i], x, y);
        __asm__ volatile("" : "+v"(c[0]), "+v"(c[1]), "+v"(c[2]), "+v"(c[3]), "+v"(c[4]), "+v"(c[5]),
                         "+v"(c[6]), "+v"(c[7]), "+v"(c[8]), "+v"(c[9]), "+v"(c[10]), "+v"(c[11]));
    }
    volatile int sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_epi32(c[i]);
    (void)sink;
    return (double)iterations * 12 * 64 * 2;
}

double chronos_int8_dot_peak(long iterations) {
    return has_avx512_vnni() ? int8_dot_peak(iterations) : 0;
}

const chronos_kernels *chronos_kernels_for(chronos_isa isa) {
    switch (isa) {
    case CHRONOS_ISA_AVX2: return &chronos_kernels_avx2;
    case CHRONOS_ISA_AVX512: return &chronos_kernels_avx512;
    case CHRONOS_ISA_AVX512BF16: return &chronos_kernels_avx512bf16;
    }
    return NULL;
}

#else

int chronos_isa_supported(chronos_isa isa) { (void)isa; return 0; }
double chronos_int8_dot_peak(long iterations) { (void)iterations; return 0; }
const chronos_kernels *chronos_kernels_for(chronos_isa isa) { (void)isa; return NULL; }

#endif
