// The portable kernels: one source, compiled once per CPU level (LevelGeneric.c,
// LevelAVX2.c, LevelAVX512.c), each time for that level's instructions. Written with
// clang's vector extensions, which lower to SSE2/NEON, AVX2 or AVX-512 registers.
//
// The including file defines:
//   MX_SUFFIX  generic | avx2 | avx512: appended to every kernel's name
//   MX_VW      floats per native vector register (4, 8, 16): tile shapes
//   MX_FUSED   1 where multiply-add is one fused instruction (FMA, or aarch64)
//   MX_F16C    1 where F16C converts halves
//
// Numerics. Sums are written out in a fixed order over 16 logical lanes, whatever the
// register width, and every multiply-add is fused at every fused level. So the AVX2 and
// AVX-512 levels (and aarch64) give the same bits, and the generic x86-64 level (no FMA)
// differs only by the rounding of unfused multiply-adds. The compiler contracts nothing
// on its own (fp contract off below). Two groups fuse with fmaf on every level (a library
// call where there is no FMA instruction), so they give the same bits everywhere:
// llama.cpp's steps (the llama_* kernels), and the float steps of the 8-bit products, which
// come once per block of 32 or 256 integer products.

#include "KernelVariants.h"
#include <math.h>
#include <string.h>

#pragma clang fp contract(off)
// Vector helpers are always inlined: their argument passing never meets the ABI.
#pragma clang diagnostic ignored "-Wpsabi"

#define MX_PASTE2(a, b) mx_##a##_##b
#define MX_PASTE(a, b) MX_PASTE2(a, b)
#define MX_FN(name) MX_PASTE(name, MX_SUFFIX)
#define MX_INLINE static inline __attribute__((always_inline))
/// The decode kernels' software prefetch: weights 8 KB ahead of the row stream into L2
/// (prefetcht1). Into L1 (prefetcht0), several streams 8 KB ahead fill a 32 KB L1 and evict
/// what is about to be used; from L2 the hardware's L1 prefetcher brings lines in time.
#define MX_PREFETCH(p) __builtin_prefetch((p), 0, 2)

typedef float v16f __attribute__((ext_vector_type(16)));
typedef float v8f __attribute__((ext_vector_type(8)));
typedef float v4f __attribute__((ext_vector_type(4)));
typedef uint32_t v16u __attribute__((ext_vector_type(16)));
typedef int32_t v16i __attribute__((ext_vector_type(16)));
typedef int8_t v16c __attribute__((ext_vector_type(16)));
typedef uint8_t v16uc __attribute__((ext_vector_type(16)));
typedef uint64_t v8u64 __attribute__((ext_vector_type(8)));
// Tile vectors: one native register.
typedef float vwf __attribute__((ext_vector_type(MX_VW)));
typedef uint32_t vwu __attribute__((ext_vector_type(MX_VW)));

#if MX_FUSED
#define MADD(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif
// Fused on every level (a library call where there is no FMA): llama.cpp's arithmetic.
#define FMA_EXACT(a, b, c) __builtin_elementwise_fma((a), (b), (c))

MX_INLINE v16f load16(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
MX_INLINE void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }
MX_INLINE v16u load16u(const void *p) { v16u v; memcpy(&v, p, sizeof v); return v; }
MX_INLINE vwf loadw(const float *p) { vwf v; memcpy(&v, p, sizeof v); return v; }
MX_INLINE vwu loadwu(const void *p) { vwu v; memcpy(&v, p, sizeof v); return v; }
MX_INLINE uint16_t load_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
/// Lanes of a where mask (a comparison's all-ones lanes), else of b.
MX_INLINE v16i select_i(v16i mask, v16i a, v16i b) { return (a & mask) | (b & ~mask); }
MX_INLINE v16f select_f(v16i mask, v16f a, v16f b) { return (v16f)select_i(mask, (v16i)a, (v16i)b); }

/// Σ of 16 lanes as _mm512_reduce_add_ps computes it (GCC and clang alike): halves 8+8,
/// 4+4, then (0+2, 1+3), then the two.
MX_INLINE float reduce16(v16f v) {
    const v8f a = v.hi + v.lo;
    const v4f b = a.hi + a.lo;
    return (b.x + b.z) + (b.y + b.w);
}

/// llama.cpp's hsum_float_8 over 8 floats: (x4+x0, ...), then (0+2) + (1+3).
MX_INLINE float reduce8(const float *x) {
    const float s0 = x[4] + x[0], s1 = x[5] + x[1], s2 = x[6] + x[2], s3 = x[7] + x[3];
    return (s0 + s2) + (s1 + s3);
}

// MARK: - Halves

/// IEEE half -> fp32, exactly (a subnormal half is a normal float).
MX_INLINE float half_to_float(uint16_t h) {
#if MX_F16C
    return _cvtsh_ss(h);
#else
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, magnitude = h & 0x7FFF;
    float value;
    if (magnitude >= 0x7C00) {
        const uint32_t bits = sign | 0x7F800000 | ((magnitude & 0x3FF) << 13);
        memcpy(&value, &bits, 4);
        return value;
    }
    // The half's exponent and mantissa in a float's fields, scaled by 2^112: exact for
    // normal and subnormal halves.
    const uint32_t bits = magnitude << 13;
    memcpy(&value, &bits, 4);
    value *= 0x1p112f;
    return sign ? -value : value;
#endif
}

MX_INLINE float half_at(const void *p) { return half_to_float(load_u16(p)); }

/// 16 halves -> fp32.
MX_INLINE v16f load_halves16(const uint16_t *p) {
#if MX_F16C && MX_VW == 16
    return (v16f)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#elif MX_F16C
    const v8f low = (v8f)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    const v8f high = (v8f)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)));
    return __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    v16f out;
    for (int i = 0; i < 16; i++) out[i] = half_to_float(p[i]);
    return out;
#endif
}

/// fp32 -> nearest fp16 (ties to even) -> fp32, with integer arithmetic only: the same on
/// every CPU as F16C's vcvtps2ph with rounding mode 0.
MX_INLINE float round_to_half(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint32_t sign = u & 0x80000000u, a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return x;                  // inf, NaN
    uint32_t bits;
    if (a >= 0x477FF000u) {
        bits = sign | 0x7F800000u;                   // >= 65520 rounds to infinity
    } else if (a < 0x38800000u) {                    // below 2^-14: fp16 subnormals, steps of 2^-24
        float magnitude;
        memcpy(&magnitude, &a, 4);
        const float steps = (magnitude * 0x1p24f + 0x1p23f) - 0x1p23f;  // exact ties-to-even rounding
        const float rounded = steps * 0x1p-24f;
        memcpy(&bits, &rounded, 4);
        bits |= sign;
    } else {                                         // 10 mantissa bits, ties to even
        bits = sign | ((a + 0xFFFu + ((a >> 13) & 1)) & ~0x1FFFu);
    }
    float result;
    memcpy(&result, &bits, 4);
    return result;
}

/// round_to_half on 16 lanes.
MX_INLINE v16f round_to_half16(v16f x) {
#if MX_F16C && MX_VW == 16
    return (v16f)_mm512_cvtph_ps(_mm512_cvtps_ph((__m512)x, 0));
#elif MX_F16C
    const v8f low = (v8f)_mm256_cvtph_ps(_mm256_cvtps_ph((__m256)x.lo, 0));
    const v8f high = (v8f)_mm256_cvtph_ps(_mm256_cvtps_ph((__m256)x.hi, 0));
    return __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    const v16u u = (v16u)x, sign = u & 0x80000000u, a = u & 0x7FFFFFFFu;
    const v16u normal = sign | ((a + 0xFFFu + ((a >> 13) & 1u)) & ~0x1FFFu);
    const v16f magnitude = (v16f)a;
    const v16u subnormal = sign | (v16u)(((magnitude * 0x1p24f + 0x1p23f) - 0x1p23f) * 0x1p-24f);
    v16u result = (v16u)select_i((v16i)(a < 0x38800000u), (v16i)subnormal, (v16i)normal);
    result = (v16u)select_i((v16i)(a >= 0x477FF000u), (v16i)(sign | 0x7F800000u), (v16i)result);
    return (v16f)select_i((v16i)(a >= 0x7F800000u), (v16i)u, (v16i)result);
#endif
}

