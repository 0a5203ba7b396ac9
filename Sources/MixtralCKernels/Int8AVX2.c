#include "KernelVariants.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// 8-bit products with AVX2 (no VNNI): vpmaddubsw multiplies unsigned by signed bytes into
// 16-bit pair sums, vpmaddwd adds pairs of those into 32-bit lanes. Every integer lane
// holds the same products as in the AVX-512 kernels (Int8MatVec.c, Int8Gemm.c) and the
// float steps are the same, so both levels give the same bits (Q4_0 decode aside, which
// AVX-512 runs on its own VBMI kernel).

#if defined(__x86_64__)
#include <immintrin.h>

#pragma clang fp contract(off)  // every fused multiply-add is written out

#define AVX2 __attribute__((target("avx,avx2,fma,f16c"), always_inline)) static inline
#define AVX2_FUNCTION __attribute__((target("avx,avx2,fma,f16c")))

AVX2 int load_u16(const uint8_t *p) {
    uint16_t bits;
    memcpy(&bits, p, 2);
    return bits;
}

AVX2 float half_at(const uint8_t *p) {
    uint16_t bits;
    memcpy(&bits, p, 2);
    return _cvtsh_ss(bits);
}

// hsum_float_8 of llama.cpp's x86 quants.c: the same additions in the same order.
AVX2 float sum8(__m256 x) {
    __m128 sum = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
}

AVX2 int hsum_i32(__m256i x) {
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    return _mm_cvtsi128_si32(sum);
}

/// Lanes of four consecutive products of unsigned w and signed x.
AVX2 __m256i dot_unsigned(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

/// The same for signed w: |w| times x with w's sign moved onto x (llama.cpp's
/// mul_sum_i8_pairs; |w| * |x| pair sums stay within 16 bits as |x| <= 127).
AVX2 __m256i dot_signed(__m256i w, __m256i x) {
    return dot_unsigned(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

/// The 32 nibbles of a 4-bit block: weights 0..15 (low nibbles) then 16..31 (high).
AVX2 __m256i nibbles32(const uint8_t *qs) {
    const __m128i bytes = _mm_loadu_si128((const __m128i *)qs), mask = _mm_set1_epi8(0x0F);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(bytes, mask)),
                                   _mm_and_si128(_mm_srli_epi16(bytes, 4), mask), 1);
}

// MARK: - Few tokens: four rows at a time, llama.cpp's vec_dot order

// Rows per group and the software prefetch, shared with the other int8 decode kernels
// (KernelVariants.h).
enum { ROWS = MX_INT8_DECODE_ROWS, PREFETCH_BYTES = MX_INT8_PREFETCH_BYTES };

AVX2 void dot4(int type, const uint8_t *w, size_t row_bytes, int k, const int8_t *q, const float *d, const float *s,
               float *y) {
    const int blocks = k / 32;
    const int block_bytes = type == MX_INT8_Q8_0 ? 34 : type == MX_INT8_Q4_0 ? 18 : 20;
    const size_t ahead = mx_int8_prefetch_distance(row_bytes);
    __m256 acc[ROWS];
    float minimum_terms[ROWS];
    for (int r = 0; r < ROWS; r++) { acc[r] = _mm256_setzero_ps(); minimum_terms[r] = 0; }
    for (int b = 0; b < blocks; b++) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * b));
        // Q4_0: Σ (n - 8) q = Σ n q - Σ 8 q per lane; the second term depends on x only.
        const __m256i minus_eight_q = type == MX_INT8_Q4_0
            ? _mm256_sub_epi32(_mm256_setzero_si256(), dot_unsigned(_mm256_set1_epi8(8), x)) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            const uint8_t *block = w + (size_t)r * row_bytes + (size_t)b * block_bytes;
            _mm_prefetch((const char *)block + ahead, _MM_HINT_T1);
            __m256i lanes;
            if (type == MX_INT8_Q8_0) {
                lanes = dot_signed(_mm256_loadu_si256((const __m256i *)(block + 2)), x);
            } else if (type == MX_INT8_Q4_0) {
                lanes = _mm256_add_epi32(minus_eight_q, dot_unsigned(nibbles32(block + 2), x));
            } else {
                lanes = dot_unsigned(nibbles32(block + 4), x);
                minimum_terms[r] = fmaf(half_at(block + 2), s[b], minimum_terms[r]);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(half_at(block) * d[b]), _mm256_cvtepi32_ps(lanes), acc[r]);
        }
    }
    for (int r = 0; r < ROWS; r++) y[r] = sum8(acc[r]) + minimum_terms[r];
}

