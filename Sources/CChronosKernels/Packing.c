// Packing of f32 operands into the panels of the blocked GEMM, for every instruction set: the
// register tile reads A as mr-row panels and B as nr-column panels, each walked along k.

#include "ChronosKernels.h"
#include <string.h>

void chronos_pack_a(int trans, const float *a, ptrdiff_t lda, ptrdiff_t row0, ptrdiff_t rows, ptrdiff_t col0,
                    ptrdiff_t cols, int mr, float *out) {
    for (ptrdiff_t i0 = row0; i0 < row0 + rows; i0 += mr) {
        const ptrdiff_t height = row0 + rows - i0 < mr ? row0 + rows - i0 : mr;
        float *dst = out + (i0 - row0) * cols;
        if (trans) {
            for (ptrdiff_t p = 0; p < cols; p++) {
                const float *src = a + (col0 + p) * lda + i0;
                float *d = dst + p * mr;
                for (ptrdiff_t r = 0; r < height; r++) d[r] = src[r];
                for (ptrdiff_t r = height; r < mr; r++) d[r] = 0;
            }
        } else {
            // Row by row: each row of A is read in order and written every mr floats.
            for (ptrdiff_t r = 0; r < mr; r++) {
                const float *src = a + (i0 + r) * lda + col0;
                if (r < height) {
                    for (ptrdiff_t p = 0; p < cols; p++) dst[p * mr + r] = src[p];
                } else {
                    for (ptrdiff_t p = 0; p < cols; p++) dst[p * mr + r] = 0;
                }
            }
        }
    }
}

void chronos_pack_b(int trans, const float *b, ptrdiff_t ldb, ptrdiff_t row0, ptrdiff_t rows, ptrdiff_t col0,
                    ptrdiff_t cols, int nr, float *out) {
    for (ptrdiff_t j0 = col0; j0 < col0 + cols; j0 += nr) {
        const ptrdiff_t width = col0 + cols - j0 < nr ? col0 + cols - j0 : nr;
        float *dst = out + (j0 - col0) * rows;
        if (trans) {
            // Column j of the panel is row j0 + j of the stored matrix: walk k in the outer loop
            // so the nr rows' cache lines are reused and the panel is written in order.
            for (ptrdiff_t p = 0; p < rows; p++) {
                float *d = dst + p * nr;
                for (ptrdiff_t j = 0; j < width; j++) d[j] = b[(j0 + j) * ldb + row0 + p];
                for (ptrdiff_t j = width; j < nr; j++) d[j] = 0;
            }
        } else {
            for (ptrdiff_t p = 0; p < rows; p++) {
                float *d = dst + p * nr;
                memcpy(d, b + (row0 + p) * ldb + j0, (size_t)width * sizeof(float));
                for (ptrdiff_t j = width; j < nr; j++) d[j] = 0;
            }
        }
    }
}
