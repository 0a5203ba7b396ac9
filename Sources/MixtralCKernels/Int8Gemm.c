#include "KernelVariants.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// Multi-token products of Q8_0 / Q4_0 weights with activations quantised to 8 bits per
// block of 32 (llama.cpp's arithmetic for quantised weights), on AVX512-VNNI's vpdpbusd.
// vpdpbusd multiplies unsigned by signed bytes, so activations are stored as q + 128 and
// the block result is corrected by 128 * (sum of the block's weights):
//   sum_k (q_k + 128) w_k - 128 sum_k w_k = sum_k q_k w_k.

enum { GROUPS = 8 };  // groups of 4 consecutive k in a block of 32

// Panel layout, per block of 32 k: [8 groups][16 rows][4 bytes] of signed weights, then 16
// float scales, then 16 int32 corrections (128 * sum of the row's weights in the block).
static size_t panel_block_bytes(void) { return GROUPS * 16 * 4 + 16 * 4 + 16 * 4; }

size_t mx_int8_panel_bytes_avx512vnni(int k) { return (size_t)(k / 32) * panel_block_bytes(); }

// Activations as q + 128 (vpdpbusd's unsigned operand); padding rows 128 (a zero
// activation) with scale 0.
void mx_int8_quantize_activations_avx512vnni(const float *x, int tokens, int padded_tokens, int k, uint8_t *xq,
                                             float *dx, int32_t *sums16) {
    int8_t q[32];
    float unused;
    for (int t = 0; t < padded_tokens; t++) {
        for (int b = 0; b < k / 32; b++) {
            uint8_t *out = xq + (size_t)t * k + 32 * b;
            int32_t *sums = sums16 + (size_t)t * (k / 16) + 2 * b;
            if (t >= tokens) {
                memset(out, 128, 32);
                dx[(size_t)t * (k / 32) + b] = 0;
                sums[0] = sums[1] = 0;
                continue;
            }
            mx_q8_quantize_avx512_intrinsics(x + (size_t)t * k + 32 * b, 32, q, dx + (size_t)t * (k / 32) + b, &unused);
            mx_sums_per_16(q, 2, sums);
            for (int j = 0; j < 32; j++) out[j] = (uint8_t)(q[j] + 128);
        }
    }
}