/// Q4_0, four rows, two blocks A and B at a time: one pair of loads holds the nibbles of
/// both, the activations are rearranged once ([A 0-15 | B 0-15], [A 16-31 | B 16-31]) to
/// match the low and high nibbles, and the eight scales of four rows convert together.
/// Lane L (0-3) sums A's weights 4L..4L+3 and 16+4L..16+4L+3 (lanes 4-7: B's), which
/// saves separating the halves; llama.cpp runs Q4_0 through its repacked kernels, so there
/// is no one order to follow, and the generic q8_matmul sums in this same order.
AVX2 void dot4_q4_0(const uint8_t *w, size_t row_bytes, int k, const int8_t *q, const float *d, float *y) {
    const int blocks = k / 32;
    const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8);
    const size_t ahead = mx_int8_prefetch_distance(row_bytes);
    const uint8_t *rows[ROWS];
    for (int r = 0; r < ROWS; r++) rows[r] = w + (size_t)r * row_bytes;
    __m256 acc[ROWS];
    for (int r = 0; r < ROWS; r++) acc[r] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < blocks; b += 2) {
        const __m256i xa = _mm256_loadu_si256((const __m256i *)(q + 32 * b));
        const __m256i xb = _mm256_loadu_si256((const __m256i *)(q + 32 * b + 32));
        const __m256i x_low = _mm256_permute2x128_si256(xa, xb, 0x20), x_high = _mm256_permute2x128_si256(xa, xb, 0x31);
        // Σ (n - 8) x = Σ n x - Σ 8 x: the second term, in 16-bit pair sums, is the rows'.
        // |Σ n x| <= 4 * 15 * 128 and |Σ 8 x| <= 4 * 8 * 128 per pair: both fit 16 bits.
        const __m256i eights = _mm256_add_epi16(_mm256_maddubs_epi16(eight, x_low), _mm256_maddubs_epi16(eight, x_high));
        const size_t at = (size_t)b * 18;
        __m128i halves = _mm_setzero_si128();
        halves = _mm_insert_epi16(halves, load_u16(rows[0] + at), 0);
        halves = _mm_insert_epi16(halves, load_u16(rows[0] + at + 18), 1);
        halves = _mm_insert_epi16(halves, load_u16(rows[1] + at), 2);
        halves = _mm_insert_epi16(halves, load_u16(rows[1] + at + 18), 3);
        halves = _mm_insert_epi16(halves, load_u16(rows[2] + at), 4);
        halves = _mm_insert_epi16(halves, load_u16(rows[2] + at + 18), 5);
        halves = _mm_insert_epi16(halves, load_u16(rows[3] + at), 6);
        halves = _mm_insert_epi16(halves, load_u16(rows[3] + at + 18), 7);
        const __m256 scales = _mm256_mul_ps(_mm256_cvtph_ps(halves),
                                            _mm256_setr_ps(d[b], d[b + 1], d[b], d[b + 1], d[b], d[b + 1], d[b], d[b + 1]));
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) {
            const uint8_t *A = rows[r] + at;
            _mm_prefetch((const char *)A + ahead, _MM_HINT_T1);
            const __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(A + 2))),
                                                          _mm_loadu_si128((const __m128i *)(A + 20)), 1);
            const __m256i low = _mm256_and_si256(bytes, low4), high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(low, x_low), _mm256_maddubs_epi16(high, x_high));
            const __m256i lanes = _mm256_madd_epi16(_mm256_sub_epi16(pairs, eights), ones);
            const __m256i pick = _mm256_setr_epi32(2 * r, 2 * r, 2 * r, 2 * r, 2 * r + 1, 2 * r + 1, 2 * r + 1, 2 * r + 1);
            acc[r] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(scales, pick), _mm256_cvtepi32_ps(lanes), acc[r]);
        }
    }
    for (; b < blocks; b++) {  // an odd last block: lanes of four consecutive weights
        const __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * b));
        const __m256i minus_eight = _mm256_sub_epi32(_mm256_setzero_si256(), dot_unsigned(eight, x));
        for (int r = 0; r < ROWS; r++) {
            const uint8_t *A = rows[r] + (size_t)b * 18;
            const __m256i lanes = _mm256_add_epi32(minus_eight, dot_unsigned(nibbles32(A + 2), x));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(half_at(A) * d[b]), _mm256_cvtepi32_ps(lanes), acc[r]);
        }
    }
    for (int r = 0; r < ROWS; r++) y[r] = sum8(acc[r]);
}

AVX2 void matmul(int type, const uint8_t *w, size_t row_bytes, int rows, int k, const int8_t *q, const float *d,
                 const float *s, int tokens, float *y, size_t y_row_stride) {
    const int blocks = k / 32;
    float out[ROWS];
    for (int r = 0; r < rows; r += ROWS) {
        // The last rows, when fewer than four: all four dot products read row r (stride 0).
        const int full = r + ROWS <= rows;
        for (int t = 0; t < tokens; t++) {
            if (type == MX_INT8_Q4_0)
                dot4_q4_0(w + (size_t)r * row_bytes, full ? row_bytes : 0, k, q + (size_t)t * k, d + (size_t)t * blocks, out);
            else
                dot4(type, w + (size_t)r * row_bytes, full ? row_bytes : 0, k, q + (size_t)t * k, d + (size_t)t * blocks,
                     s + (size_t)t * blocks, out);
            if (full) memcpy(y + (size_t)t * y_row_stride + r, out, sizeof out);
            else y[(size_t)t * y_row_stride + r] = out[0];
        }
        if (!full) r -= ROWS - 1;  // one row at a time from here
    }
}

// llama.cpp's quantize_row_q8_0/q8_1 with AVX2 (the portable and AVX-512 kernels' values):
// vroundps rounds to nearest even as nearbyintf does, F16C rounds to fp16, and the int32
// levels are cut to their low byte as the AVX-512 kernel's vpmovdb does.
AVX2_FUNCTION void mx_q8_quantize_avx2_intrinsics(const float *x, int k, int8_t *q, float *d, float *s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i low_byte = _mm256_set1_epi32(0xFF), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < k / 32; b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                       _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const __m256 inverse = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        __m256i levels[4], total = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            levels[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], inverse), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            total = _mm256_add_epi32(total, levels[i]);
            levels[i] = _mm256_and_si256(levels[i], low_byte);
        }
        // Bytes 0-255 pack without saturation; the lanes interleave, `order` undoes it.
        const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(levels[0], levels[1]), _mm256_packus_epi32(levels[2], levels[3]));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_permutevar8x32_epi32(bytes, order));
        const float scale = amax / 127.0f;
        d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
        s[b] = _cvtsh_ss(_cvtss_sh(scale * (float)hsum_i32(total), _MM_FROUND_TO_NEAREST_INT));
    }
}

