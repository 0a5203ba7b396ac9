#ifndef MIXTRAL_C_KERNELS_H
#define MIXTRAL_C_KERNELS_H

#include <stddef.h>
#include <stdint.h>

// Kernels for instructions Swift cannot emit (AVX512-BF16 vdpbf16ps). Every function has
// a portable Swift equivalent; callers check mx_cpu_has_avx512bf16() first.

/// 1 when the CPU executes AVX512-BF16 (and this file was compiled for x86-64).
int mx_cpu_has_avx512bf16(void);

/// Rows of the bf16 GEMM micro-kernel's weight panel, and its token tile.
enum { MX_BF16_PANEL_ROWS = 32, MX_BF16_TOKEN_TILE = 12 };

/// y[t][r] = sum_k x[t][k] * w[r][k] for r < rows (<= 32) and t < tokens, with bf16
/// weights w (row r at w + r * w_row_stride elements), bf16 activations x [padded_tokens][k]
/// (padded_tokens a multiple of 12, padding rows zero), fp32 products and accumulation.
/// k must be even. `panel` is scratch for 32 * k bf16 values.
void mx_bf16_gemm_panel(const uint16_t *w, size_t w_row_stride, int rows, int k,
                        const uint16_t *x, int tokens, int padded_tokens,
                        float *y, size_t y_row_stride, uint16_t *panel);

/// Packs rows [0, rows) (rows <= 32, missing rows zero) of a bf16 matrix as
/// [k/2][32 rows][2]: one 64-byte load then holds a pair of consecutive k for 16 rows.
/// Register transposes with AVX-512 where available, else element by element.
void mx_bf16_pack_panel(const uint16_t *w, size_t w_row_stride, int rows, int k, uint16_t *panel);

/// 1 when the CPU executes AVX-512F (and this file was compiled for x86-64).
int mx_cpu_has_avx512f(void);

/// Dot products of one GGML block row (`blocks` blocks of 32 weights) with fp32 x, fp32
/// accumulation: Q8_0 Σ d Σ q x; Q4_0 Σ d Σ (q - 8) x; Q4_1 Σ (d Σ q x + m Σ x).
float mx_dot_q8_0(const void *row, const float *x, int blocks);
float mx_dot_q4_0(const void *row, const float *x, int blocks);
float mx_dot_q4_1(const void *row, const float *x, int blocks);

/// 8-bit products for Q8_0/Q4_0 weights (llama.cpp's arithmetic): activations quantised
/// per block of 32 as mx_q8_quantize does, stored as q + 128.
enum { MX_INT8_Q8_0 = 0, MX_INT8_Q4_0 = 1, MX_INT8_Q4_1 = 2, MX_INT8_PANEL_ROWS = 16, MX_INT8_TOKEN_TILE = 8 };
int mx_cpu_has_avx512vnni(void);
/// Bytes of one 16-row panel for rows of k weights (k a multiple of 32).
size_t mx_int8_panel_bytes(int k);
/// Packs rows [0, rows) (rows <= 16; missing rows zero) of a Q8_0 or Q4_0 matrix.
void mx_int8_pack_panel(const void *w, size_t row_bytes, int type, int rows, int k, void *panel);
/// x [tokens][k] -> xu [tokens][k] (q + 128) and dx [tokens][k/32].
void mx_int8_quantize_activations(const float *x, int tokens, int k, uint8_t *xu, float *dx);
/// y[t][r] for r < rows, t < tokens; xu/dx padded to padded_tokens (a multiple of 8) with
/// rows of 128 and scales of 0.
void mx_int8_gemm_panel(const void *panel, int rows, int k, const uint8_t *xu, const float *dx,
                        int tokens, int padded_tokens, float *y, size_t y_row_stride);