// MARK: - One token against float weights

float MX_FN(dot_f32)(const float *a, const float *b, int n) {
    v16f acc0 = 0, acc1 = 0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = MADD(load16(a + i), load16(b + i), acc0);
        acc1 = MADD(load16(a + i + 16), load16(b + i + 16), acc1);
    }
    if (i + 16 <= n) {
        acc0 = MADD(load16(a + i), load16(b + i), acc0);
        i += 16;
    }
    float sum = reduce16(acc0 + acc1);
    for (; i < n; i++) sum = MADD(a[i], b[i], sum);
    return sum;
}

float MX_FN(dot_f16)(const uint16_t *w, const float *x, int n) {
    v16f acc = 0;
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = MADD(load_halves16(w + i), load16(x + i), acc);
    float sum = reduce16(acc);
    for (; i < n; i++) sum = MADD(half_to_float(w[i]), x[i], sum);
    return sum;
}

MX_INLINE float bf16_to_float(uint16_t bits) {
    const uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/// A bf16 pair word holds the even weight in its low half and the odd one in its high half.
MX_INLINE v16f pairs_even(v16u words) { return (v16f)(words << 16); }
MX_INLINE v16f pairs_odd(v16u words) { return (v16f)(words & 0xFFFF0000u); }

void MX_FN(bf16_split_pairs)(const float *x, int k, float *out) {
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        const v16f x0 = load16(x + i), x1 = load16(x + i + 16);
        store16(out + i, __builtin_shufflevector(x0, x1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
        store16(out + i + 16, __builtin_shufflevector(x0, x1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
    }
    for (; i < k; i++) out[i] = x[i];
}

// Rows are contiguous, so a thread's rows are one sequential stream; the software prefetch
// runs 8 KB ahead into L2 (MX_PREFETCH; the hardware prefetchers alone do not keep up).
void MX_FN(bf16_dot_rows)(const uint16_t *w, size_t row_stride, const float *x_split, int k, float *y, int rows) {
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        v16f a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int i = 0;
        for (; i + 64 <= k; i += 64) {
            MX_PREFETCH(row + i + 4096);
            MX_PREFETCH(row + i + 4096 + 32);
            const v16u w0 = load16u(row + i), w1 = load16u(row + i + 32);
            a0 = MADD(pairs_even(w0), load16(x_split + i), a0);
            a1 = MADD(pairs_odd(w0), load16(x_split + i + 16), a1);
            a2 = MADD(pairs_even(w1), load16(x_split + i + 32), a2);
            a3 = MADD(pairs_odd(w1), load16(x_split + i + 48), a3);
        }
        if (i + 32 <= k) {
            const v16u w0 = load16u(row + i);
            a0 = MADD(pairs_even(w0), load16(x_split + i), a0);
            a1 = MADD(pairs_odd(w0), load16(x_split + i + 16), a1);
            i += 32;
        }
        float sum = reduce16((a0 + a1) + (a2 + a3));
        for (; i < k; i++) sum = MADD(bf16_to_float(row[i]), x_split[i], sum);
        y[r] = sum;
    }
}

// One accumulator per (row, token) takes the even and the odd products.
MX_INLINE void dot4_tokens(const uint16_t *w, size_t row_stride, const float *x, int k, float *y, size_t y_stride,
                           const int T) {
    v16f acc[4][4];
    for (int r = 0; r < 4; r++) for (int t = 0; t < T; t++) acc[r][t] = 0;
    int i = 0;
    for (; i + 32 <= k; i += 32) {
        v16f xe[4], xo[4];
        for (int t = 0; t < T; t++) {
            const v16f x0 = load16(x + (size_t)t * k + i), x1 = load16(x + (size_t)t * k + i + 16);
            xe[t] = __builtin_shufflevector(x0, x1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            xo[t] = __builtin_shufflevector(x0, x1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        }
        for (int r = 0; r < 4; r++) {
            const uint16_t *row = w + (size_t)r * row_stride + i;
            MX_PREFETCH(row + 4096);
            const v16u words = load16u(row);
            const v16f even = pairs_even(words), odd = pairs_odd(words);
            for (int t = 0; t < T; t++) acc[r][t] = MADD(odd, xo[t], MADD(even, xe[t], acc[r][t]));
        }
    }
    for (int r = 0; r < 4; r++) {
        const uint16_t *row = w + (size_t)r * row_stride;
        for (int t = 0; t < T; t++) {
            float sum = reduce16(acc[r][t]);
            for (int j = i; j < k; j++) sum = MADD(bf16_to_float(row[j]), x[(size_t)t * k + j], sum);
            y[(size_t)t * y_stride + r] = sum;
        }
    }
}

void MX_FN(bf16_dot4_tokens)(const uint16_t *w, size_t row_stride, const float *x, int tokens, int k, float *y,
                             size_t y_stride) {
    switch (tokens) {
    case 1: dot4_tokens(w, row_stride, x, k, y, y_stride, 1); break;
    case 2: dot4_tokens(w, row_stride, x, k, y, y_stride, 2); break;
    case 3: dot4_tokens(w, row_stride, x, k, y, y_stride, 3); break;
    default: dot4_tokens(w, row_stride, x, k, y, y_stride, 4); break;
    }
}

// GGML blocks with fp32 activations: per block the integer-valued quants times x in 16
// lanes, scaled once; even and odd blocks in two accumulators (independent FMA chains).
MX_INLINE v16f bytes_to_float(const void *p) { v16c b; memcpy(&b, p, 16); return __builtin_convertvector(b, v16f); }

/// Σ (nibble - offset) x over one block: low nibbles are weights 0..15, high ones 16..31.
MX_INLINE v16f nibble_dot(const uint8_t *qs, const float *x, float offset) {
    v16uc bytes;
    memcpy(&bytes, qs, 16);
    const v16f low = __builtin_convertvector(bytes & 0x0F, v16f) - offset;
    const v16f high = __builtin_convertvector(bytes >> 4, v16f) - offset;
    return MADD(high, load16(x + 16), low * load16(x));
}

float MX_FN(dot_q8_0)(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    v16f acc[2] = {0, 0};
    for (int i = 0; i < blocks; i++, b += 34, x += 32) {
        const v16f s = MADD(bytes_to_float(b + 18), load16(x + 16), bytes_to_float(b + 2) * load16(x));
        acc[i & 1] = MADD((v16f)half_at(b), s, acc[i & 1]);
    }
    return reduce16(acc[0] + acc[1]);
}

float MX_FN(dot_q4_0)(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    v16f acc[2] = {0, 0};
    for (int i = 0; i < blocks; i++, b += 18, x += 32) {
        acc[i & 1] = MADD((v16f)half_at(b), nibble_dot(b + 2, x, 8.0f), acc[i & 1]);
    }
    return reduce16(acc[0] + acc[1]);
}

float MX_FN(dot_q4_1)(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    v16f acc[2] = {0, 0};
    for (int i = 0; i < blocks; i++, b += 20, x += 32) {
        const v16f scaled = half_at(b + 2) * (load16(x) + load16(x + 16));
        acc[i & 1] = acc[i & 1] + MADD((v16f)half_at(b), nibble_dot(b + 4, x, 0.0f), scaled);
    }
    return reduce16(acc[0] + acc[1]);
}

// MARK: - Panels (prefill)

void MX_FN(bf16_pack_panel)(const uint16_t *w, size_t stride, int rows, int k, uint16_t *panel) {
    uint32_t *out = (uint32_t *)panel;
    for (int kk = 0; kk < k / 2; kk++) {
        for (int r = 0; r < MX_BF16_PANEL_ROWS; r++) {
            uint32_t pair = 0;
            if (r < rows) memcpy(&pair, w + (size_t)r * stride + 2 * kk, 4);
            out[(size_t)kk * MX_BF16_PANEL_ROWS + r] = pair;
        }
    }
}

// Register tiles of 2 vectors of rows (2 * MX_VW rows) by TILE_TOKENS tokens, broadcasting
// one activation per step. Each output is a sum over k in order, so the tile shape does
// not change the result.
#if MX_VW == 16
#define TILE_TOKENS 6
#else
#define TILE_TOKENS 4
#endif

MX_INLINE void store_rows(float *y, vwf v, int rows) {
    if (rows >= MX_VW) {
        memcpy(y, &v, sizeof v);
    } else {
        for (int i = 0; i < rows; i++) y[i] = v[i];
    }
}

MX_INLINE void bf16_tile(const uint32_t *panel, int k, int r0, const float *x, float *y, size_t ldy, int rows,
                         const int T) {
    vwf acc[TILE_TOKENS][2];
    for (int t = 0; t < T; t++) { acc[t][0] = 0; acc[t][1] = 0; }
    for (int kk = 0; kk < k / 2; kk++) {
        const uint32_t *p = panel + (size_t)kk * MX_BF16_PANEL_ROWS + r0;
        const vwu w0 = loadwu(p), w1 = loadwu(p + MX_VW);
        const vwf e0 = (vwf)(w0 << 16), o0 = (vwf)(w0 & 0xFFFF0000u);
        const vwf e1 = (vwf)(w1 << 16), o1 = (vwf)(w1 & 0xFFFF0000u);
        for (int t = 0; t < T; t++) {
            const vwf b = x[(size_t)t * k + 2 * kk], c = x[(size_t)t * k + 2 * kk + 1];
            acc[t][0] = MADD(o0, c, MADD(e0, b, acc[t][0]));
            acc[t][1] = MADD(o1, c, MADD(e1, b, acc[t][1]));
        }
    }
    for (int t = 0; t < T; t++) {
        store_rows(y + (size_t)t * ldy, acc[t][0], rows);
        if (rows > MX_VW) store_rows(y + (size_t)t * ldy + MX_VW, acc[t][1], rows - MX_VW);
    }
}

void MX_FN(bf16_panel_multiply)(const uint16_t *panel, int k, const float *x, int tokens, float *y, size_t y_stride,
                                int rows) {
    const uint32_t *words = (const uint32_t *)panel;
    for (int r0 = 0; r0 < rows; r0 += 2 * MX_VW) {
        const int count = rows - r0 < 2 * MX_VW ? rows - r0 : 2 * MX_VW;
        int t = 0;
        for (; t + TILE_TOKENS <= tokens; t += TILE_TOKENS)
            bf16_tile(words, k, r0, x + (size_t)t * k, y + (size_t)t * y_stride + r0, y_stride, count, TILE_TOKENS);
        for (; t < tokens; t++) bf16_tile(words, k, r0, x + (size_t)t * k, y + (size_t)t * y_stride + r0, y_stride, count, 1);
    }
}

MX_INLINE void f32_tile(const float *panel, int k, int r0, const float *x, float *y, size_t ldy, int rows, const int T) {
    vwf acc[TILE_TOKENS][2];
    for (int t = 0; t < T; t++) { acc[t][0] = 0; acc[t][1] = 0; }
    for (int c = 0; c < k; c++) {
        const float *p = panel + (size_t)c * MX_F32_PANEL_ROWS + r0;
        const vwf w0 = loadw(p), w1 = loadw(p + MX_VW);
        for (int t = 0; t < T; t++) {
            const vwf b = x[(size_t)t * k + c];
            acc[t][0] = MADD(w0, b, acc[t][0]);
            acc[t][1] = MADD(w1, b, acc[t][1]);
        }
    }
    for (int t = 0; t < T; t++) {
        store_rows(y + (size_t)t * ldy, acc[t][0], rows);
        if (rows > MX_VW) store_rows(y + (size_t)t * ldy + MX_VW, acc[t][1], rows - MX_VW);
    }
}

void MX_FN(f32_panel_multiply)(const float *panel, int k, const float *x, int tokens, float *y, size_t y_stride, int rows) {
    for (int r0 = 0; r0 < rows; r0 += 2 * MX_VW) {
        const int count = rows - r0 < 2 * MX_VW ? rows - r0 : 2 * MX_VW;
        int t = 0;
        for (; t + TILE_TOKENS <= tokens; t += TILE_TOKENS)
            f32_tile(panel, k, r0, x + (size_t)t * k, y + (size_t)t * y_stride + r0, y_stride, count, TILE_TOKENS);
        for (; t < tokens; t++) f32_tile(panel, k, r0, x + (size_t)t * k, y + (size_t)t * y_stride + r0, y_stride, count, 1);
    }
}

// MARK: - 8-bit activations

void MX_FN(q8_quantize)(const float *x, int k, int8_t *q, float *d, float *s) {
    for (int b = 0; b < k / 32; b++) {
        const float *v = x + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        // quantize_row_q8_0: d = amax / 127 kept as fp16; q = round(x * 127 / amax).
        const float inverse = amax != 0 ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int level = (int)nearbyintf(v[j] * inverse);
            q[32 * b + j] = (int8_t)level;
            sum += level;
        }
        const float scale = amax / 127.0f;
        d[b] = round_to_half(scale);
        // quantize_row_q8_1 keeps s = d * Σq (fp32 d, before rounding) as fp16.
        s[b] = round_to_half(scale * (float)sum);
    }
}

void MX_FN(q8k_quantize)(const float *x, int k, int8_t *q, float *d, int32_t *sums16) {
    for (int b = 0; b < k / 256; b++) {
        const float *v = x + 256 * b;
        int8_t *qb = q + 256 * b;
        float amax = 0, extreme = 0;
        for (int j = 0; j < 256; j++) {
            const float a = fabsf(v[j]);
            if (a > amax) {
                amax = a;
                extreme = v[j];
            }
        }
        int32_t *sums = sums16 + 16 * b;
        if (!(amax > 0) || isinf(amax)) {
            d[b] = 0;
            memset(qb, 0, 256);
            mx_sums_per_16(qb, 16, sums);
            continue;
        }
        const float iscale = -127.0f / extreme;
        for (int j = 0; j < 256; j++) {
            // nearest_int: round through the float's mantissa (ties to even). Two statements,
            // so that the product is rounded before the addition (no fused multiply-add).
            const float product = iscale * v[j];
            const float shifted = product + 12582912.0f;
            int32_t bits;
            memcpy(&bits, &shifted, 4);
            const int level = (bits & 0x007FFFFF) - 0x00400000;
            qb[j] = (int8_t)(level > 127 ? 127 : level < -127 ? -127 : level);
        }
        mx_sums_per_16(qb, 16, sums);
        d[b] = 1.0f / iscale;
    }
}

/// Weight j (0..31) of a Q8_0/Q4_0/Q4_1 block, as the signed or unsigned integer the
/// 8-bit products use (Q4_0: nibble - 8; Q4_1: nibble).
MX_INLINE int block_weight(const uint8_t *block, int type, int j) {
    if (type == MX_INT8_Q8_0) return (int8_t)block[2 + j];
    const uint8_t *qs = block + (type == MX_INT8_Q4_0 ? 2 : 4);
    const int nibble = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return type == MX_INT8_Q4_0 ? nibble - 8 : nibble;
}

// llama.cpp's ggml_vec_dot_q8_0_q8_0 / q4_1_q8_1 (x86): per block, 8 integer lanes of four
// consecutive products; acc = fma(d_w * d_x, lanes, acc) in block order; Q4_1 adds
// m_w * s_x per block into a scalar; then hsum_float_8. Q4_0 sums blocks in pairs (below).
void MX_FN(q8_matmul)(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q, const float *d,
                      const float *s, int tokens, float *y, size_t y_row_stride) {
    const int blocks = k / 32;
    const int block_bytes = type == MX_INT8_Q8_0 ? 34 : type == MX_INT8_Q4_0 ? 18 : 20;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int t = 0; t < tokens; t++) {
            const int8_t *xq = q + (size_t)t * k;
            float acc[8] = {0}, minimum_terms = 0;
            int b = 0;
            // Q4_0 in Int8AVX2.c's order: blocks in pairs, lane L of each holding weights
            // 4L..4L+3 and 16+4L..16+4L+3, the pair's first block in lanes 0-3.
            for (; type == MX_INT8_Q4_0 && b + 1 < blocks; b += 2) {
                for (int lane = 0; lane < 8; lane++) {
                    const int pair = lane / 4, base = 4 * (lane % 4);
                    const uint8_t *block = row + (size_t)(b + pair) * block_bytes;
                    const int8_t *x = xq + 32 * (b + pair);
                    int sum = 0;
                    for (int j = base; j < base + 4; j++)
                        sum += block_weight(block, type, j) * x[j] + block_weight(block, type, j + 16) * x[j + 16];
                    acc[lane] = fmaf(half_at(block) * d[(size_t)t * blocks + b + pair], (float)sum, acc[lane]);
                }
            }
            for (; b < blocks; b++) {
                const uint8_t *block = row + (size_t)b * block_bytes;
                const float scale = half_at(block) * d[(size_t)t * blocks + b];
                for (int lane = 0; lane < 8; lane++) {
                    int sum = 0;
                    for (int j = 4 * lane; j < 4 * lane + 4; j++) sum += block_weight(block, type, j) * xq[32 * b + j];
                    acc[lane] = fmaf(scale, (float)sum, acc[lane]);
                }
                if (type == MX_INT8_Q4_1) minimum_terms = fmaf(half_at(block + 2), s[(size_t)t * blocks + b], minimum_terms);
            }
            y[(size_t)t * y_row_stride + r] = reduce8(acc) + minimum_terms;
        }
    }
}

// K-quants with Q8_K activations, in the 16 integer lanes of the AVX-512 kernel
// (Int8MatVec.c), so every level gives the same bits: lane L of a 64-weight group holds
// its weights 4L..4L+3 times their sub-block scale.

/// Q4_K/Q5_K's eight 6-bit scales and mins (kQuantScaleAndMin).
MX_INLINE void k_scales_mins(const uint8_t *scales, int j, int *scale, int *minimum) {
    if (j < 4) {
        *scale = scales[j] & 0x3F;
        *minimum = scales[j + 4] & 0x3F;
    } else {
        *scale = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        *minimum = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

MX_INLINE float dot_q45_K(const uint8_t *row, int blocks, int five_bits, const int8_t *q, const float *d,
                          const int32_t *sums16) {
    const int block_bytes = five_bits ? 176 : 144;
    v16f acc = 0;
    float minimum_terms = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + (size_t)block_bytes * b;
        const uint8_t *qs = block + (five_bits ? 48 : 16), *qh = block + 16;
        const int8_t *x = q + 256 * (size_t)b;
        int lanes[16] = {0}, minimum_sum = 0;
        for (int c = 0; c < 4; c++) {  // chunk c: sub-block 2c in low nibbles, 2c + 1 in high ones
            int scale[2], minimum[2];
            int16_t products[64];
            for (int h = 0; h < 2; h++) {
                k_scales_mins(block + 4, 2 * c + h, &scale[h], &minimum[h]);
                minimum_sum += minimum[h] * (sums16[16 * b + 2 * (2 * c + h)] + sums16[16 * b + 2 * (2 * c + h) + 1]);
            }
            for (int j = 0; j < 32; j++) {
                const int top_low = five_bits ? ((qh[j] >> (2 * c)) & 1) << 4 : 0;
                const int top_high = five_bits ? ((qh[j] >> (2 * c + 1)) & 1) << 4 : 0;
                products[j] = (int16_t)(((qs[32 * c + j] & 0x0F) | top_low) * x[64 * c + j]);
                products[32 + j] = (int16_t)(((qs[32 * c + j] >> 4) | top_high) * x[64 * c + 32 + j]);
            }
            for (int l = 0; l < 16; l++)
                lanes[l] += scale[l / 8] * (products[4 * l] + products[4 * l + 1] + products[4 * l + 2] + products[4 * l + 3]);
        }
        const float dx = d[b];
        for (int l = 0; l < 16; l++) acc[l] = fmaf((float)lanes[l], half_at(block) * dx, acc[l]);
        minimum_terms = fmaf(-(half_at(block + 2) * dx), (float)minimum_sum, minimum_terms);
    }
    return reduce16(acc) + minimum_terms;
}

MX_INLINE float dot_q6_K(const uint8_t *row, int blocks, const int8_t *q, const float *d, const int32_t *sums16) {
    v16f acc = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *block = row + 210 * (size_t)b;
        const int8_t *scales = (const int8_t *)(block + 192);
        const int8_t *x = q + 256 * (size_t)b;
        int lanes[16];
        // Σ sc (q - 32) q_x = Σ sc q q_x - 32 Σ sc Σ q_x: start from the second term.
        for (int l = 0; l < 16; l++) lanes[l] = -(scales[l] * sums16[16 * b + l] * 32);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = block + 64 * half, *qh = block + 128 + 32 * half;
            const int8_t *xh = x + 128 * half;
            int16_t products[128];
            for (int j = 0; j < 32; j++) {
                products[j] = (int16_t)(((ql[j] & 0x0F) | ((qh[j] & 3) << 4)) * xh[j]);
                products[32 + j] = (int16_t)(((ql[32 + j] & 0x0F) | (((qh[j] >> 2) & 3) << 4)) * xh[32 + j]);
                products[64 + j] = (int16_t)(((ql[j] >> 4) | (((qh[j] >> 4) & 3) << 4)) * xh[64 + j]);
                products[96 + j] = (int16_t)(((ql[32 + j] >> 4) | (((qh[j] >> 6) & 3) << 4)) * xh[96 + j]);
            }
            for (int e = 0; e < 128; e += 4)
                lanes[(e % 64) / 4] += scales[8 * half + e / 16] * (products[e] + products[e + 1] + products[e + 2] + products[e + 3]);
        }
        const float scale = half_at(block + 208) * d[b];
        for (int l = 0; l < 16; l++) acc[l] = fmaf((float)lanes[l], scale, acc[l]);
    }
    return reduce16(acc);
}

void MX_FN(q8k_matvec)(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q, const float *d,
                       const int32_t *sums16, float *y) {
    const int blocks = k / 256;
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        y[r] = type == MX_Q8K_Q6_K ? dot_q6_K(row, blocks, q, d, sums16)
                                   : dot_q45_K(row, blocks, type == MX_Q8K_Q5_K, q, d, sums16);
    }
}

