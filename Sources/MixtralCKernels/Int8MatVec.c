#include "KernelVariants.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

// AVX-512 kernels for few-token products with activations quantised to 8 bits: the Q8_0/Q8_1
// quantiser, Q4_0 rows on AVX512-VBMI, and Q4_K/Q6_K rows with Q8_K activations (as
// llama.cpp's vec_dot_q4_K_q8_K / q6_K_q8_K compute them). Every weight block's product
// with an activation block is an exact integer sum, scaled by both blocks' scales.

#pragma clang fp contract(off)  // every fused multiply-add is written out

#if defined(__x86_64__)
#include <immintrin.h>

// llama.cpp's quantize_row_q8_0/q8_1 with AVX-512 (the portable kernel's values):
// vrndscaleps rounds to nearest even as nearbyintf does, and F16C rounds to fp16.
__attribute__((target("avx512f,avx512bw,f16c")))
void mx_q8_quantize_avx512_intrinsics(const float *x, int k, int8_t *q, float *d, float *s) {
    for (int b = 0; b < k / 32; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const __m512 inverse = _mm512_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, inverse), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m512i q1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, inverse), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
        const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        const float scale = amax / 127.0f;
        d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
        s[b] = _cvtsh_ss(_cvtss_sh(scale * (float)sum, _MM_FROUND_TO_NEAREST_INT));
    }
}
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"), always_inline)) static inline

TARGET float half_at(const uint8_t *p) {
    uint16_t bits;
    memcpy(&bits, p, 2);
    return _cvtsh_ss(bits);
}

// The 64 activation bytes of blocks b and b+1 (the second zero when b+1 == blocks).
TARGET __m512i activations2(const int8_t *q, int b, int blocks) {
    if (b + 1 < blocks) return _mm512_loadu_si512(q + 32 * b);
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(q + 32 * b)));
}

// Rows per group and the software prefetch, shared with the other int8 decode kernels
// (KernelVariants.h).
enum { ROWS = MX_INT8_DECODE_ROWS, PREFETCH_BYTES = MX_INT8_PREFETCH_BYTES };

// Q4_0 with AVX512-VBMI: fewer instructions per block pair, since this path is compute-bound
// at memory speed. One masked 36-byte load holds both blocks (d, 16 bytes of nibbles, d,
// 16 bytes); vpermb lays the nibble bytes out as [A A B B], a per-word shift and a mask
// leave weights A0..31 and B0..31 in activation order. The scales of four rows are
// gathered into one vector and converted once. Accumulation is in 16 lanes: llama.cpp runs
// Q4_0 through its repacked 8-row kernels, so there is no single summation order to follow.
#define TARGET_VBMI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi,f16c")))