// The same panel with AVX-512: each row's 32 signed weights of a block become one 256-bit
// vector, rows r and r+8 share a 512-bit register, and an 8x8 transpose of 32-bit groups
// (unpack 32, unpack 64, then 128-bit lanes across registers) turns them into the
// [group][16 rows][4 bytes] layout: about 50 instructions per block of 16 rows, where the
// scalar loops took thousands (a quarter of Q4_0 prefill).
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
void mx_int8_pack_panel_avx512vnni(const void *w, size_t row_bytes, int type, int rows, int k, void *panel) {
    if (type != MX_INT8_Q8_0 && type != MX_INT8_Q4_0) {
        mx_int8_pack_unsigned_avx2(w, row_bytes, type, rows, k, panel);  // the layout of every level
        return;
    }
    const int blocks = k / 32;
    const int block_bytes = type == MX_INT8_Q8_0 ? 34 : 18;
    const __m512i low_lanes = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i high_lanes = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    uint8_t *out = (uint8_t *)panel;
    for (int b = 0; b < blocks; b++) {
        float *scales = (float *)(out + GROUPS * 64);
        int32_t *corrections = (int32_t *)(out + GROUPS * 64 + 64);
        __m256i row_quants[16];
        for (int r = 0; r < 16; r++) {
            if (r >= rows) {
                row_quants[r] = _mm256_setzero_si256();
                scales[r] = 0;
                corrections[r] = 0;
                continue;
            }
            const uint8_t *block = (const uint8_t *)w + (size_t)r * row_bytes + (size_t)b * block_bytes;
            uint16_t bits;
            memcpy(&bits, block, 2);
            scales[r] = _cvtsh_ss(bits);
            __m256i q;
            if (type == MX_INT8_Q8_0) {
                q = _mm256_loadu_si256((const __m256i *)(block + 2));
            } else {
                const __m128i packed = _mm_loadu_si128((const __m128i *)(block + 2));
                const __m128i mask = _mm_set1_epi8(0x0F);
                q = _mm256_sub_epi8(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(packed, mask)),
                                                            _mm_and_si128(_mm_srli_epi16(packed, 4), mask), 1),
                                    _mm256_set1_epi8(8));
            }
            row_quants[r] = q;
            // Σ q: pairs of bytes times 1, then pairs of words.
            const __m256i words = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            const __m256i dwords = _mm256_madd_epi16(words, _mm256_set1_epi16(1));
            __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(dwords), _mm256_extracti128_si256(dwords, 1));
            sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
            sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
            corrections[r] = 128 * _mm_cvtsi128_si32(sum);
        }
        __m512i z[8], t[8], u[8];
        for (int i = 0; i < 8; i++) {
            z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(row_quants[i]), row_quants[i + 8], 1);
        }
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
            t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
            u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
            u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
            u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
        }
        // u[j] (j < 4) holds group j (lanes 0-3 of each 256-bit half) and group j + 4 (lanes
        // 4-7) of rows 0-3 / 8-11; u[j + 4] the same for rows 4-7 / 12-15.
        for (int j = 0; j < 4; j++) {
            _mm512_storeu_si512(out + j * 64, _mm512_permutex2var_epi64(u[j], low_lanes, u[j + 4]));
            _mm512_storeu_si512(out + (j + 4) * 64, _mm512_permutex2var_epi64(u[j], high_lanes, u[j + 4]));
        }
        out += panel_block_bytes();
    }
}

// 16 rows x 8 tokens: integer accumulators per block (scales differ per block), then
// scaled into float accumulators.
__attribute__((target("avx512f,avx512vnni")))
static void tile_16x8(const uint8_t *panel, int k, const uint8_t *xu, const float *dx, float out[8][16]) {
    const int blocks = k / 32;
    __m512 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * (GROUPS * 64 + 128);
        const __m512 scales = _mm512_loadu_ps(block + GROUPS * 64);
        const __m512i corrections = _mm512_loadu_si512(block + GROUPS * 64 + 64);
        __m512i iacc[8];
        for (int t = 0; t < 8; t++) iacc[t] = _mm512_sub_epi32(_mm512_setzero_si512(), corrections);
        for (int g = 0; g < GROUPS; g++) {
            const __m512i weights = _mm512_loadu_si512(block + g * 64);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) {
                int32_t four;
                memcpy(&four, xu + (size_t)t * k + 32 * b + 4 * g, 4);
                iacc[t] = _mm512_dpbusd_epi32(iacc[t], _mm512_set1_epi32(four), weights);
            }
        }
        for (int t = 0; t < 8; t++) {
            const __m512 scale = _mm512_mul_ps(scales, _mm512_set1_ps(dx[(size_t)t * blocks + b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t]), scale, acc[t]);
        }
    }
    for (int t = 0; t < 8; t++) _mm512_storeu_ps(out[t], acc[t]);
}