/// Activation rows for the panels: mx_q8_quantize_avx2_intrinsics per block of 32 (signed
/// bytes, as the portable quantiser) and the sums of each 16; padding rows zero.
AVX2_FUNCTION void mx_int8_quantize_activations_avx2_intrinsics(const float *x, int tokens, int padded_tokens, int k,
                                                               uint8_t *xq, float *dx, int32_t *sums16) {
    const __m128i ones = _mm_set1_epi8(1);
    float unused[1];
    for (int t = 0; t < padded_tokens; t++) {
        int8_t *q = (int8_t *)xq + (size_t)t * k;
        if (t < tokens) {
            for (int b = 0; b < k / 32; b++)
                mx_q8_quantize_avx2_intrinsics(x + (size_t)t * k + 32 * b, 32, q + 32 * b, dx + (size_t)t * (k / 32) + b, unused);
        } else {
            memset(q, 0, (size_t)k);
            memset(dx + (size_t)t * (k / 32), 0, sizeof(float) * (size_t)(k / 32));
        }
        for (int c = 0; c < k / 16; c++) {
            const __m128i sums = _mm_madd_epi16(_mm_maddubs_epi16(ones, _mm_loadu_si128((const __m128i *)(q + 16 * c))),
                                                _mm_set1_epi16(1));
            const __m128i pairs = _mm_add_epi32(sums, _mm_shuffle_epi32(sums, 0x4E));
            sums16[(size_t)t * (k / 16) + c] = _mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 0xB1)));
        }
    }
}

AVX2_FUNCTION void mx_q8_matmul_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k,
                                                const int8_t *q, const float *d, const float *s, int tokens, float *y,
                                                size_t y_row_stride) {
    const uint8_t *weights = (const uint8_t *)w;
    switch (type) {
    case MX_INT8_Q8_0: matmul(MX_INT8_Q8_0, weights, row_bytes, rows, k, q, d, s, tokens, y, y_row_stride); break;
    case MX_INT8_Q4_0: matmul(MX_INT8_Q4_0, weights, row_bytes, rows, k, q, d, s, tokens, y, y_row_stride); break;
    default: matmul(MX_INT8_Q4_1, weights, row_bytes, rows, k, q, d, s, tokens, y, y_row_stride); break;
    }
}

// MARK: - K-quants with Q8_K activations

// The 16 lanes of the AVX-512 kernels as two halves: lanes 0-7 and 8-15. A 64-weight
// group's lane L holds its weights 4L..4L+3 times their sub-block scale; the block's
// lanes are scaled into 16 float accumulators, reduced once per row (reduce16 equals
// hsum_float_8 of the two halves added).

/// Byte-shuffle mask that fills a 128-bit lane with its word j.
AVX2 __m128i word_mask(int j) {
    return _mm_set1_epi16((short)((2 * j) | ((2 * j + 1) << 8)));
}

/// Shuffle mask: word 2i in the low lane, word 2i + 1 in the high lane.
AVX2 __m256i pick_pair(int i) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(word_mask(2 * i)), word_mask(2 * i + 1), 1);
}

/// Shuffle mask: word j in both lanes.
AVX2 __m256i pick_word(int j) {
    return _mm256_broadcastsi128_si256(word_mask(j));
}

AVX2 float dot_q6_K(const uint8_t *row, int blocks, const int8_t *q, const float *d, const int32_t *sums16) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    __m256 acc_low = _mm256_setzero_ps(), acc_high = _mm256_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + 210 * (size_t)b;
        for (int offset = 0; offset < 210; offset += 64)
            _mm_prefetch((const char *)block + PREFETCH_BYTES + offset, _MM_HINT_T1);
        const int8_t *scales = (const int8_t *)(block + 192);
        const int8_t *x = q + 256 * (size_t)b;
        // Σ sc (q - 32) q_x = Σ sc q q_x - 32 Σ sc Σ q_x: start from the second term.
        const __m256i sc_low = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)scales));
        const __m256i sc_high = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(scales + 8)));
        __m256i sums_low = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(
            _mm256_mullo_epi32(sc_low, _mm256_loadu_si256((const __m256i *)(sums16 + 16 * (size_t)b))), 5));
        __m256i sums_high = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(
            _mm256_mullo_epi32(sc_high, _mm256_loadu_si256((const __m256i *)(sums16 + 16 * (size_t)b + 8))), 5));
        for (int half = 0; half < 2; half++) {
            // The half's eight scales as words in both 128-bit lanes: pick_pair(i) then
            // gives [sc[2i] x8 | sc[2i + 1] x8] in one byte shuffle.
            const __m256i half_scales = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(scales + 8 * half))));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(block + 128 + 32 * half));
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(block + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(block + 64 * half + 32));
            const int8_t *xh = x + 128 * half;
            // Weights 0..31, 32..63, 64..95, 96..127 of the half.
            const __m256i w0 = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                                               _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
            const __m256i w1 = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
            const __m256i w2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
            const __m256i w3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
            const __m256i p0 = _mm256_maddubs_epi16(w0, _mm256_loadu_si256((const __m256i *)xh));
            const __m256i p1 = _mm256_maddubs_epi16(w1, _mm256_loadu_si256((const __m256i *)(xh + 32)));
            const __m256i p2 = _mm256_maddubs_epi16(w2, _mm256_loadu_si256((const __m256i *)(xh + 64)));
            const __m256i p3 = _mm256_maddubs_epi16(w3, _mm256_loadu_si256((const __m256i *)(xh + 96)));
            sums_low = _mm256_add_epi32(sums_low, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(half_scales, pick_pair(0))));
            sums_high = _mm256_add_epi32(sums_high, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(half_scales, pick_pair(1))));
            sums_low = _mm256_add_epi32(sums_low, _mm256_madd_epi16(p2, _mm256_shuffle_epi8(half_scales, pick_pair(2))));
            sums_high = _mm256_add_epi32(sums_high, _mm256_madd_epi16(p3, _mm256_shuffle_epi8(half_scales, pick_pair(3))));
        }
        const __m256 scale = _mm256_set1_ps(half_at(block + 208) * d[b]);
        acc_low = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums_low), scale, acc_low);
        acc_high = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums_high), scale, acc_high);
    }
    return sum8(_mm256_add_ps(acc_high, acc_low));
}

