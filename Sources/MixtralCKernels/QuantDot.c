#include "MixtralCKernels.h"

// Dot products of GGML block rows with fp32 activations. Swift's SIMD conversions from
// 8-bit lanes (SIMD16<Int32>(truncatingIfNeeded: SIMD16<UInt8>)) are not inlined and cost
// a call per block; AVX-512 widens 16 bytes in one vpmovzxbd/vpmovsxbd. Callers check
// mx_cpu_has_avx512f() and otherwise use the Swift kernels.

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

int mx_cpu_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

__attribute__((target("avx512f,f16c")))
static inline float half_at(const uint8_t *p) {
    uint16_t bits;
    memcpy(&bits, p, 2);
    return _cvtsh_ss(bits);
}

__attribute__((target("avx512f,f16c")))
float mx_dot_q8_0(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    // Two accumulators (even and odd blocks) so consecutive blocks do not wait on each
    // other's FMA latency.
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < blocks; i++, b += 34, x += 32) {
        __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
        __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
        __m512 s = _mm512_mul_ps(q0, _mm512_loadu_ps(x));
        s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + 16), s);
        acc[i & 1] = _mm512_fmadd_ps(_mm512_set1_ps(half_at(b)), s, acc[i & 1]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

// Σ (nibble - offset) * x over one block of 16 bytes: low nibbles are weights 0..15, high
// nibbles 16..31.
__attribute__((target("avx512f")))
static inline __m512 nibble_dot(const uint8_t *qs, const float *x, float offset) {
    __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    __m512 low = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(bytes, _mm512_set1_epi32(0x0F))), _mm512_set1_ps(offset));
    __m512 high = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(bytes, 4)), _mm512_set1_ps(offset));
    __m512 s = _mm512_mul_ps(low, _mm512_loadu_ps(x));
    return _mm512_fmadd_ps(high, _mm512_loadu_ps(x + 16), s);
}

__attribute__((target("avx512f,f16c")))
float mx_dot_q4_0(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < blocks; i++, b += 18, x += 32) {
        acc[i & 1] = _mm512_fmadd_ps(_mm512_set1_ps(half_at(b)), nibble_dot(b + 2, x, 8.0f), acc[i & 1]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

__attribute__((target("avx512f,f16c")))
float mx_dot_q4_1(const void *row, const float *x, int blocks) {
    const uint8_t *b = (const uint8_t *)row;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < blocks; i++, b += 20, x += 32) {
        __m512 sum_x = _mm512_add_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16));
        __m512 scaled = _mm512_mul_ps(_mm512_set1_ps(half_at(b + 2)), sum_x);
        acc[i & 1] = _mm512_add_ps(acc[i & 1], _mm512_fmadd_ps(_mm512_set1_ps(half_at(b)), nibble_dot(b + 4, x, 0.0f), scaled));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

#else

int mx_cpu_has_avx512f(void) { return 0; }
float mx_dot_q8_0(const void *row, const float *x, int blocks) { (void)row; (void)x; (void)blocks; return 0; }
float mx_dot_q4_0(const void *row, const float *x, int blocks) { (void)row; (void)x; (void)blocks; return 0; }
float mx_dot_q4_1(const void *row, const float *x, int blocks) { (void)row; (void)x; (void)blocks; return 0; }

#endif