/// 1 when the CPU runs mx_q8_matmul (AVX512 F/BW/VNNI and F16C).
int mx_cpu_has_int8_matvec(void);
/// x [k] (k a multiple of 32) quantised like llama.cpp's quantize_row_q8_0 and q8_1: per
/// block of 32, q = round(x * 127 / max|x|), d = fp16(max|x| / 127), s = fp16(d * Σq).
void mx_q8_quantize(const float *x, int k, int8_t *q, float *d, float *s);
/// y[t][r] = Σ_j w[r][j] x[t][j] for `rows` rows of a Q8_0, Q4_0 or Q4_1 matrix (type
/// MX_INT8_Q8_0, MX_INT8_Q4_0 or MX_INT8_Q4_1) and `tokens` activation rows quantised by
/// mx_q8_quantize (q [tokens][k], d and s [tokens][k/32]): llama.cpp's vec_dot_q8_0_q8_0,
/// q4_0_q8_0 and q4_1_q8_1. Weights are read once per group of four rows.
void mx_q8_matmul(const void *w, size_t row_bytes, int type, int rows, int k,
                  const int8_t *q, const float *d, const float *s, int tokens, float *y, size_t y_row_stride);

/// y[r] for `rows` rows of a Q4_K or Q6_K matrix (MX_Q8K_Q4_K / MX_Q8K_Q6_K) and one
/// activation row in llama.cpp's Q8_K form (q [k], d [k/256], sums16 [k/16]), as
/// vec_dot_q4_K_q8_K / vec_dot_q6_K_q8_K compute it. Needs mx_cpu_has_int8_matvec().
enum { MX_Q8K_Q4_K = 0, MX_Q8K_Q6_K = 1 };
void mx_q8k_matvec(const void *w, size_t row_bytes, int type, int rows, int k,
                   const int8_t *q, const float *d, const int32_t *sums16, float *y);

/// y[r] = sum_j w[r][j] * x[j] for four bf16 rows (row r at w + r * row_stride), fp32.
void mx_bf16_dot4(const uint16_t *w, size_t row_stride, const float *x, int k, float *y);
/// x rearranged for mx_bf16_dot_rows: in each block of 32, the 16 even-indexed values,
/// then the 16 odd-indexed ones; a tail of k % 32 values is copied as it is. out [k].
void mx_bf16_split_pairs(const float *x, int k, float *out);
/// y[r] = sum_j w[r][j] * x[j] for `rows` consecutive bf16 rows, one row after the other
/// (one sequential read stream), fp32; x_split from mx_bf16_split_pairs.
void mx_bf16_dot_rows(const uint16_t *w, size_t row_stride, const float *x_split, int k, float *y, int rows);
/// The same for 2 to 4 tokens at once (x [tokens][k]; y[t * y_stride + r]): the weights
/// are read once for all tokens.
void mx_bf16_dot4_tokens(const uint16_t *w, size_t row_stride, const float *x, int tokens, int k, float *y, size_t y_stride);

/// Reads `bytes` (a multiple of 64) of memory and folds them into one value (integer
/// adds); with `prefetch` != 0 a software prefetch runs 8 KB ahead, as the decode kernels
/// read weights. The bandwidth probe's two ways of reading.
uint64_t mx_read_memory(const void *memory, size_t bytes, int prefetch);

// llama.cpp's non-matrix steps, float step for float step (LlamaCppOps.c; see there).
float mx_round_to_half(float x);
float mx_llama_dot_f32(const float *x, const float *y, int n);
float mx_llama_dot_f32_tinyblas(const float *x, const float *y, int n);
void mx_llama_rms_norm(const float *x, const float *w, float eps, int n, float *y);
void mx_llama_swiglu(float *gate, const float *up, int n);
void mx_llama_softmax(float *x, int n);
void mx_llama_rope_table(int position, float base, int dims, float *cos_out, float *sin_out);
void mx_llama_rotary(float *x, int heads, int head_dim, const float *cos_t, const float *sin_t);
/// scratch: 2 * d floats.
void mx_llama_attention(const float *q, const float *keys, int kv_heads, int kv_head, int d,
                        const float *values, size_t value_stride, int first_key, int last_key,
                        float scale, float *out, float *scratch);

/// glibc: serve allocations up to 256 MB from the heap and keep freed memory (no
/// mmap/munmap and page zeroing for every large temporary buffer). No-op elsewhere.
void mx_keep_freed_memory_for_reuse(void);

#endif