/// Q4_K, or Q5_K (`five_bits`: a fifth bit per weight from qh). sums32: the activations'
/// sums per 32 (for the mins).
AVX2 float dot_q45_K(const uint8_t *row, int blocks, int five_bits, const int8_t *q, const float *d,
                     const int16_t *sums32) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const int block_bytes = five_bits ? 176 : 144, qs_offset = five_bits ? 48 : 16;
    __m256 acc_low = _mm256_setzero_ps(), acc_high = _mm256_setzero_ps();
    float minimum_terms = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + (size_t)block_bytes * b;
        for (int offset = 0; offset < block_bytes; offset += 64)
            _mm_prefetch((const char *)block + PREFETCH_BYTES + offset, _MM_HINT_T1);
        const int8_t *x = q + 256 * (size_t)b;
        uint64_t scale_bytes, minimum_bytes;
        mx_k_scale_and_min_bytes(block + 4, &scale_bytes, &minimum_bytes);
        // Σ m Σq_x in 32-bit lanes of 16-bit products (m <= 63, |Σq_x| <= 32 * 127).
        const __m128i minimum_pairs = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)minimum_bytes)),
                                                     _mm_loadu_si128((const __m128i *)(sums32 + 8 * (size_t)b)));
        __m128i minimum_lanes = _mm_add_epi32(minimum_pairs, _mm_shuffle_epi32(minimum_pairs, 0x4E));
        minimum_lanes = _mm_add_epi32(minimum_lanes, _mm_shuffle_epi32(minimum_lanes, 0xB1));
        const int minimum_sum = _mm_cvtsi128_si32(minimum_lanes);
        // The eight scales as words in both 128-bit lanes, for pick_word.
        const __m256i scale_words = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scale_bytes)));
        const __m256i qh = five_bits ? _mm256_loadu_si256((const __m256i *)(block + 16)) : _mm256_setzero_si256();
        __m256i sums_low = _mm256_setzero_si256(), sums_high = _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; chunk++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(block + qs_offset + 32 * chunk));
            __m256i low = _mm256_and_si256(bytes, low4), high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            if (five_bits) {
                // Bit 2c of qh[j] tops weight j of sub-block 2c, bit 2c + 1 of sub-block 2c + 1.
                const __m256i top = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * chunk));
                low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(top, one), 4));
                high = _mm256_or_si256(high, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(top, 1), one), 4));
            }
            const __m256i scale_low = _mm256_shuffle_epi8(scale_words, pick_word(2 * chunk));
            const __m256i scale_high = _mm256_shuffle_epi8(scale_words, pick_word(2 * chunk + 1));
            const __m256i p0 = _mm256_maddubs_epi16(low, _mm256_loadu_si256((const __m256i *)(x + 64 * chunk)));
            const __m256i p1 = _mm256_maddubs_epi16(high, _mm256_loadu_si256((const __m256i *)(x + 64 * chunk + 32)));
            sums_low = _mm256_add_epi32(sums_low, _mm256_madd_epi16(p0, scale_low));
            sums_high = _mm256_add_epi32(sums_high, _mm256_madd_epi16(p1, scale_high));
        }
        const float dx = d[b];
        const __m256 scale_d = _mm256_set1_ps(half_at(block) * dx);
        acc_low = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums_low), scale_d, acc_low);
        acc_high = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums_high), scale_d, acc_high);
        minimum_terms = fmaf(-(half_at(block + 2) * dx), (float)minimum_sum, minimum_terms);
    }
    return sum8(_mm256_add_ps(acc_high, acc_low)) + minimum_terms;
}

AVX2_FUNCTION void mx_q8k_matvec_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k,
                                                 const int8_t *q, const float *d, const int32_t *sums16, float *y) {
    const int blocks = k / 256;
    if (type == MX_Q8K_Q6_K) {
        for (int r = 0; r < rows; r++) y[r] = dot_q6_K((const uint8_t *)w + (size_t)r * row_bytes, blocks, q, d, sums16);
        return;
    }
    // Q4_K/Q5_K: the activations' sums per 32 (|Σ| <= 32 * 127: 16 bits), once for all rows.
    int16_t stack_sums[512];
    int16_t *sums32 = k / 32 <= 512 ? stack_sums : (int16_t *)malloc(sizeof(int16_t) * (size_t)(k / 32));
    if (!sums32) {
        for (int r = 0; r < rows; r++) y[r] = NAN;
        return;
    }
    for (int j = 0; j < k / 32; j++) sums32[j] = (int16_t)(sums16[2 * j] + sums16[2 * j + 1]);
    for (int r = 0; r < rows; r++)
        y[r] = dot_q45_K((const uint8_t *)w + (size_t)r * row_bytes, blocks, type == MX_Q8K_Q5_K, q, d, sums32);
    if (sums32 != stack_sums) free(sums32);
}

