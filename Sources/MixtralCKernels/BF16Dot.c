#include "MixtralCKernels.h"

// Four bf16 weight rows dotted with fp32 x (decode), with software prefetch: the same
// arithmetic as the Swift kernel (even/odd split of x, bf16 words widened by shift and
// mask), plus a prefetch 8 KB ahead in each of the four row streams (about the next group
// of rows): the hardware prefetcher alone kept decode at ~35 GB/s; measured distances
// (1, 2, 4, 8, 16 KB) gave 104, 111, 114, 136 and 127 tokens/s on the benchmark model.

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
void mx_bf16_dot4(const uint16_t *w, size_t row_stride, const float *x, int k, float *y) {
    const __m512i mask = _mm512_set1_epi32((int)0xFFFF0000);
    const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 even[4], odd[4];
    for (int r = 0; r < 4; r++) { even[r] = _mm512_setzero_ps(); odd[r] = _mm512_setzero_ps(); }
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        // (4096 bf16 = 8 KB ahead; see above.)
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        const __m512 xe = _mm512_permutex2var_ps(x0, even_index, x1);
        const __m512 xo = _mm512_permutex2var_ps(x0, odd_index, x1);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint16_t *row = w + (size_t)r * row_stride + i;
            _mm_prefetch((const char *)(row + 4096), _MM_HINT_T0);
            const __m512i words = _mm512_loadu_si512(row);
            even[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(words, 16)), xe, even[r]);
            odd[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(words, mask)), xo, odd[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
        const uint16_t *row = w + (size_t)r * row_stride;
        for (int j = i; j < k; j++) {
            union { uint32_t u; float f; } v = {.u = (uint32_t)row[j] << 16};
            sum += v.f * x[j];
        }
        y[r] = sum;
    }
}

// Rows one after another for one token (decode). Rows are contiguous in memory, so a
// thread's rows are one sequential stream: reading four rows side by side (mx_bf16_dot4)
// made four streams that jump 8 KB at every call, and a 384 MB matrix-vector benchmark
// read 73 GB/s that way against 82 GB/s in sequence (a plain sum: 88). x comes split into
// even/odd halves per 32 (mx_bf16_split_pairs), so a bf16 pair widens by shift and mask
// with no shuffles. The prefetch runs 8 KB ahead (4 KB: 81 GB/s, 16 KB: 81).
__attribute__((target("avx512f")))
void mx_bf16_split_pairs(const float *x, int k, float *out) {
    const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(out + i, _mm512_permutex2var_ps(x0, even_index, x1));
        _mm512_storeu_ps(out + i + 16, _mm512_permutex2var_ps(x0, odd_index, x1));
    }
    for (; i < k; i++) out[i] = x[i];
}

__attribute__((target("avx512f")))
void mx_bf16_dot_rows(const uint16_t *w, size_t row_stride, const float *x_split, int k, float *y, int rows) {
    const __m512i mask = _mm512_set1_epi32((int)0xFFFF0000);
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 64 <= k; i += 64) {
            _mm_prefetch((const char *)(row + i + 4096), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + i + 4096 + 32), _MM_HINT_T0);
            const __m512i w0 = _mm512_loadu_si512(row + i), w1 = _mm512_loadu_si512(row + i + 32);
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), _mm512_loadu_ps(x_split + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w0, mask)), _mm512_loadu_ps(x_split + i + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w1, 16)), _mm512_loadu_ps(x_split + i + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w1, mask)), _mm512_loadu_ps(x_split + i + 48), a3);
        }
        if (i + 32 <= k) {
            const __m512i w0 = _mm512_loadu_si512(row + i);
            a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), _mm512_loadu_ps(x_split + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w0, mask)), _mm512_loadu_ps(x_split + i + 16), a1);
            i += 32;
        }
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (; i < k; i++) {
            union { uint32_t u; float f; } v = {.u = (uint32_t)row[i] << 16};
            sum += v.f * x_split[i];
        }
        y[r] = sum;
    }
}

// Reads `bytes` (a multiple of 64) as 64-bit integers, folded into one value so the loads
// cannot be dropped; integer adds, because weight bytes read as floats hold NaNs and
// subnormals. With `prefetch`, a software prefetch runs 8 KB ahead, as the decode kernels
// read weights.
__attribute__((target("avx512f")))
uint64_t mx_read_memory(const void *memory, size_t bytes, int prefetch) {
    const char *p = (const char *)memory;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    if (prefetch) {
        for (size_t i = 0; i + 256 <= bytes; i += 256) {
            _mm_prefetch(p + i + 8192, _MM_HINT_T0);
            _mm_prefetch(p + i + 8192 + 64, _MM_HINT_T0);
            _mm_prefetch(p + i + 8192 + 128, _MM_HINT_T0);
            _mm_prefetch(p + i + 8192 + 192, _MM_HINT_T0);
            a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
            a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
            a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
            a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
        }
    } else {
        for (size_t i = 0; i + 256 <= bytes; i += 256) {
            a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
            a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
            a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
            a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
        }
    }
    for (size_t i = bytes / 256 * 256; i + 64 <= bytes; i += 64) a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}
