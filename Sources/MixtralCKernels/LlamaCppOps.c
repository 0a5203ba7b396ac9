#include "KernelVariants.h"

// llama.cpp's non-matrix steps as its x86 AVX-512 build computes them, for `--precision
// fast`: with the 8-bit products of Int8MatVec.c, a decode step gives llama.cpp's logits
// bit for bit. Each function names the ggml routine it follows (ggml/src/ggml-cpu: ops.cpp,
// vec.cpp, vec.h, simd-mappings.h). The portable kernels (Portable.h) compute the same
// bits on every level; these are their AVX-512 intrinsics versions. Sums are written out
// in ggml's order; the compiler must not reassociate or contract them.

#include <math.h>
#include <string.h>

#pragma clang fp contract(off)

// ggml_rope_cache_init + rope_yarn (no YaRN, frequency scale 1): theta starts at the
// position and is multiplied by base^(-2/d) once per pair.
void mx_llama_rope_table(int position, float base, int dims, float *cos_out, float *sin_out) {
    const float theta_scale = powf(base, -2.0f / (float)dims);
    float theta = (float)position;
    for (int i = 0; i < dims / 2; i++) {
        cos_out[i] = cosf(theta);
        sin_out[i] = sinf(theta);
        theta *= theta_scale;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define LLAMA_TARGET __attribute__((target("avx512f,avx512dq,f16c,fma")))

// _mm512_reduce_add_ps as GCC expands it (avx512fintrin.h): halves 8+8, 4+4, then
// (0+2, 1+3), then the two.
LLAMA_TARGET static inline float reduce16(const float *v) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = v[8 + i] + v[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// ggml_v_expf (vec.h, AVX-512): 2^n * polynomial, with the overflow/underflow blend.
LLAMA_TARGET static inline __m512 v_expf(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d)) return res;
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(d, res, alt);
}

// ggml_vec_swiglu_f32: x / (1 + v_expf(-x)) * g in blocks of 16, then silu with expf.
LLAMA_TARGET void mx_llama_swiglu_avx512_intrinsics(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 15 < n; i += 16) {
        const __m512 x = _mm512_loadu_ps(gate + i);
        const __m512 e = v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x));
        const __m512 silu = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1), e));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// ggml_compute_forward_soft_max_f32 (scale 1, no mask): exponentials of x - max (v_expf
// in blocks of 16, then expf), summed in double, scaled by (float)(1 / sum).
LLAMA_TARGET void mx_llama_softmax_avx512_intrinsics(float *x, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    int i = 0;
    for (; i + 15 < n; i += 16) {
        const __m512 v = v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(max)));
        _mm512_storeu_ps(x + i, v);
        float lanes[16];
        _mm512_storeu_ps(lanes, v);
        sum += (double)reduce16(lanes);
    }
    for (; i < n; i++) {
        const float v = expf(x[i] - max);
        sum += (double)v;
        x[i] = v;
    }
    const float inverse = (float)(1.0 / sum);
    for (int j = 0; j < n; j++) x[j] *= inverse;
}
// ggml_compute_forward_flash_attn_ext_f16_one_chunk (see mx_llama_attention in Portable.h
// for the arithmetic): the scores of a key block's 16 positions in vector lanes, the
// fp16 value updates 16 lanes at a time.
LLAMA_TARGET static inline __m512 round_to_half16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, 0));
}