// MARK: - Many tokens: 16-row panels times 4 tokens

// Panel layout per block of 32: [8 groups][16 rows][4 bytes] of unsigned weights (Q8_0:
// |w|; Q4_0: the nibbles 0..15), then (Q8_0) the signed weights in the same layout, then
// 16 float scales. Activations are signed bytes (the portable quantiser's layout).
//
// Q8_0: per group and token, sign + vpmaddubsw + vpmaddwd + add. Q4_0: nibble pair sums
// are at most 15 * 127 * 2, so a block's eight groups add up in 16 bits before one
// vpmaddwd, and Σ 8 q_x per block and token is subtracted once.
enum { GROUPS = 8, PANEL_ROWS = MX_AVX2_INT8_PANEL_ROWS, TILE = MX_AVX2_INT8_TOKEN_TILE };
enum { MAGNITUDES = 0, SIGNS = GROUPS * 64, SCALES = 2 * GROUPS * 64, PANEL_BLOCK_BYTES = 2 * GROUPS * 64 + 64 };
enum { UNSIGNED_BLOCK_BYTES = GROUPS * 64 + 2 * 64 };

size_t mx_int8_panel_bytes_avx2_intrinsics(int k) { return (size_t)(k / 32) * PANEL_BLOCK_BYTES; }

/// Transposes 8 rows of 8 dwords (in r) into 8 columns.
AVX2 void transpose8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/// Stores 16 rows of 32 bytes as [8 groups][16 rows][4 bytes] at out.
AVX2 void store_groups(__m256i rows[16], uint8_t *out) {
    for (int half = 0; half < 2; half++) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_castsi256_ps(rows[8 * half + i]);
        transpose8x8(r);
        for (int g = 0; g < GROUPS; g++) _mm256_storeu_ps((float *)(out + 64 * g + 32 * half), r[g]);
    }
}

/// Eight bytes as floats.
AVX2 __m256 unsigned_bytes_to_floats(uint64_t bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)bytes)));
}

/// One block of 256 of 16 K-quant rows (Q4_K, Q5_K, Q6_K) into the eight panel blocks of
/// 32 that it covers (see unsigned_block in Portable.h for what each holds). A row's
/// block is read and its scales decoded once for all eight, not once per block of 32.
AVX2 void pack_k_block(const uint8_t *w, size_t row_bytes, int type, int rows, int kb, uint8_t *out) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03), one = _mm256_set1_epi8(1);
    __m256i weights[8][PANEL_ROWS];  // [block of 32][row]
    __m256 scales[PANEL_ROWS], offsets[PANEL_ROWS];  // [row][block of 32]
    for (int r = 0; r < PANEL_ROWS; r++) {
        if (r >= rows) {
            for (int j = 0; j < 8; j++) weights[j][r] = _mm256_setzero_si256();
            scales[r] = offsets[r] = _mm256_setzero_ps();
            continue;
        }
        const uint8_t *row = w + (size_t)r * row_bytes;
        if (type == MX_INT8_Q6_K) {
            const uint8_t *block = row + 210 * (size_t)kb;
            for (int half = 0; half < 2; half++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(block + 64 * half));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(block + 64 * half + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(block + 128 + 32 * half));
                // Quarters 0-3 of the half: ql0 low, ql1 low, ql0 high, ql1 high nibbles,
                // topped by qh's bits 2 quarter and 2 quarter + 1.
                const __m256i nibbles[4] = {
                    _mm256_and_si256(ql0, low4), _mm256_and_si256(ql1, low4),
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4)};
                for (int quarter = 0; quarter < 4; quarter++) {
                    const __m256i top = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * quarter)), low2);
                    weights[4 * half + quarter][r] = _mm256_or_si256(nibbles[quarter], _mm256_slli_epi16(top, 4));
                }
            }
            // Sub-block scales 2j (weights 0-15 of block j) and 2j + 1 (16-31), times d.
            const __m128i sixteen = _mm_loadu_si128((const __m128i *)(block + 192));
            const __m128i even_odd = _mm_shuffle_epi8(sixteen, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
            const __m256 d = _mm256_set1_ps(half_at(block + 208));
            scales[r] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(even_odd)));
            offsets[r] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(even_odd, 8))));
            continue;
        }
        // Q4_K/Q5_K: sub-block j is the low (j even) or high nibbles of chunk j / 2; Q5_K's
        // fifth bit of sub-block j is bit j of qh.
        const int five_bits = type == MX_INT8_Q5_K;
        const uint8_t *block = row + (size_t)(five_bits ? 176 : 144) * (size_t)kb;
        const __m256i qh = five_bits ? _mm256_loadu_si256((const __m256i *)(block + 16)) : _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; chunk++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(block + (five_bits ? 48 : 16) + 32 * chunk));
            __m256i low = _mm256_and_si256(bytes, low4), high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            if (five_bits) {
                const __m256i top = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * chunk));
                low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(top, one), 4));
                high = _mm256_or_si256(high, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(top, 1), one), 4));
            }
            weights[2 * chunk][r] = low;
            weights[2 * chunk + 1][r] = high;
        }
        // w = (d sc) u - dmin m: both products exact in fp32, as unsigned_block's.
        uint64_t scale_bytes, minimum_bytes;
        mx_k_scale_and_min_bytes(block + 4, &scale_bytes, &minimum_bytes);
        scales[r] = _mm256_mul_ps(_mm256_set1_ps(half_at(block)), unsigned_bytes_to_floats(scale_bytes));
        offsets[r] = _mm256_xor_ps(_mm256_mul_ps(_mm256_set1_ps(half_at(block + 2)), unsigned_bytes_to_floats(minimum_bytes)),
                                   _mm256_set1_ps(-0.0f));
    }
    // [row][block] to [block][row]: two 8 x 8 transposes each.
    for (int half = 0; half < 2; half++) {
        transpose8x8(scales + 8 * half);
        transpose8x8(offsets + 8 * half);
    }
    for (int j = 0; j < 8; j++) {
        uint8_t *block_out = out + (size_t)j * UNSIGNED_BLOCK_BYTES;
        store_groups(weights[j], block_out);
        float *block_scales = (float *)(block_out + GROUPS * 64), *block_offsets = block_scales + 16;
        for (int half = 0; half < 2; half++) {
            _mm256_storeu_ps(block_scales + 8 * half, scales[8 * half + j]);
            _mm256_storeu_ps(block_offsets + 8 * half, offsets[8 * half + j]);
        }
    }
}

