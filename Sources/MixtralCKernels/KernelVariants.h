#ifndef MIXTRAL_KERNEL_VARIANTS_H
#define MIXTRAL_KERNEL_VARIANTS_H

// The variants behind mx_kernels (KernelTable.c puts them together). Portable.h defines
// the portable set once per level; the hand-written files add AVX-512 and AVX2 kernels.

#include "MixtralCKernels.h"
#include <math.h>
#include <string.h>

/// The int8 decode kernels (Int8AVX2.c, Int8MatVec.c) read four rows at a time and prefetch
/// at least 8 KB ahead in each row stream, into L2: four streams prefetched into L1 would
/// fill a 32 KB L1 (see MX_PREFETCH in Portable.h). The four rows of a group are one
/// contiguous run, so when they span more than 8 KB (long rows: a down projection's 14336
/// columns), 8 KB ahead of one row lands inside a row of the same group, already being
/// read; the prefetch then reaches the same place in the next group.
enum { MX_INT8_DECODE_ROWS = 4, MX_INT8_PREFETCH_BYTES = 8192 };

static inline size_t mx_int8_prefetch_distance(size_t row_bytes) {
    const size_t group = MX_INT8_DECODE_ROWS * row_bytes;
    return group > MX_INT8_PREFETCH_BYTES ? group : MX_INT8_PREFETCH_BYTES;
}

/// The eight 6-bit sub-block scales and mins of a Q4_K/Q5_K block of 256 (the 12 bytes at
/// `packed`) as bytes, for the AVX2 and AVX-512 decode and pack (kQuantScaleAndMin): bytes 0-3
/// hold scales 0-3 and their top bits are the top bits of scales 4-7; bytes 4-7 the same
/// for the mins; bytes 8-11 the low 4 bits of scales 4-7 (low nibbles) and mins 4-7.
static inline void mx_k_scale_and_min_bytes(const uint8_t *packed, uint64_t *scales, uint64_t *mins) {
    uint32_t w0, w1, w2;
    memcpy(&w0, packed, 4);
    memcpy(&w1, packed + 4, 4);
    memcpy(&w2, packed + 8, 4);
    *scales = (uint64_t)(w0 & 0x3F3F3F3F) | (uint64_t)((w2 & 0x0F0F0F0F) | ((w0 >> 2) & 0x30303030)) << 32;
    *mins = (uint64_t)(w1 & 0x3F3F3F3F) | (uint64_t)(((w2 >> 4) & 0x0F0F0F0F) | ((w1 >> 2) & 0x30303030)) << 32;
}

/// Σ of each 16 signed quants of q, for `chunks` chunks of 16 (the activations' sums per 16
/// that the quantisers hand to the 8-bit products).
static inline void mx_sums_per_16(const int8_t *q, int chunks, int32_t *sums) {
    for (int c = 0; c < chunks; c++) {
        int32_t sum = 0;
        for (int j = 0; j < 16; j++) sum += q[16 * c + j];
        sums[c] = sum;
    }
}

/// The online-softmax steps of ggml_compute_forward_flash_attn_ext_f16_one_chunk for the
/// `count` keys whose scores are scores[(first + p) % 16] (times `scale`): the running
/// maximum M and sum S, and per key the factor of its value (vs) and of the accumulator
/// before it (ms, applied where `rescales` says the maximum grew: ggml_vec_scale_f16).
/// The portable and AVX-512 llama attention then apply them to the fp16 accumulator.
static inline __attribute__((always_inline)) void mx_llama_softmax_steps(const float *scores, int first, int count,
                                                                         float scale, float *M, float *S,
                                                                         float *value_scales,
                                                                         float *accumulator_scales, int *rescales) {
    for (int p = 0; p < count; p++) {
        const float s = scores[(first + p) % 16] * scale;
        float vs = 1.0f, ms = 1.0f;
        rescales[p] = s > *M;
        if (s > *M) {
            const float previous = *M;
            *M = s;
            ms = expf(previous - *M);
        } else {
            vs = expf(s - *M);
        }
        value_scales[p] = vs;
        accumulator_scales[p] = ms;
        *S = fmaf(*S, ms, vs);  // GCC contracts S*ms + vs
    }
}