// Four bf16 rows times T tokens (2 <= T <= 4; y[t * y_stride + r]): each weight is read
// once for all tokens, with no panel packing (a batched decode step gives each expert only
// a few tokens). One accumulator per (row, token) takes the even and the odd products.
__attribute__((target("avx512f"), always_inline))
static inline void dot4_tokens(const uint16_t *w, size_t row_stride, const float *x, int k, float *y,
                               size_t y_stride, const int T) {
    const __m512i mask = _mm512_set1_epi32((int)0xFFFF0000);
    const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        __m512 xe[4], xo[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m512 x0 = _mm512_loadu_ps(x + (size_t)t * k + i), x1 = _mm512_loadu_ps(x + (size_t)t * k + i + 16);
            xe[t] = _mm512_permutex2var_ps(x0, even_index, x1);
            xo[t] = _mm512_permutex2var_ps(x0, odd_index, x1);
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint16_t *row = w + (size_t)r * row_stride + i;
            _mm_prefetch((const char *)(row + 4096), _MM_HINT_T0);
            const __m512i words = _mm512_loadu_si512(row);
            const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
            const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(words, mask));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(odd, xo[t], _mm512_fmadd_ps(even, xe[t], acc[r][t]));
        }
    }
    for (int r = 0; r < 4; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        for (int t = 0; t < T; t++) {
            float sum = _mm512_reduce_add_ps(acc[r][t]);
            for (int j = i; j < k; j++) {
                union { uint32_t u; float f; } v = {.u = (uint32_t)row[j] << 16};
                sum += v.f * x[(size_t)t * k + j];
            }
            y[(size_t)t * y_stride + r] = sum;
        }
    }
}

__attribute__((target("avx512f")))
void mx_bf16_dot4_tokens(const uint16_t *w, size_t row_stride, const float *x, int tokens, int k, float *y, size_t y_stride) {
    switch (tokens) {
    case 2: dot4_tokens(w, row_stride, x, k, y, y_stride, 2); break;
    case 3: dot4_tokens(w, row_stride, x, k, y, y_stride, 3); break;
    default: dot4_tokens(w, row_stride, x, k, y, y_stride, 4); break;
    }
}

#else

uint64_t mx_read_memory(const void *memory, size_t bytes, int prefetch) {
    (void)prefetch;
    const uint64_t *p = (const uint64_t *)memory;
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes / 8; i++) sum += p[i];
    return sum;
}

void mx_bf16_split_pairs(const float *x, int k, float *out) {
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        for (int j = 0; j < 16; j++) { out[i + j] = x[i + 2 * j]; out[i + 16 + j] = x[i + 2 * j + 1]; }
    }
    for (; i < k; i++) out[i] = x[i];
}

void mx_bf16_dot_rows(const uint16_t *w, size_t row_stride, const float *x_split, int k, float *y, int rows) {
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        float sum = 0;
        int i = 0;
        for (; i + 32 <= k; i += 32) {
            for (int j = 0; j < 16; j++) {
                union { uint32_t u; float f; } e = {.u = (uint32_t)row[i + 2 * j] << 16}, o = {.u = (uint32_t)row[i + 2 * j + 1] << 16};
                sum += e.f * x_split[i + j] + o.f * x_split[i + 16 + j];
            }
        }
        for (; i < k; i++) {
            union { uint32_t u; float f; } v = {.u = (uint32_t)row[i] << 16};
            sum += v.f * x_split[i];
        }
        y[r] = sum;
    }
}

void mx_bf16_dot4_tokens(const uint16_t *w, size_t row_stride, const float *x, int tokens, int k, float *y, size_t y_stride) {
    for (int t = 0; t < tokens; t++) {
        float out[4];
        mx_bf16_dot4(w, row_stride, x + (size_t)t * k, k, out);
        for (int r = 0; r < 4; r++) y[(size_t)t * y_stride + r] = out[r];
    }
}

void mx_bf16_dot4(const uint16_t *w, size_t row_stride, const float *x, int k, float *y) {
    for (int r = 0; r < 4; r++) {
        float sum = 0;
        for (int j = 0; j < k; j++) {
            union { uint32_t u; float f; } v = {.u = (uint32_t)w[(size_t)r * row_stride + j] << 16};
            sum += v.f * x[j];
        }
        y[r] = sum;
    }
}

#endif