/// Unsigned weights of 16 rows (Q4_1, Q4_K, Q5_K, Q6_K) in the layout of every level (see
/// Portable.h): per block of 32, [8 groups][16 rows][4] weights u, 16 scales s, 16 offsets o.
AVX2_FUNCTION void mx_int8_pack_unsigned_avx2(const void *w, size_t row_bytes, int type, int rows, int k, void *panel) {
    uint8_t *out = (uint8_t *)panel;
    if (type != MX_INT8_Q4_1) {
        for (int kb = 0; kb < k / 256; kb++) pack_k_block((const uint8_t *)w, row_bytes, type, rows, kb, out + (size_t)kb * 8 * UNSIGNED_BLOCK_BYTES);
        return;
    }
    for (int b = 0; b < k / 32; b++, out += UNSIGNED_BLOCK_BYTES) {
        __m256i weights[PANEL_ROWS];
        float *scales = (float *)(out + GROUPS * 64), *offsets = scales + 16;
        for (int r = 0; r < PANEL_ROWS; r++) {
            if (r >= rows) {
                weights[r] = _mm256_setzero_si256();
                scales[r] = offsets[r] = 0;
                continue;
            }
            const uint8_t *block = (const uint8_t *)w + (size_t)r * row_bytes + 20 * (size_t)b;
            weights[r] = nibbles32(block + 4);
            scales[r] = half_at(block);
            offsets[r] = half_at(block + 2);
        }
        store_groups(weights, out);
    }
}

AVX2_FUNCTION void mx_int8_pack_panel_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k,
                                                      void *panel) {
    if (type != MX_INT8_Q8_0 && type != MX_INT8_Q4_0) {
        mx_int8_pack_unsigned_avx2(w, row_bytes, type, rows, k, panel);
        return;
    }
    const int block_bytes = type == MX_INT8_Q8_0 ? 34 : 18;
    uint8_t *out = (uint8_t *)panel;
    for (int b = 0; b < k / 32; b++, out += PANEL_BLOCK_BYTES) {
        __m256i magnitudes[PANEL_ROWS], signs[PANEL_ROWS];
        float *scales = (float *)(out + SCALES);
        for (int r = 0; r < PANEL_ROWS; r++) {
            if (r >= rows) {
                magnitudes[r] = signs[r] = _mm256_setzero_si256();
                scales[r] = 0;
                continue;
            }
            const uint8_t *block = (const uint8_t *)w + (size_t)r * row_bytes + (size_t)b * block_bytes;
            scales[r] = half_at(block);
            if (type == MX_INT8_Q8_0) {
                signs[r] = _mm256_loadu_si256((const __m256i *)(block + 2));
                magnitudes[r] = _mm256_sign_epi8(signs[r], signs[r]);
            } else {
                magnitudes[r] = nibbles32(block + 2);
            }
        }
        store_groups(magnitudes, out + MAGNITUDES);
        if (type == MX_INT8_Q8_0) store_groups(signs, out + SIGNS);
    }
}

/// Four bytes of x (group g of block b of one token) in every dword.
AVX2 __m256i broadcast4(const int8_t *x) {
    int32_t four;
    memcpy(&four, x, 4);
    return _mm256_set1_epi32(four);
}

/// 16 rows x 4 tokens over all blocks; acc [4 tokens][16 rows] (fp32, added to).
AVX2 void tile_q8_0(const uint8_t *panel, int blocks, int k, const int8_t *x, const float *dx, float acc[TILE][16]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * PANEL_BLOCK_BYTES;
        __m256i sums[TILE][2];
        for (int t = 0; t < TILE; t++) sums[t][0] = sums[t][1] = _mm256_setzero_si256();
        for (int g = 0; g < GROUPS; g++) {
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(block + MAGNITUDES + 64 * g));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(block + MAGNITUDES + 64 * g + 32));
            const __m256i s0 = _mm256_loadu_si256((const __m256i *)(block + SIGNS + 64 * g));
            const __m256i s1 = _mm256_loadu_si256((const __m256i *)(block + SIGNS + 64 * g + 32));
#pragma GCC unroll 4
            for (int t = 0; t < TILE; t++) {
                const __m256i xb = broadcast4(x + (size_t)t * k + 32 * b + 4 * g);
                sums[t][0] = _mm256_add_epi32(sums[t][0], _mm256_madd_epi16(_mm256_maddubs_epi16(m0, _mm256_sign_epi8(xb, s0)), ones));
                sums[t][1] = _mm256_add_epi32(sums[t][1], _mm256_madd_epi16(_mm256_maddubs_epi16(m1, _mm256_sign_epi8(xb, s1)), ones));
            }
        }
        const __m256 scales0 = _mm256_loadu_ps((const float *)(block + SCALES));
        const __m256 scales1 = _mm256_loadu_ps((const float *)(block + SCALES) + 8);
        for (int t = 0; t < TILE; t++) {
            const __m256 ds = _mm256_set1_ps(dx[(size_t)t * blocks + b]);
            _mm256_storeu_ps(acc[t], _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][0]), _mm256_mul_ps(scales0, ds),
                                                     _mm256_loadu_ps(acc[t])));
            _mm256_storeu_ps(acc[t] + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][1]), _mm256_mul_ps(scales1, ds),
                                                         _mm256_loadu_ps(acc[t] + 8)));
        }
    }
}