LLAMA_TARGET void mx_llama_attention_avx512_intrinsics(const float *q, const float *keys, int kv_heads, int kv_head, int d,
                                                       const float *values, size_t value_stride, int first_key,
                                                       int last_key, float scale, float *out, float *scratch) {
    float *q16 = scratch;              // [d], llama.cpp's element order
    float *acc16 = scratch + d;        // [d], fp16 values in fp32
    int order[d];                      // llama.cpp's element e is ours order[e]
    for (int e = 0; e < d; e++) order[e] = e % 2 == 0 ? e / 2 : e / 2 + d / 2;
    for (int e = 0; e < d; e++) { q16[e] = mx_round_to_half(q[order[e]]); acc16[e] = 0; }
    const int np = d & ~63;
    const int vectors = d % 16 == 0;   // the value updates 16 at a time
    float S = 0.0f, M = -INFINITY;
    int position = first_key;
    while (position <= last_key) {
        // The scores of the block's 16 positions at once (vector lanes = positions); for
        // ggml lane l the four accumulators, then the GGML_F32Cx16_REDUCE and
        // _mm512_reduce_add_ps trees, elementwise over positions.
        const int block = position / 16;
        const float *kb = keys + ((size_t)block * kv_heads + kv_head) * (size_t)d * 16;
        __m512 lane[16];
        for (int l = 0; l < 16; l++) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < np; i += 64) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(kb + (size_t)order[i + l] * 16), _mm512_set1_ps(q16[i + l]), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(kb + (size_t)order[i + 16 + l] * 16), _mm512_set1_ps(q16[i + 16 + l]), a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(kb + (size_t)order[i + 32 + l] * 16), _mm512_set1_ps(q16[i + 32 + l]), a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(kb + (size_t)order[i + 48 + l] * 16), _mm512_set1_ps(q16[i + 48 + l]), a3);
            }
            lane[l] = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
        }
        for (int i = 0; i < 8; i++) lane[i] = _mm512_add_ps(lane[8 + i], lane[i]);
        for (int i = 0; i < 4; i++) lane[i] = _mm512_add_ps(lane[4 + i], lane[i]);
        float scores[16];
        _mm512_storeu_ps(scores, _mm512_add_ps(_mm512_add_ps(lane[0], lane[2]), _mm512_add_ps(lane[1], lane[3])));
        if (np < d) {  // leftovers, in double as ggml_vec_dot_f16
            for (int p = 0; p < 16; p++) {
                double sum = (double)scores[p];
                for (int i = np; i < d; i++) sum += (double)(kb[(size_t)order[i] * 16 + p] * q16[i]);
                scores[p] = (float)sum;
            }
        }
        const int end = (block + 1) * 16 - 1 < last_key ? (block + 1) * 16 - 1 : last_key;
        const int count = end - position + 1;
        // The softmax steps first, then the value updates with the accumulator in
        // registers (same operations, same position order; see Portable.h).
        float value_scales[16], accumulator_scales[16];
        int rescales[16];
        mx_llama_softmax_steps(scores, position, count, scale, &M, &S, value_scales, accumulator_scales, rescales);
        const float *v0 = values + (size_t)position * value_stride;
        int i = 0;
        if (vectors) {
            for (; i + 64 <= d; i += 64) {
                __m512 a[4];
                for (int j = 0; j < 4; j++) a[j] = _mm512_loadu_ps(acc16 + i + 16 * j);
                for (int p = 0; p < count; p++) {
                    const float *v = v0 + (size_t)p * value_stride + i;
                    if (rescales[p])
                        for (int j = 0; j < 4; j++) a[j] = round_to_half16(_mm512_mul_ps(a[j], _mm512_set1_ps(accumulator_scales[p])));
                    for (int j = 0; j < 4; j++)
                        a[j] = round_to_half16(_mm512_fmadd_ps(_mm512_loadu_ps(v + 16 * j), _mm512_set1_ps(value_scales[p]), a[j]));
                }
                for (int j = 0; j < 4; j++) _mm512_storeu_ps(acc16 + i + 16 * j, a[j]);
            }
            for (; i < d; i += 16) {
                __m512 a = _mm512_loadu_ps(acc16 + i);
                for (int p = 0; p < count; p++) {
                    if (rescales[p]) a = round_to_half16(_mm512_mul_ps(a, _mm512_set1_ps(accumulator_scales[p])));
                    a = round_to_half16(_mm512_fmadd_ps(_mm512_loadu_ps(v0 + (size_t)p * value_stride + i),
                                                        _mm512_set1_ps(value_scales[p]), a));
                }
                _mm512_storeu_ps(acc16 + i, a);
            }
        }
        for (; i < d; i++) {
            for (int p = 0; p < count; p++) {
                if (rescales[p]) acc16[i] = mx_round_to_half(acc16[i] * accumulator_scales[p]);
                acc16[i] = mx_round_to_half(fmaf(v0[(size_t)p * value_stride + i], value_scales[p], acc16[i]));
            }
        }
        position = end + 1;
    }
    const float inverse = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < d; i++) out[i] = acc16[i] * inverse;
}
#endif