TARGET_VBMI static void dot4_q4_0(const uint8_t *w, size_t row_bytes, int k, const int8_t *q, const float *d, float *y) {
    const int blocks = k / 32;
    const __m512i nibble_index = _mm512_set_epi8(
        35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
        35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
    // Words 0-7 and 16-23 keep their low nibbles, words 8-15 and 24-31 shift down the high ones.
    const __m512i shifts = _mm512_set_epi16(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0,
                                            4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    // The two fp16 scales of a row (words 0 and 9 of its load) for two rows at once.
    const __m512i scale_pairs = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 32, 9, 0);
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    const size_t ahead = mx_int8_prefetch_distance(row_bytes);
    __m512 acc[ROWS];
    for (int r = 0; r < ROWS; r++) acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b += 2) {
        const int pair = b + 1 < blocks;
        const __mmask64 bytes = pair ? (((__mmask64)1 << 36) - 1) : (((__mmask64)1 << 18) - 1);
        const __m512i x = activations2(q, b, blocks);
        const __m512i minus_eight_q = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                       _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), x));
        __m512i raw[ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            const uint8_t *A = w + (size_t)r * row_bytes + (size_t)b * 18;
            _mm_prefetch((const char *)A + ahead, _MM_HINT_T1);
            raw[r] = _mm512_maskz_loadu_epi8(bytes, A);
        }
        // The eight scales of the four rows, [dA dB] per row, times the activations' scales,
        // in one conversion; each row then takes its two as [dA x8, dB x8].
        const __m128i scales01 = _mm512_castsi512_si128(_mm512_permutex2var_epi16(raw[0], scale_pairs, raw[1]));
        const __m128i scales23 = _mm512_castsi512_si128(_mm512_permutex2var_epi16(raw[2], scale_pairs, raw[3]));
        const __m256 x_scales = _mm256_setr_ps(d[b], pair ? d[b + 1] : 0, d[b], pair ? d[b + 1] : 0,
                                               d[b], pair ? d[b + 1] : 0, d[b], pair ? d[b + 1] : 0);
        const __m512 scales = _mm512_castps256_ps512(
            _mm256_mul_ps(_mm256_cvtph_ps(_mm_unpacklo_epi64(scales01, scales23)), x_scales));
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            const __m512i weights = _mm512_and_si512(
                _mm512_srlv_epi16(_mm512_permutexvar_epi8(nibble_index, raw[r]), shifts), low_nibbles);
            const __m512i sums = _mm512_dpbusd_epi32(minus_eight_q, weights, x);
            const __m512i row_index = _mm512_inserti64x4(_mm512_set1_epi32(2 * r), _mm256_set1_epi32(2 * r + 1), 1);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_permutexvar_ps(row_index, scales), acc[r]);
        }
    }
    for (int r = 0; r < ROWS; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

TARGET_VBMI static void matmul_q4_0(const uint8_t *w, size_t row_bytes, int rows, int k, const int8_t *q,
                                    const float *d, int tokens, float *y, size_t y_row_stride) {
    const int blocks = k / 32;
    float out[ROWS];
    for (int r = 0; r < rows; r += ROWS) {
        const int full = r + ROWS <= rows;
        for (int t = 0; t < tokens; t++) {
            dot4_q4_0(w + (size_t)r * row_bytes, full ? row_bytes : 0, k, q + (size_t)t * k, d + (size_t)t * blocks, out);
            if (full) memcpy(y + (size_t)t * y_row_stride + r, out, sizeof out);
            else y[(size_t)t * y_row_stride + r] = out[0];
        }
        if (!full) r -= ROWS - 1;
    }
}

// Q4_K and Q6_K rows with llama.cpp's Q8_K activations (as vec_dot_q4_K_q8_K and
// vec_dot_q6_K_q8_K: integer sums per sub-block times the sub-block's integer scale, then
// the block scales). Layouts as in Dequantize.swift. vpdpbusd multiplies the unsigned
// 4/6-bit weights with the signed activations; Q4_K's mins and Q6_K's offset of 32 use the
// activations' sums of 16.

// The weights are unsigned (4 or 6 bits), so vpmaddubsw forms 16-bit sums of pairs with the
// signed activations (at most 63 * 127 * 2 < 2^15), and vpmaddwd multiplies those by the
// sub-block scales (16-bit, one per word) while summing to 32 bits: scaling costs no
// extra instruction. Blocks accumulate in 16 float lanes, reduced once per row.

// Words [s[a] x16, s[b] x16] from eight 16-bit scales (Q4_K's sub-blocks of 32).
TARGET __m512i spread_scales_32(__m512i scales16, int a) {
    const __m512i index = _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)(a + 1)), 1);
    return _mm512_permutexvar_epi16(index, scales16);
}

TARGET float dot_q6_K(const uint8_t *row, int blocks, const int8_t *q, const float *d, const int32_t *sums16) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
    const __m512i shifts01 = _mm512_set_epi16(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i shifts23 = _mm512_add_epi16(shifts01, _mm512_set1_epi16(4));
    // Word w of a 64-weight product belongs to sub-block w / 8 (16 weights = 8 pairs).
    const __m512i spread_low = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                                1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + 210 * (size_t)b;
        for (int offset = 0; offset < 210; offset += 64)
            _mm_prefetch((const char *)block + PREFETCH_BYTES + offset, _MM_HINT_T1);
        const int8_t *x = q + 256 * (size_t)b;
        const __m512i scales16 = _mm512_cvtepi8_epi16(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(block + 192))));
        // Σ sc (q - 32) q_x = Σ sc q q_x - 32 Σ sc Σ q_x: start from the second term.
        __m512i sums = _mm512_slli_epi32(_mm512_mullo_epi32(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(scales16)),
                                                            _mm512_loadu_si512(sums16 + 16 * (size_t)b)), 5);
        sums = _mm512_sub_epi32(_mm512_setzero_si512(), sums);
        for (int half = 0; half < 2; half++) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(block + 128 + 32 * half));
            const __m512i high = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
            const __m512i ql = _mm512_loadu_si512(block + 64 * half);
            // Weights 0..63 of the half: low nibbles of ql, qh bits 0-1 (0..31) and 2-3 (32..63).
            const __m512i w01 = _mm512_or_si512(_mm512_and_si512(ql, low4),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(high, shifts01), low2), 4));
            // Weights 64..127: high nibbles of ql, qh bits 4-5 and 6-7.
            const __m512i w23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(high, shifts23), low2), 4));
            const __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(spread_low, _mm512_set1_epi16((short)(8 * half))), scales16);
            const __m512i s23 = _mm512_permutexvar_epi16(_mm512_add_epi16(spread_low, _mm512_set1_epi16((short)(8 * half + 4))), scales16);
            sums = _mm512_add_epi32(sums, _mm512_madd_epi16(_mm512_maddubs_epi16(w01, _mm512_loadu_si512(x + 128 * half)), s01));
            sums = _mm512_add_epi32(sums, _mm512_madd_epi16(_mm512_maddubs_epi16(w23, _mm512_loadu_si512(x + 128 * half + 64)), s23));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(half_at(block + 208) * d[b]), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// sums32[j]: the activations' sums over each sub-block of 32 (two sums of 16), for Q4_K's mins.