/// Σ q of block b of token t, from the activations' sums per 16 ([token][2 * blocks]).
AVX2 int quant_sum32(const int32_t *sums16, int blocks, int t, int b) {
    const int32_t *s = sums16 + (size_t)t * 2 * blocks + 2 * b;
    return s[0] + s[1];
}

AVX2 void tile_q4_0(const uint8_t *panel, int blocks, int k, const int8_t *x, const float *dx,
                    const int32_t *sums16, float acc[TILE][16]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * PANEL_BLOCK_BYTES;
        __m256i sums[TILE][2];
        for (int t = 0; t < TILE; t++) sums[t][0] = sums[t][1] = _mm256_setzero_si256();
        for (int g = 0; g < GROUPS; g++) {
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(block + MAGNITUDES + 64 * g));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(block + MAGNITUDES + 64 * g + 32));
#pragma GCC unroll 4
            for (int t = 0; t < TILE; t++) {
                const __m256i xb = broadcast4(x + (size_t)t * k + 32 * b + 4 * g);
                sums[t][0] = _mm256_add_epi16(sums[t][0], _mm256_maddubs_epi16(m0, xb));
                sums[t][1] = _mm256_add_epi16(sums[t][1], _mm256_maddubs_epi16(m1, xb));
            }
        }
        const __m256 scales0 = _mm256_loadu_ps((const float *)(block + SCALES));
        const __m256 scales1 = _mm256_loadu_ps((const float *)(block + SCALES) + 8);
        for (int t = 0; t < TILE; t++) {
            const __m256i eight = _mm256_set1_epi32(8 * quant_sum32(sums16, blocks, t, b));
            const __m256i i0 = _mm256_sub_epi32(_mm256_madd_epi16(sums[t][0], ones), eight);
            const __m256i i1 = _mm256_sub_epi32(_mm256_madd_epi16(sums[t][1], ones), eight);
            const __m256 ds = _mm256_set1_ps(dx[(size_t)t * blocks + b]);
            _mm256_storeu_ps(acc[t], _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(scales0, ds), _mm256_loadu_ps(acc[t])));
            _mm256_storeu_ps(acc[t] + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(scales1, ds),
                                                         _mm256_loadu_ps(acc[t] + 8)));
        }
    }
}

/// Σ u q of 16 rows (two vectors of 8) for tokens t0 and t0 + 1 over groups [first, end)
/// of block b: 16-bit pair sums over `run` groups at a time (as many as stay within 16
/// bits for the type's largest u), then added in 32 bits.
AVX2 void two_token_sums(const uint8_t *block, const int8_t *x, int k, int b, int t0, int first, int end, int run,
                         __m256i sums[2][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int t = 0; t < 2; t++) sums[t][0] = sums[t][1] = _mm256_setzero_si256();
    for (int g0 = first; g0 < end; g0 += run) {
        __m256i pairs[2][2];
        for (int t = 0; t < 2; t++) pairs[t][0] = pairs[t][1] = _mm256_setzero_si256();
        for (int g = g0; g < g0 + run; g++) {
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(block + 64 * g));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(block + 64 * g + 32));
            for (int t = 0; t < 2; t++) {
                const __m256i xb = broadcast4(x + (size_t)(t0 + t) * k + 32 * b + 4 * g);
                pairs[t][0] = _mm256_add_epi16(pairs[t][0], _mm256_maddubs_epi16(m0, xb));
                pairs[t][1] = _mm256_add_epi16(pairs[t][1], _mm256_maddubs_epi16(m1, xb));
            }
        }
        for (int t = 0; t < 2; t++) {
            sums[t][0] = _mm256_add_epi32(sums[t][0], _mm256_madd_epi16(pairs[t][0], ones));
            sums[t][1] = _mm256_add_epi32(sums[t][1], _mm256_madd_epi16(pairs[t][1], ones));
        }
    }
}

/// Unsigned weights (Q5_K; the portable layout with offsets, see Portable.h): pair sums of
/// u <= 31 stay within 16 bits over four groups. Two tokens per pass, so the
/// 16-bit and 32-bit sums stay in registers.
AVX2 void tile_unsigned(const uint8_t *panel, int blocks, int k, const int8_t *x, const float *dx,
                        const int32_t *sums16, float acc[TILE][16]) {
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * UNSIGNED_BLOCK_BYTES;
        const float *scales = (const float *)(block + 16 * 32), *offsets = scales + 16;
        for (int t0 = 0; t0 < TILE; t0 += 2) {
            __m256i sums[2][2];
            two_token_sums(block, x, k, b, t0, 0, GROUPS, 4, sums);
            for (int t = 0; t < 2; t++) {
                const __m256 ds = _mm256_set1_ps(dx[(size_t)(t0 + t) * blocks + b]);
                const __m256 quant_sum = _mm256_set1_ps((float)quant_sum32(sums16, blocks, t0 + t, b));
                for (int v = 0; v < 2; v++) {
                    __m256 a = _mm256_loadu_ps(acc[t0 + t] + 8 * v);
                    a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][v]), _mm256_mul_ps(_mm256_loadu_ps(scales + 8 * v), ds), a);
                    a = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(offsets + 8 * v), ds), quant_sum, a);
                    _mm256_storeu_ps(acc[t0 + t] + 8 * v, a);
                }
            }
        }
    }
}