// 8-bit panels. Signed types (Q8_0, Q4_0), portable layout: per block of 32, [16 rows][32
// signed weights] then 16 float scales; activations as signed bytes. Each output sums,
// block by block, fma(Σ w q_x, d_w * d_x) as the AVX-512 and AVX2 panels do.
//
// Unsigned types (Q4_1, Q4_K, Q5_K, Q6_K), the layout of every level: per block of 32,
// [8 groups of 4][16 rows][4] unsigned weights u, then 16 float scales s and 16 float
// offsets o (w = s u + o). A block adds fma(Σ u q_x, s d_x), then fma(o d_x, Σ q_x).
// Q6_K (w = s (u - 32), a scale per 16): the scales of weights 0-15 in s, of 16-31 in o;
// a block adds fma(Σ (u - 32) q_x, s d_x) for each half (groups 0-3, then 4-7).
enum { PORTABLE_PANEL_ROWS = 16, PORTABLE_TOKEN_TILE = 8, PANEL_BLOCK_BYTES = 16 * 32 + 16 * 4 + 16 * 4 };

size_t MX_FN(int8_panel_bytes)(int k) { return (size_t)(k / 32) * PANEL_BLOCK_BYTES; }

/// Weights of block b (of 32) of a Q4_1, Q4_K or Q5_K row as w = s u + o; of a Q6_K row as
/// w = s (u - 32) for weights 0-15 and o (u - 32) for 16-31.
MX_INLINE void unsigned_block(const uint8_t *row, int type, int b, uint8_t u[32], float *s, float *o) {
    if (type == MX_INT8_Q6_K) {
        // Weight e of the block of 256: half e / 128; low 4 bits from ql (low nibbles for
        // e % 128 < 64), high 2 bits from qh bits 2 (e % 128 / 32); scale e / 16.
        const uint8_t *block = row + 210 * (size_t)(b / 8);
        const int j = b % 8, half = j / 4, quarter = j % 4;
        const uint8_t *ql = block + 64 * half + 32 * (quarter % 2), *qh = block + 128 + 32 * half;
        for (int i = 0; i < 32; i++) {
            const int low = quarter < 2 ? ql[i] & 0x0F : ql[i] >> 4;
            u[i] = (uint8_t)(low | (((qh[i] >> (2 * quarter)) & 3) << 4));
        }
        const int8_t *scales = (const int8_t *)(block + 192);
        *s = half_at(block + 208) * (float)scales[2 * j];
        *o = half_at(block + 208) * (float)scales[2 * j + 1];
        return;
    }
    if (type == MX_INT8_Q4_1) {
        const uint8_t *block = row + 20 * (size_t)b;
        for (int j = 0; j < 16; j++) {
            u[j] = block[4 + j] & 0x0F;
            u[16 + j] = block[4 + j] >> 4;
        }
        *s = half_at(block);
        *o = half_at(block + 2);
        return;
    }
    // Q4_K/Q5_K: sub-block j of a block of 256 sits in chunk j / 2, low (j even) or high
    // nibbles; Q5_K's fifth bit is bit j of qh[i]. w = (d sc) q - dmin m (both exact).
    const int five_bits = type == MX_INT8_Q5_K;
    const uint8_t *block = row + (size_t)(five_bits ? 176 : 144) * (size_t)(b / 8);
    const int j = b % 8, chunk = j / 2;
    const uint8_t *qs = block + (five_bits ? 48 : 16) + 32 * chunk, *qh = block + 16;
    for (int i = 0; i < 32; i++) {
        int v = j % 2 ? qs[i] >> 4 : qs[i] & 0x0F;
        if (five_bits) v |= ((qh[i] >> j) & 1) << 4;
        u[i] = (uint8_t)v;
    }
    int scale, minimum;
    k_scales_mins(block + 4, j, &scale, &minimum);
    *s = half_at(block) * (float)scale;
    *o = -(half_at(block + 2) * (float)minimum);
}