TARGET float dot_q4_K(const uint8_t *row, int blocks, const int8_t *q, const float *d, const int32_t *sums32) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float minimum_terms = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + 144 * (size_t)b;
        for (int offset = 0; offset < 144; offset += 64)
            _mm_prefetch((const char *)block + PREFETCH_BYTES + offset, _MM_HINT_T1);
        const int8_t *x = q + 256 * (size_t)b;
        uint64_t scale_bytes, minimum_bytes;
        mx_k_scale_and_min_bytes(block + 4, &scale_bytes, &minimum_bytes);
        const __m512i scales16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(_mm_cvtsi64_si128((long long)scale_bytes)));
        const __m256i minimums = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)minimum_bytes));
        const __m256i minimum_products = _mm256_mullo_epi32(minimums, _mm256_loadu_si256((const __m256i *)(sums32 + 8 * (size_t)b)));
        __m128i minimum_sum = _mm_add_epi32(_mm256_castsi256_si128(minimum_products), _mm256_extracti128_si256(minimum_products, 1));
        minimum_sum = _mm_add_epi32(minimum_sum, _mm_shuffle_epi32(minimum_sum, 0x4E));
        minimum_sum = _mm_add_epi32(minimum_sum, _mm_shuffle_epi32(minimum_sum, 0xB1));
        __m512i sums = _mm512_setzero_si512();
        for (int chunk = 0; chunk < 4; chunk++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(block + 16 + 32 * chunk));
            const __m512i weights = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(bytes, low4)),
                                                       _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4), 1);
            const __m512i pairs = _mm512_maddubs_epi16(weights, _mm512_loadu_si512(x + 64 * chunk));
            sums = _mm512_add_epi32(sums, _mm512_madd_epi16(pairs, spread_scales_32(scales16, 2 * chunk)));
        }
        const float dx = d[b];
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(half_at(block) * dx), acc);
        minimum_terms = fmaf(-(half_at(block + 2) * dx), (float)_mm_cvtsi128_si32(minimum_sum), minimum_terms);
    }
    return _mm512_reduce_add_ps(acc) + minimum_terms;
}

// Q5_K: the AVX2 kernel (the same bits).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c")))
void mx_q8k_matvec_avx512_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k,
                                     const int8_t *q, const float *d, const int32_t *sums16, float *y) {
    const uint8_t *weights = (const uint8_t *)w;
    if (type == MX_Q8K_Q5_K) {
        mx_q8k_matvec_avx2_intrinsics(w, row_bytes, type, rows, k, q, d, sums16, y);
        return;
    }
    const int blocks = k / 256;
    if (type == MX_Q8K_Q6_K) {
        for (int r = 0; r < rows; r++) {
            const uint8_t *row = weights + (size_t)r * row_bytes;
            y[r] = dot_q6_K(row, blocks, q, d, sums16);
        }
        return;
    }
    // Q4_K: the activations' sums per 32, once for all rows.
    int32_t stack_sums[512];
    int32_t *sums32 = k / 32 <= 512 ? stack_sums : (int32_t *)malloc(sizeof(int32_t) * (size_t)(k / 32));
    if (!sums32) {
        for (int r = 0; r < rows; r++) y[r] = NAN;
        return;
    }
    for (int j = 0; j < k / 32; j++) sums32[j] = sums16[2 * j] + sums16[2 * j + 1];
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = weights + (size_t)r * row_bytes;
        y[r] = dot_q4_K(row, blocks, q, d, sums32);
    }
    if (sums32 != stack_sums) free(sums32);
}

// Q4_0 rows on the VBMI kernel; Q8_0 and Q4_1 on the AVX2 one: decode reads weights at
// memory speed with 256-bit vectors, and the 512-bit version of the same kernel measured
// slower on a CPU that executes 512-bit operations in two halves (AMD Zen 4).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi,f16c")))
void mx_q8_matmul_avx512vbmi(const void *w, size_t row_bytes, int type, int rows, int k,
                             const int8_t *q, const float *d, const float *s, int tokens, float *y, size_t y_row_stride) {
    if (type == MX_INT8_Q4_0) matmul_q4_0((const uint8_t *)w, row_bytes, rows, k, q, d, tokens, y, y_row_stride);
    else mx_q8_matmul_avx2_intrinsics(w, row_bytes, type, rows, k, q, d, s, tokens, y, y_row_stride);
}

#endif