// Unsigned weights (Q4_1, Q4_K, Q5_K; the portable layout with offsets, see Portable.h):
// vpdpbusd takes them as its unsigned operand and the activations (q + 128, turned back
// into q) as the signed one; per block fma(Σ u q, s d_x), then fma(o d_x, Σ q).
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_unsigned_16x8(const uint8_t *panel, int k, const uint8_t *xu, const float *dx, const int32_t *sums16,
                               float out[8][16]) {
    const int blocks = k / 32;
    __m512 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * (GROUPS * 64 + 128);
        __m512i iacc[8];
        for (int t = 0; t < 8; t++) iacc[t] = _mm512_setzero_si512();
        for (int g = 0; g < GROUPS; g++) {
            const __m512i weights = _mm512_loadu_si512(block + g * 64);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) {
                uint32_t four;
                memcpy(&four, xu + (size_t)t * k + 32 * b + 4 * g, 4);
                iacc[t] = _mm512_dpbusd_epi32(iacc[t], weights, _mm512_set1_epi32((int)(four ^ 0x80808080u)));
            }
        }
        const __m512 scales = _mm512_loadu_ps(block + GROUPS * 64), offsets = _mm512_loadu_ps(block + GROUPS * 64 + 64);
        for (int t = 0; t < 8; t++) {
            const int32_t *s16 = sums16 + (size_t)t * (k / 16) + 2 * b;
            const __m512 ds = _mm512_set1_ps(dx[(size_t)t * blocks + b]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t]), _mm512_mul_ps(scales, ds), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(offsets, ds), _mm512_set1_ps((float)(s16[0] + s16[1])), acc[t]);
        }
    }
    for (int t = 0; t < 8; t++) _mm512_storeu_ps(out[t], acc[t]);
}

// Q6_K (u - 32, a scale per 16 weights): each half block adds fma(Σ u q - 32 Σ q, s d_x).
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_q6_K_16x8(const uint8_t *panel, int k, const uint8_t *xu, const float *dx, const int32_t *sums16,
                           float out[8][16]) {
    const int blocks = k / 32;
    __m512 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * (GROUPS * 64 + 128);
        for (int half = 0; half < 2; half++) {
            __m512i iacc[8];
            for (int t = 0; t < 8; t++) iacc[t] = _mm512_setzero_si512();
            for (int g = 4 * half; g < 4 * half + 4; g++) {
                const __m512i weights = _mm512_loadu_si512(block + g * 64);
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++) {
                    uint32_t four;
                    memcpy(&four, xu + (size_t)t * k + 32 * b + 4 * g, 4);
                    iacc[t] = _mm512_dpbusd_epi32(iacc[t], weights, _mm512_set1_epi32((int)(four ^ 0x80808080u)));
                }
            }
            const __m512 scales = _mm512_loadu_ps(block + GROUPS * 64 + 64 * half);
            for (int t = 0; t < 8; t++) {
                const int quant_sum = sums16[(size_t)t * (k / 16) + 2 * b + half];
                const __m512 ds = _mm512_set1_ps(dx[(size_t)t * blocks + b]);
                const __m512i sums = _mm512_sub_epi32(iacc[t], _mm512_set1_epi32(32 * quant_sum));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(scales, ds), acc[t]);
            }
        }
    }
    for (int t = 0; t < 8; t++) _mm512_storeu_ps(out[t], acc[t]);
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
void mx_int8_gemm_panel_avx512vnni(const void *panel, int type, int rows, int k, const uint8_t *xu, const float *dx,
                                   const int32_t *sums16, int tokens, int padded_tokens, float *y, size_t y_row_stride) {
    // Q8_0/Q4_0: the panel's corrections hold what the type needs.
    const int is_signed = type == MX_INT8_Q8_0 || type == MX_INT8_Q4_0;
    float out[8][16];
    for (int t0 = 0; t0 < padded_tokens; t0 += 8) {
        if (is_signed) tile_16x8((const uint8_t *)panel, k, xu + (size_t)t0 * k, dx + (size_t)t0 * (k / 32), out);
        else if (type == MX_INT8_Q6_K)
            tile_q6_K_16x8((const uint8_t *)panel, k, xu + (size_t)t0 * k, dx + (size_t)t0 * (k / 32),
                           sums16 + (size_t)t0 * (k / 16), out);
        else
            tile_unsigned_16x8((const uint8_t *)panel, k, xu + (size_t)t0 * k, dx + (size_t)t0 * (k / 32),
                               sums16 + (size_t)t0 * (k / 16), out);
        for (int t = 0; t < 8 && t0 + t < tokens; t++) {
            memcpy(y + (size_t)(t0 + t) * y_row_stride, out[t], (size_t)rows * sizeof(float));
        }
    }
}

#endif