void MX_FN(int8_pack_unsigned_groups)(const void *w, size_t row_bytes, int type, int rows, int k, void *panel) {
    uint8_t *out = (uint8_t *)panel;
    for (int b = 0; b < k / 32; b++, out += PANEL_BLOCK_BYTES) {
        float *scales = (float *)(out + 16 * 32), *offsets = scales + 16;
        for (int r = 0; r < 16; r++) {
            uint8_t u[32] = {0};
            float s = 0, o = 0;
            if (r < rows) unsigned_block((const uint8_t *)w + (size_t)r * row_bytes, type, b, u, &s, &o);
            for (int g = 0; g < 8; g++) memcpy(out + 64 * g + 4 * r, u + 4 * g, 4);
            scales[r] = s;
            offsets[r] = o;
        }
    }
}

void MX_FN(int8_pack_panel)(const void *w, size_t row_bytes, int type, int rows, int k, void *panel) {
    if (type != MX_INT8_Q8_0 && type != MX_INT8_Q4_0) {
        MX_FN(int8_pack_unsigned_groups)(w, row_bytes, type, rows, k, panel);
        return;
    }
    const int block_bytes = type == MX_INT8_Q8_0 ? 34 : 18;
    uint8_t *out = (uint8_t *)panel;
    for (int b = 0; b < k / 32; b++, out += PANEL_BLOCK_BYTES) {
        int8_t *quants = (int8_t *)out;
        float *scales = (float *)(out + 16 * 32);
        for (int r = 0; r < PORTABLE_PANEL_ROWS; r++) {
            const uint8_t *block = (const uint8_t *)w + (size_t)r * row_bytes + (size_t)b * block_bytes;
            for (int j = 0; j < 32; j++) quants[32 * r + j] = r < rows ? (int8_t)block_weight(block, type, j) : 0;
            scales[r] = r < rows ? half_at(block) : 0;
        }
    }
}