/// 4-bit unsigned weights (Q4_1, Q4_K): pair sums of u <= 15 stay within 16 bits over all
/// eight groups of a block (8 * 2 * 15 * 128 < 2^15), so four tokens fit in registers and
/// each weight vector is loaded once per tile. The integer sums, and so the bits, are
/// tile_unsigned's.
AVX2 void tile_unsigned4(const uint8_t *panel, int blocks, int k, const int8_t *x, const float *dx,
                         const int32_t *sums16, float acc[TILE][16]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * UNSIGNED_BLOCK_BYTES;
        const float *scales = (const float *)(block + 16 * 32), *offsets = scales + 16;
        __m256i pairs[TILE][2];
        for (int t = 0; t < TILE; t++) pairs[t][0] = pairs[t][1] = _mm256_setzero_si256();
        for (int g = 0; g < GROUPS; g++) {
            const __m256i m0 = _mm256_loadu_si256((const __m256i *)(block + 64 * g));
            const __m256i m1 = _mm256_loadu_si256((const __m256i *)(block + 64 * g + 32));
#pragma GCC unroll 4
            for (int t = 0; t < TILE; t++) {
                const __m256i xb = broadcast4(x + (size_t)t * k + 32 * b + 4 * g);
                pairs[t][0] = _mm256_add_epi16(pairs[t][0], _mm256_maddubs_epi16(m0, xb));
                pairs[t][1] = _mm256_add_epi16(pairs[t][1], _mm256_maddubs_epi16(m1, xb));
            }
        }
        for (int t = 0; t < TILE; t++) {
            const __m256 ds = _mm256_set1_ps(dx[(size_t)t * blocks + b]);
            const __m256 quant_sum = _mm256_set1_ps((float)quant_sum32(sums16, blocks, t, b));
            for (int v = 0; v < 2; v++) {
                __m256 a = _mm256_loadu_ps(acc[t] + 8 * v);
                a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs[t][v], ones)),
                                    _mm256_mul_ps(_mm256_loadu_ps(scales + 8 * v), ds), a);
                a = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(offsets + 8 * v), ds), quant_sum, a);
                _mm256_storeu_ps(acc[t] + 8 * v, a);
            }
        }
    }
}

/// Q6_K (u - 32, a scale per 16 weights): pair sums of u <= 63 stay within 16 bits over two
/// groups; each half block adds fma(Σ u q - 32 Σ q, s d_x). Two tokens per pass.
AVX2 void tile_q6_K(const uint8_t *panel, int blocks, int k, const int8_t *x, const float *dx,
                    const int32_t *sums16, float acc[TILE][16]) {
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = panel + (size_t)b * UNSIGNED_BLOCK_BYTES;
        const float *scales = (const float *)(block + 16 * 32);
        for (int half = 0; half < 2; half++) {
            const float *half_scales = scales + 16 * half;
            for (int t0 = 0; t0 < TILE; t0 += 2) {
                __m256i sums[2][2];
                two_token_sums(block, x, k, b, t0, 4 * half, 4 * half + 4, 2, sums);
                for (int t = 0; t < 2; t++) {
                    const __m256 ds = _mm256_set1_ps(dx[(size_t)(t0 + t) * blocks + b]);
                    const __m256i offset = _mm256_set1_epi32(32 * sums16[((size_t)(t0 + t) * blocks + b) * 2 + half]);
                    for (int v = 0; v < 2; v++) {
                        const __m256 a = _mm256_loadu_ps(acc[t0 + t] + 8 * v);
                        _mm256_storeu_ps(acc[t0 + t] + 8 * v,
                                         _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sums[t][v], offset)),
                                                         _mm256_mul_ps(_mm256_loadu_ps(half_scales + 8 * v), ds), a));
                    }
                }
            }
        }
    }
}

AVX2_FUNCTION void mx_int8_gemm_panel_avx2_intrinsics(const void *panel, int type, int rows, int k, const uint8_t *xq,
                                                      const float *dx, const int32_t *sums16, int tokens,
                                                      int padded_tokens, float *y, size_t y_row_stride) {
    const int blocks = k / 32;
    const int8_t *x = (const int8_t *)xq;
    for (int t0 = 0; t0 < padded_tokens; t0 += TILE) {
        float acc[TILE][16];
        memset(acc, 0, sizeof acc);
        const int8_t *xt = x + (size_t)t0 * k;
        const float *dt = dx + (size_t)t0 * blocks;
        const int32_t *st = sums16 + (size_t)t0 * 2 * blocks;
        if (type == MX_INT8_Q8_0) tile_q8_0((const uint8_t *)panel, blocks, k, xt, dt, acc);
        else if (type == MX_INT8_Q4_0) tile_q4_0((const uint8_t *)panel, blocks, k, xt, dt, st, acc);
        else if (type == MX_INT8_Q6_K) tile_q6_K((const uint8_t *)panel, blocks, k, xt, dt, st, acc);
        else if (type == MX_INT8_Q5_K) tile_unsigned((const uint8_t *)panel, blocks, k, xt, dt, st, acc);
        else tile_unsigned4((const uint8_t *)panel, blocks, k, xt, dt, st, acc);
        for (int t = 0; t < TILE && t0 + t < tokens; t++)
            memcpy(y + (size_t)(t0 + t) * y_row_stride, acc[t], (size_t)rows * sizeof(float));
    }
}

#endif