#define MX_DECLARE_PORTABLE_KERNELS(S) \
    float mx_dot_f32_##S(const float *a, const float *b, int n); \
    float mx_dot_f16_##S(const uint16_t *w, const float *x, int n); \
    void mx_bf16_split_pairs_##S(const float *x, int k, float *out); \
    void mx_bf16_dot_rows_##S(const uint16_t *w, size_t row_stride, const float *x_split, int k, float *y, int rows); \
    void mx_bf16_dot4_tokens_##S(const uint16_t *w, size_t row_stride, const float *x, int tokens, int k, float *y, \
                                 size_t y_stride); \
    float mx_dot_q8_0_##S(const void *row, const float *x, int blocks); \
    float mx_dot_q4_0_##S(const void *row, const float *x, int blocks); \
    float mx_dot_q4_1_##S(const void *row, const float *x, int blocks); \
    void mx_bf16_pack_panel_##S(const uint16_t *w, size_t stride, int rows, int k, uint16_t *panel); \
    void mx_bf16_panel_multiply_##S(const uint16_t *panel, int k, const float *x, int tokens, float *y, \
                                    size_t y_stride, int rows); \
    void mx_f32_panel_multiply_##S(const float *panel, int k, const float *x, int tokens, float *y, size_t y_stride, \
                                   int rows); \
    void mx_q8_quantize_##S(const float *x, int k, int8_t *q, float *d, float *s); \
    void mx_q8k_quantize_##S(const float *x, int k, int8_t *q, float *d, int32_t *sums16); \
    void mx_q8_matmul_##S(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q, \
                          const float *d, const float *s, int tokens, float *y, size_t y_row_stride); \
    void mx_q8k_matvec_##S(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q, \
                           const float *d, const int32_t *sums16, float *y); \
    size_t mx_int8_panel_bytes_##S(int k); \
    void mx_int8_pack_unsigned_groups_##S(const void *w, size_t row_bytes, int type, int rows, int k, void *panel); \
    void mx_int8_pack_panel_##S(const void *w, size_t row_bytes, int type, int rows, int k, void *panel); \
    void mx_int8_quantize_activations_##S(const float *x, int tokens, int padded_tokens, int k, uint8_t *xq, \
                                          float *dx, int32_t *sums16); \
    void mx_int8_gemm_panel_##S(const void *panel, int type, int rows, int k, const uint8_t *xq, const float *dx, \
                                const int32_t *sums16, int tokens, int padded_tokens, float *y, size_t y_row_stride); \
    void mx_attention_block_##S(const float *q, int first_token, int tokens, int first_position, int kv_head, \
                                const float *keys, const float *values, int heads, int kv_heads, int d, int window, \
                                float *out, float *scratch); \
    void mx_silu_multiply_##S(float *gate, const float *up, int n); \
    float mx_llama_dot_f32_##S(const float *x, const float *y, int n); \
    float mx_llama_dot_f32_tinyblas_##S(const float *x, const float *y, int n); \
    void mx_llama_rms_norm_##S(const float *x, const float *w, float eps, int n, float *y); \
    void mx_llama_swiglu_##S(float *gate, const float *up, int n); \
    void mx_llama_softmax_##S(float *x, int n); \
    void mx_llama_rotary_##S(float *x, int heads, int head_dim, const float *cos_t, const float *sin_t); \
    void mx_llama_attention_##S(const float *q, const float *keys, int kv_heads, int kv_head, int d, \
                                const float *values, size_t value_stride, int first_key, int last_key, float scale, \
                                float *out, float *scratch); \
    uint64_t mx_read_memory_##S(const void *memory, size_t bytes, int prefetch);

MX_DECLARE_PORTABLE_KERNELS(generic)

#if defined(__x86_64__)
MX_DECLARE_PORTABLE_KERNELS(avx2)
MX_DECLARE_PORTABLE_KERNELS(avx512)

// Hand-written AVX-512 kernels (BF16Gemm.c, Int8Gemm.c, Int8MatVec.c, LlamaCppOps.c).
void mx_bf16_pack_panel_avx512_transpose(const uint16_t *w, size_t stride, int rows, int k, uint16_t *panel);
void mx_bf16_gemm_panel_avx512bf16(const uint16_t *w, size_t w_row_stride, int rows, int k, const uint16_t *x,
                                   int tokens, int padded_tokens, float *y, size_t y_row_stride, uint16_t *panel);
void mx_q8_quantize_avx512_intrinsics(const float *x, int k, int8_t *q, float *d, float *s);
void mx_q8_matmul_avx512vbmi(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q,
                             const float *d, const float *s, int tokens, float *y, size_t y_row_stride);
void mx_q8k_matvec_avx512_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q, const float *d,
                          const int32_t *sums16, float *y);
size_t mx_int8_panel_bytes_avx512vnni(int k);
void mx_int8_pack_panel_avx512vnni(const void *w, size_t row_bytes, int type, int rows, int k, void *panel);
void mx_int8_quantize_activations_avx512vnni(const float *x, int tokens, int padded_tokens, int k, uint8_t *xq,
                                             float *dx, int32_t *sums16);
void mx_int8_gemm_panel_avx512vnni(const void *panel, int type, int rows, int k, const uint8_t *xq, const float *dx,
                                   const int32_t *sums16, int tokens, int padded_tokens, float *y, size_t y_row_stride);
void mx_llama_swiglu_avx512_intrinsics(float *gate, const float *up, int n);
void mx_llama_softmax_avx512_intrinsics(float *x, int n);
void mx_llama_attention_avx512_intrinsics(const float *q, const float *keys, int kv_heads, int kv_head, int d,
                                          const float *values, size_t value_stride, int first_key, int last_key,
                                          float scale, float *out, float *scratch);

// Hand-written AVX2 kernels (Int8AVX2.c).
void mx_q8_quantize_avx2_intrinsics(const float *x, int k, int8_t *q, float *d, float *s);
void mx_int8_quantize_activations_avx2_intrinsics(const float *x, int tokens, int padded_tokens, int k, uint8_t *xq,
                                                  float *dx, int32_t *sums16);
void mx_q8_matmul_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q,
                                  const float *d, const float *s, int tokens, float *y, size_t y_row_stride);
void mx_q8k_matvec_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k, const int8_t *q,
                                   const float *d, const int32_t *sums16, float *y);
size_t mx_int8_panel_bytes_avx2_intrinsics(int k);
void mx_int8_pack_panel_avx2_intrinsics(const void *w, size_t row_bytes, int type, int rows, int k, void *panel);
void mx_int8_gemm_panel_avx2_intrinsics(const void *panel, int type, int rows, int k, const uint8_t *xq, const float *dx,
                                        const int32_t *sums16, int tokens, int padded_tokens, float *y, size_t y_row_stride);
void mx_int8_pack_unsigned_avx2(const void *w, size_t row_bytes, int type, int rows, int k, void *panel);
enum { MX_AVX2_INT8_PANEL_ROWS = 16, MX_AVX2_INT8_TOKEN_TILE = 4 };
#endif

#endif