void MX_FN(int8_quantize_activations)(const float *x, int tokens, int padded_tokens, int k, uint8_t *xq, float *dx,
                                      int32_t *sums16) {
    float unused[1];
    for (int t = 0; t < padded_tokens; t++) {
        for (int b = 0; b < k / 32; b++) {
            int8_t *q = (int8_t *)xq + (size_t)t * k + 32 * b;
            if (t < tokens) {
                MX_FN(q8_quantize)(x + (size_t)t * k + 32 * b, 32, q, dx + (size_t)t * (k / 32) + b, unused);
            } else {
                memset(q, 0, 32);
                dx[(size_t)t * (k / 32) + b] = 0;
            }
            mx_sums_per_16(q, 2, sums16 + (size_t)t * (k / 16) + 2 * b);
        }
    }
}

void MX_FN(int8_gemm_panel)(const void *panel, int type, int rows, int k, const uint8_t *xq, const float *dx,
                            const int32_t *sums16, int tokens, int padded_tokens, float *y, size_t y_row_stride) {
    (void)padded_tokens;
    const int blocks = k / 32;
    const int is_signed = type == MX_INT8_Q8_0 || type == MX_INT8_Q4_0;
    for (int t = 0; t < tokens; t++) {
        const int8_t *x = (const int8_t *)xq + (size_t)t * k;
        for (int r = 0; r < rows; r++) {
            float acc = 0;
            for (int b = 0; b < blocks; b++) {
                const uint8_t *block = (const uint8_t *)panel + (size_t)b * PANEL_BLOCK_BYTES;
                const int8_t *xb = x + 32 * b;
                const float d = dx[(size_t)t * blocks + b];
                float scale;
                memcpy(&scale, block + 16 * 32 + 4 * r, 4);
                int sum = 0;
                if (is_signed) {
                    const int8_t *weights = (const int8_t *)block + 32 * r;
                    for (int j = 0; j < 32; j++) sum += weights[j] * xb[j];
                    acc = fmaf((float)sum, scale * d, acc);
                } else if (type == MX_INT8_Q6_K) {
                    float second;
                    memcpy(&second, block + 16 * 32 + 64 + 4 * r, 4);
                    for (int h = 0; h < 2; h++) {
                        int part = 0;
                        for (int g = 4 * h; g < 4 * h + 4; g++)
                            for (int i = 0; i < 4; i++) part += block[64 * g + 4 * r + i] * xb[4 * g + i];
                        const int quant_sum = sums16[(size_t)t * (k / 16) + 2 * b + h];
                        acc = fmaf((float)(part - 32 * quant_sum), (h ? second : scale) * d, acc);
                    }
                } else {
                    float offset;
                    memcpy(&offset, block + 16 * 32 + 64 + 4 * r, 4);
                    const int32_t *s16 = sums16 + (size_t)t * (k / 16) + 2 * b;
                    const int quant_sum = s16[0] + s16[1];
                    for (int g = 0; g < 8; g++)
                        for (int i = 0; i < 4; i++) sum += block[64 * g + 4 * r + i] * xb[4 * g + i];
                    acc = fmaf((float)sum, scale * d, acc);
                    acc = fmaf(offset * d, (float)quant_sum, acc);
                }
            }
            y[(size_t)t * y_row_stride + r] = acc;
        }
    }
}

