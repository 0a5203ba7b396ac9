#include "KernelVariants.h"
#include <string.h>

// The AVX-512 bf16 panel kernels: panel packing with register transposes, and the product
// with bf16 activations on AVX512-BF16's vdpbf16ps (reached through the kernel table only
// where the CPU has them).

#if defined(__x86_64__)
#include <immintrin.h>

// Pairs [first_pair, k/2) of the panel layout one element at a time (any CPU; also the
// tails of the AVX-512 path).
static void pack_pairs_portable(const uint16_t *w, size_t stride, int rows, int first_pair, int k, uint16_t *panel) {
    uint32_t *out = (uint32_t *)panel;
    for (int kk = first_pair; kk < k / 2; kk++) {
        for (int r = 0; r < MX_BF16_PANEL_ROWS; r++) {
            uint32_t pair = 0;
            if (r < rows) memcpy(&pair, w + (size_t)r * stride + 2 * kk, 4);
            out[(size_t)kk * MX_BF16_PANEL_ROWS + r] = pair;
        }
    }
}

// Packs 32 weight rows as [k/2][32 rows][2]: one 64-byte load then holds a pair of
// consecutive k for 16 rows, the layout vdpbf16ps multiplies against a broadcast pair of
// activations. Missing rows (rows < 32) are zero.
// Transposes a 16x16 matrix of 32-bit values held in 16 registers (row i in r[i]):
// unpack 32-bit and 64-bit elements within 128-bit lanes, then gather the lanes.
__attribute__((target("avx512f")))
static void transpose16x16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // a[4g + c], lane L: column 4L + c of rows 4g .. 4g+3.
    __m512i a[16];
    for (int g = 0; g < 4; g++) {
        a[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        a[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        a[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        a[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i x0 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0x88);
        __m512i x1 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0xDD);
        __m512i y0 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0x88);
        __m512i y1 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0xDD);
        r[0 + c] = _mm512_shuffle_i32x4(x0, y0, 0x88);   // column c
        r[8 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);   // column 8 + c
        r[4 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);   // column 4 + c
        r[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);  // column 12 + c
    }
}

__attribute__((target("avx512f")))
void mx_bf16_pack_panel_avx512_transpose(const uint16_t *w, size_t stride, int rows, int k, uint16_t *panel) {
    uint32_t *out = (uint32_t *)panel;
    const int pairs = k / 2;
    int kk0 = 0;
    if (rows == MX_BF16_PANEL_ROWS) {
        // 16 rows x 16 pairs at a time through a register transpose.
        for (; kk0 + 16 <= pairs; kk0 += 16) {
            for (int block = 0; block < 2; block++) {
                __m512i r[16];
                for (int i = 0; i < 16; i++) {
                    r[i] = _mm512_loadu_si512(w + (size_t)(16 * block + i) * stride + 2 * kk0);
                }
                transpose16x16(r);
                for (int j = 0; j < 16; j++) {
                    _mm512_storeu_si512(out + (size_t)(kk0 + j) * MX_BF16_PANEL_ROWS + 16 * block, r[j]);
                }
            }
        }
    }
    // The rest (partial panels, pairs beyond a multiple of 16) one value at a time.
    pack_pairs_portable(w, stride, rows, kk0, k, panel);
}

__attribute__((target("avx512f,avx512bf16")))
static void tile_32x12(const uint16_t *panel, int k, const uint16_t *x, float out[12][32]) {
    __m512 acc[12][2];
    for (int t = 0; t < 12; t++) { acc[t][0] = _mm512_setzero_ps(); acc[t][1] = _mm512_setzero_ps(); }
    const uint32_t *xp = (const uint32_t *)x;
    const size_t xstride = (size_t)k / 2;
    for (int kk = 0; kk < k / 2; kk++) {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + (size_t)kk * 64);
        __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + (size_t)kk * 64 + 32);
#pragma GCC unroll 12
        for (int t = 0; t < 12; t++) {
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)xp[(size_t)t * xstride + kk]);
            acc[t][0] = _mm512_dpbf16_ps(acc[t][0], w0, b);
            acc[t][1] = _mm512_dpbf16_ps(acc[t][1], w1, b);
        }
    }
    for (int t = 0; t < 12; t++) {
        _mm512_storeu_ps(out[t], acc[t][0]);
        _mm512_storeu_ps(out[t] + 16, acc[t][1]);
    }
}

__attribute__((target("avx512f,avx512bf16")))
void mx_bf16_gemm_panel_avx512bf16(const uint16_t *w, size_t w_row_stride, int rows, int k,
                                   const uint16_t *x, int tokens, int padded_tokens,
                                   float *y, size_t y_row_stride, uint16_t *panel) {
    mx_bf16_pack_panel_avx512_transpose(w, w_row_stride, rows, k, panel);
    float out[12][32];
    for (int t0 = 0; t0 < padded_tokens; t0 += 12) {
        tile_32x12(panel, k, x + (size_t)t0 * k, out);
        for (int t = 0; t < 12 && t0 + t < tokens; t++) {
            memcpy(y + (size_t)(t0 + t) * y_row_stride, out[t], (size_t)rows * sizeof(float));
        }
    }
}

#endif