// MARK: - Attention and activations (transformers' arithmetic)

/// e^x for 16 lanes: Cephes' expf polynomial (max error about 1 ulp) after reducing by
/// powers of two; 0 below -87.336 (including -inf), +inf from about 88.38 (where 2^n
/// overflows), NaN stays NaN.
MX_INLINE v16f exp16(v16f x) {
    const v16f clamped = __builtin_elementwise_min(__builtin_elementwise_max(x, (v16f)-87.336f), (v16f)88.72f);
    // Adding 1.5 * 2^23 rounds x * log2(e) to an integer n held in the low mantissa bits.
    const float magic = 12582912.0f;
    const v16f shifted = clamped * 1.44269504f + magic;
    const v16f n = shifted - magic;
    v16f r = clamped - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v16f p = 1.98756915e-4f;
    p = p * r + 1.39819995e-3f;
    p = p * r + 8.3334519e-3f;
    p = p * r + 4.16657959e-2f;
    p = p * r + 1.66666655e-1f;
    p = p * r + 5.0000001e-1f;
    p = p * (r * r) + r + 1.0f;
    const v16u exponent = (v16u)shifted - 0x4B400000u + 127u;  // n + 127
    v16f result = p * (v16f)(exponent << 23);
    result = select_f(x < -87.336f, (v16f)0.0f, result);
    result = select_f(x > 88.72f, (v16f)INFINITY, result);
    return select_f(x != x, x, result);
}

void MX_FN(silu_multiply)(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16f g = load16(gate + i);
        store16(gate + i, g / (1.0f + exp16(-g)) * load16(up + i));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/// scores[0..<16] = Σ_i query[i] keyBlock[i][0..<16]: one broadcast query element per step
/// against 16 keys, two chains.
MX_INLINE void score_block(const float *query, const float *key_block, int d, float *scores) {
    v16f a0 = 0, a1 = 0;
    int i = 0;
    for (; i + 2 <= d; i += 2) {
        a0 = MADD((v16f)query[i], load16(key_block + (size_t)i * 16), a0);
        a1 = MADD((v16f)query[i + 1], load16(key_block + (size_t)(i + 1) * 16), a1);
    }
    if (i < d) a0 = MADD((v16f)query[i], load16(key_block + (size_t)i * 16), a0);
    store16(scores, a0 + a1);
}

/// score_block for two queries at once: each key vector is loaded once, and the four
/// independent chains keep both FMA units busy. Each query's sums are score_block's.
MX_INLINE void score_block2(const float *q0, const float *q1, const float *key_block, int d, float *s0, float *s1) {
    v16f a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    int i = 0;
    for (; i + 2 <= d; i += 2) {
        const v16f k0 = load16(key_block + (size_t)i * 16), k1 = load16(key_block + (size_t)(i + 1) * 16);
        a0 = MADD((v16f)q0[i], k0, a0);
        a1 = MADD((v16f)q0[i + 1], k1, a1);
        b0 = MADD((v16f)q1[i], k0, b0);
        b1 = MADD((v16f)q1[i + 1], k1, b1);
    }
    if (i < d) {
        const v16f k0 = load16(key_block + (size_t)i * 16);
        a0 = MADD((v16f)q0[i], k0, a0);
        b0 = MADD((v16f)q1[i], k0, b0);
    }
    store16(s0, a0 + a1);
    store16(s1, b0 + b1);
}

enum { ATTENTION_TILE = 64, KEY_BLOCK = 16 };

// FlashAttention-style: keys in tiles of 64 with an online softmax (running max and sum,
// rescaling the partial output), so memory stays linear in the sequence length. Rows are
// (token, head in group); all of a kv group's heads share each key and value read.
void MX_FN(attention_block)(const float *q, int first_token, int tokens, int first_position, int kv_head,
                            const float *keys, const float *values, int heads, int kv_heads, int d, int window,
                            float *out, float *scratch) {
    const int group = heads / kv_heads, rows = tokens * group;
    const size_t q_stride = (size_t)heads * d, kv_stride = (size_t)kv_heads * d, kv_offset = (size_t)kv_head * d;
    const float scale = 1.0f / sqrtf((float)d);
    const int first_query = first_position + first_token, last = first_query + tokens - 1;
#define LOWEST_KEY(p) (window > 0 ? ((p) - window + 1 > 0 ? (p) - window + 1 : 0) : 0)
    float *queries = scratch, *outputs = queries + (size_t)rows * d, *scores = outputs + (size_t)rows * d;
    float *running_max = scores + (size_t)rows * ATTENTION_TILE, *running_sum = running_max + rows;
    for (int t = 0; t < tokens; t++) {
        for (int g = 0; g < group; g++) {
            const float *source = q + (size_t)(first_token + t) * q_stride + (size_t)(kv_head * group + g) * d;
            float *row = queries + (size_t)(t * group + g) * d;
            for (int i = 0; i < d; i++) row[i] = source[i] * scale;
        }
    }
    memset(outputs, 0, sizeof(float) * (size_t)rows * d);
    for (int r = 0; r < rows; r++) { running_max[r] = -INFINITY; running_sum[r] = 0; }

    // Tiles of 64 keys aligned to key blocks; keys before the window are masked.
    int start = LOWEST_KEY(first_query) / KEY_BLOCK * KEY_BLOCK;
    while (start <= last) {
        const int count = last + 1 - start < ATTENTION_TILE ? last + 1 - start : ATTENTION_TILE;
        for (int b = 0; b < (count + KEY_BLOCK - 1) / KEY_BLOCK; b++) {
            const float *key_block = keys + ((size_t)(start / KEY_BLOCK + b) * kv_heads + kv_head) * d * KEY_BLOCK;
            int r = 0;
            for (; r + 2 <= rows; r += 2)
                score_block2(queries + (size_t)r * d, queries + (size_t)(r + 1) * d, key_block, d,
                             scores + (size_t)r * ATTENTION_TILE + b * KEY_BLOCK,
                             scores + (size_t)(r + 1) * ATTENTION_TILE + b * KEY_BLOCK);
            if (r < rows)
                score_block(queries + (size_t)r * d, key_block, d, scores + (size_t)r * ATTENTION_TILE + b * KEY_BLOCK);
        }
        for (int r = 0; r < rows; r++) {
            const int position = first_query + r / group, lowest = LOWEST_KEY(position);
            float *row = scores + (size_t)r * ATTENTION_TILE;
            // Keys this query may not see (future, or before its window) get -inf.
            for (int j = 0; j < ATTENTION_TILE; j++)
                if (j >= count || start + j > position || start + j < lowest) row[j] = -INFINITY;
            float tile_max = -INFINITY;
            for (int j = 0; j < count; j++) tile_max = row[j] > tile_max ? row[j] : tile_max;
            const float new_max = running_max[r] > tile_max ? running_max[r] : tile_max;
            if (new_max == -INFINITY) continue;  // nothing visible in this tile yet
            const float correction = expf(running_max[r] - new_max);
            running_max[r] = new_max;
            float sum = 0;
            for (int j = 0; j < ATTENTION_TILE; j += 16) {
                const v16f p = exp16(load16(row + j) - new_max);
                store16(row + j, p);
                sum += reduce16(p);
            }
            running_sum[r] = running_sum[r] * correction + sum;
            if (correction != 1) {
                float *output = outputs + (size_t)r * d;
                for (int i = 0; i < d; i++) output[i] *= correction;
            }
        }
        // outputs[r] += Σ_j p[r][j] v[j] in registers, 64 dimensions at a time (four
        // independent chains), then 16.
        for (int r = 0; r < rows; r++) {
            float *output = outputs + (size_t)r * d;
            const float *p = scores + (size_t)r * ATTENTION_TILE;
            int c = 0;
            for (; c + 64 <= d; c += 64) {
                v16f acc[4];
                for (int i = 0; i < 4; i++) acc[i] = load16(output + c + 16 * i);
                for (int j = 0; j < count; j++) {
                    const float *v = values + (size_t)(start + j) * kv_stride + kv_offset + c;
                    for (int i = 0; i < 4; i++) acc[i] = MADD((v16f)p[j], load16(v + 16 * i), acc[i]);
                }
                for (int i = 0; i < 4; i++) store16(output + c + 16 * i, acc[i]);
            }
            for (; c + 16 <= d; c += 16) {
                v16f acc = load16(output + c);
                for (int j = 0; j < count; j++)
                    acc = MADD((v16f)p[j], load16(values + (size_t)(start + j) * kv_stride + kv_offset + c), acc);
                store16(output + c, acc);
            }
            for (; c < d; c++)
                for (int j = 0; j < count; j++) output[c] += p[j] * values[(size_t)(start + j) * kv_stride + kv_offset + c];
        }
        start += count;
    }
#undef LOWEST_KEY
    for (int t = 0; t < tokens; t++) {
        for (int g = 0; g < group; g++) {
            const int r = t * group + g;
            float *destination = out + (size_t)(first_token + t) * q_stride + (size_t)(kv_head * group + g) * d;
            const float inverse = 1 / running_sum[r];
            for (int i = 0; i < d; i++) destination[i] = outputs[(size_t)r * d + i] * inverse;
        }
    }
}

// MARK: - llama.cpp's steps (ggml/src/ggml-cpu: ops.cpp, vec.cpp, vec.h, simd-mappings.h,
// llamafile/sgemm.cpp), float step for float step as its x86 AVX-512 build computes them.
// Sums are written out in ggml's order and every fused multiply-add is fmaf, so these give
// the same bits on every level; LlamaCppOps.c has the AVX-512 versions.

/// GGML_F32x16_REDUCE with four accumulators: x0 += x2, x1 += x3, x0 += x1, reduce16(x0).
MX_INLINE float reduce_four(const v16f acc[4]) { return reduce16((acc[0] + acc[2]) + (acc[1] + acc[3])); }

/// ggml_vec_dot_f32: four 16-lane FMA chains over steps of 64, GGML_F32x16_REDUCE, then
/// leftovers added one by one (fused, as GCC contracts sumf += x*y).
float MX_FN(llama_dot_f32)(const float *x, const float *y, int n) {
    v16f acc[4] = {0, 0, 0, 0};
    const int np = n & ~63;
    for (int i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++) acc[j] = FMA_EXACT(load16(x + i + 16 * j), load16(y + i + 16 * j), acc[j]);
    float sum = reduce_four(acc);
    for (int i = np; i < n; i++) sum = fmaf(x[i], y[i], sum);
    return sum;
}

/// tinyBLAS<16, __m512> (llamafile_sgemm, F32 products of two or more tokens when
/// k % 16 == 0): one 16-lane FMA chain per output over k, then _mm512_reduce_add_ps.
float MX_FN(llama_dot_f32_tinyblas)(const float *x, const float *y, int n) {
    v16f acc = 0;
    for (int i = 0; i + 16 <= n; i += 16) acc = FMA_EXACT(load16(x + i), load16(y + i), acc);
    return reduce16(acc);
}

/// ggml_compute_forward_rms_norm_f32 (+ ggml_mul by the weight): the squares summed in
/// double, mean and scale in float, y = x * scale * w.
void MX_FN(llama_rms_norm)(const float *x, const float *w, float eps, int n, float *y) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

/// j * 2^n for integer-valued n in [-192, 192], rounded once (as vscalefps): one
/// multiplication by a power of two where that is a normal float, else two, the first
/// exact (j is near 1) and the second rounding.
MX_INLINE v16f scale_by_power_of_two(v16f j, v16f n) {
    const v16i e = __builtin_convertvector(n, v16i);
    const v16i normal = (e >= -126) & (e <= 127), high = e > 127;
    const v16i e1 = select_i(normal, e, select_i(high, (v16i)127, e + 96));
    const v16i e2 = select_i(normal, (v16i)0, select_i(high, e - 127, (v16i)-96));
    const v16f first = j * (v16f)((v16u)(e1 + 127) << 23);
    return select_f(normal, first, first * (v16f)((v16u)(e2 + 127) << 23));
}

/// ggml_v_expf (vec.h, AVX-512): 2^n times a polynomial, with the overflow/underflow
/// blend; every step as its intrinsics round.
MX_INLINE v16f llama_expf16(v16f x) {
    const v16f r = 0x1.8p23f;
    const v16f z = FMA_EXACT(x, (v16f)0x1.715476p+0f, r);
    const v16f n = z - r;
    const v16f b = FMA_EXACT(-n, (v16f)0x1.7f7d1cp-20f, FMA_EXACT(-n, (v16f)0x1.62e4p-1f, x));
    const v16i d = __builtin_elementwise_abs(n) > 192.0f;  // false for NaN
    const v16f u = b * b;
    const v16f j = FMA_EXACT(FMA_EXACT(FMA_EXACT((v16f)0x1.0e4020p-7f, b, (v16f)0x1.573e2ep-5f), u,
                                       FMA_EXACT((v16f)0x1.555e66p-3f, b, (v16f)0x1.fffdb6p-2f)),
                             u, FMA_EXACT((v16f)0x1.ffffecp-1f, b, (v16f)1.0f));
    // (max/min return the number for a NaN lane: no NaN reaches the integer conversion.)
    const v16f in_range = __builtin_elementwise_min(__builtin_elementwise_max(n, (v16f)-192.0f), (v16f)192.0f);
    const v16f res = select_f(n != n, n, scale_by_power_of_two(j, in_range));
    const v16f alt = select_f(n <= 0.0f, (v16f)0.0f, (v16f)INFINITY);
    return select_f(d, alt, res);
}

/// ggml_vec_swiglu_f32: x / (1 + v_expf(-x)) * g in blocks of 16, then silu with expf.
void MX_FN(llama_swiglu)(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 15 < n; i += 16) {
        const v16f x = load16(gate + i);
        const v16f e = llama_expf16(0.0f - x);
        store16(gate + i, x / (1.0f + e) * load16(up + i));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/// ggml_compute_forward_soft_max_f32 (scale 1, no mask): exponentials of x - max (v_expf
/// in blocks of 16, then expf), summed in double, scaled by (float)(1 / sum).
void MX_FN(llama_softmax)(float *x, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    int i = 0;
    for (; i + 15 < n; i += 16) {
        const v16f v = llama_expf16(load16(x + i) - max);
        store16(x + i, v);
        sum += (double)reduce16(v);
    }
    for (; i < n; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        x[i] = v;
    }
    const float inverse = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) x[j] *= inverse;
}

/// rotate_pairs as GCC vectorises it (vmulps, then vfmaddsub): x0' = x0 cos - (x1 sin),
/// x1' = x0 sin + (x1 cos), the products in parentheses rounded first. Pairs are
/// (x[i], x[i + d/2]) (transformers' rotate_half layout), pair i at angle i.
void MX_FN(llama_rotary)(float *x, int heads, int head_dim, const float *cos_t, const float *sin_t) {
    const int half = head_dim / 2;
    for (int h = 0; h < heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const float x0 = v[i], x1 = v[i + half];
            const float a = x1 * sin_t[i], b = x1 * cos_t[i];
            v[i] = fmaf(x0, cos_t[i], -a);
            v[i + half] = fmaf(x0, sin_t[i], b);
        }
    }
}

/// ggml_compute_forward_flash_attn_ext_f16_one_chunk with F16 K and V, for one query row of
/// one head: Q rounded to fp16; each visible key, in position order, scored by
/// ggml_vec_dot_f16 (four 16-lane FMA chains over steps of 64, GGML_F32Cx16_REDUCE,
/// leftovers in double), times the scale; an online softmax with expf and the weighted
/// values summed in an fp16 accumulator (every multiply-add rounded to fp16); finally the
/// fp32 copy divided by the sum. Keys hold fp16 values in fp32, blocked as in
/// attention_block; values are rows of `value_stride` floats. Q and K are in
/// transformers' rotate_half order; llama.cpp's are interleaved (its GGUF permutation),
/// and the dot product follows its element order: element e there is (e even) e/2, (e
/// odd) e/2 + d/2 here. The 16 positions of a key block are scored at once, one lane each.
void MX_FN(llama_attention)(const float *q, const float *keys, int kv_heads, int kv_head, int d, const float *values,
                            size_t value_stride, int first_key, int last_key, float scale, float *out, float *scratch) {
    float *q16 = scratch;              // [d], llama.cpp's element order
    float *acc16 = scratch + d;        // [d], fp16 values in fp32
    int order[d];                      // llama.cpp's element e is ours order[e]
    for (int e = 0; e < d; e++) order[e] = e % 2 == 0 ? e / 2 : e / 2 + d / 2;
    for (int e = 0; e < d; e++) { q16[e] = round_to_half(q[order[e]]); acc16[e] = 0; }
    const int np = d & ~63;
    float S = 0.0f, M = -INFINITY;
    int position = first_key;
    while (position <= last_key) {
        const int block = position / 16;
        const float *kb = keys + ((size_t)block * kv_heads + kv_head) * (size_t)d * 16;
        // lane[l]: ggml's lane l for the 16 positions (vector lanes = positions).
        v16f lane[16];
        for (int l = 0; l < 16; l++) {
            v16f a[4] = {0, 0, 0, 0};
            for (int i = 0; i < np; i += 64)
                for (int j = 0; j < 4; j++)
                    a[j] = FMA_EXACT(load16(kb + (size_t)order[i + 16 * j + l] * 16), (v16f)q16[i + 16 * j + l], a[j]);
            lane[l] = (a[0] + a[2]) + (a[1] + a[3]);
        }
        // reduce16 of each position's 16 lanes, elementwise over positions.
        for (int i = 0; i < 8; i++) lane[i] = lane[8 + i] + lane[i];
        for (int i = 0; i < 4; i++) lane[i] = lane[4 + i] + lane[i];
        float scores[16];
        store16(scores, (lane[0] + lane[2]) + (lane[1] + lane[3]));
        if (np < d) {  // leftovers, in double as ggml_vec_dot_f16
            for (int p = 0; p < 16; p++) {
                double sum = (double)scores[p];
                for (int i = np; i < d; i++) sum += (double)(kb[(size_t)order[i] * 16 + p] * q16[i]);
                scores[p] = (float)sum;
            }
        }
        const int end = (block + 1) * 16 - 1 < last_key ? (block + 1) * 16 - 1 : last_key;
        const int count = end - position + 1;
        // The online softmax of the block's positions first (scalar), then the value
        // updates with the accumulator in registers: every element sees the same
        // operations in the same position order as ggml's loop, which rescales
        // (ggml_vec_scale_f16) when the maximum grows and adds (ggml_vec_mad_f16).
        float value_scales[16], accumulator_scales[16];
        int rescales[16];
        mx_llama_softmax_steps(scores, position, count, scale, &M, &S, value_scales, accumulator_scales, rescales);
        const float *v0 = values + (size_t)position * value_stride;
        int i = 0;
        for (; i + 64 <= d; i += 64) {
            v16f a[4];
            for (int j = 0; j < 4; j++) a[j] = load16(acc16 + i + 16 * j);
            for (int p = 0; p < count; p++) {
                const float *v = v0 + (size_t)p * value_stride + i;
                if (rescales[p])
                    for (int j = 0; j < 4; j++) a[j] = round_to_half16(a[j] * accumulator_scales[p]);
                for (int j = 0; j < 4; j++) a[j] = round_to_half16(FMA_EXACT(load16(v + 16 * j), (v16f)value_scales[p], a[j]));
            }
            for (int j = 0; j < 4; j++) store16(acc16 + i + 16 * j, a[j]);
        }
        for (; i + 16 <= d; i += 16) {
            v16f a = load16(acc16 + i);
            for (int p = 0; p < count; p++) {
                if (rescales[p]) a = round_to_half16(a * accumulator_scales[p]);
                a = round_to_half16(FMA_EXACT(load16(v0 + (size_t)p * value_stride + i), (v16f)value_scales[p], a));
            }
            store16(acc16 + i, a);
        }
        for (; i < d; i++) {
            for (int p = 0; p < count; p++) {
                if (rescales[p]) acc16[i] = round_to_half(acc16[i] * accumulator_scales[p]);
                acc16[i] = round_to_half(fmaf(v0[(size_t)p * value_stride + i], value_scales[p], acc16[i]));
            }
        }
        position = end + 1;
    }
    const float inverse = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < d; i++) out[i] = acc16[i] * inverse;
}

// MARK: - Memory

uint64_t MX_FN(read_memory)(const void *memory, size_t bytes, int prefetch) {
    const char *p = (const char *)memory;
    v8u64 a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        if (prefetch) {
            MX_PREFETCH(p + i + 8192);
            MX_PREFETCH(p + i + 8192 + 64);
            MX_PREFETCH(p + i + 8192 + 128);
            MX_PREFETCH(p + i + 8192 + 192);
        }
        v8u64 v[4];
        memcpy(v, p + i, 256);
        a0 += v[0];
        a1 += v[1];
        a2 += v[2];
        a3 += v[3];
    }
    for (; i + 64 <= bytes; i += 64) {
        v8u64 v;
        memcpy(&v, p + i, 64);
        a0 += v;
    }
    const v8u64 total = (a0 + a1) + (a2 + a3);
    uint64_t sum = 0;
    for (int l = 0; l < 8; l++) sum += total[l];
    return sum;
}
