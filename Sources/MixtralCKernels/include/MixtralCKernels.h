#ifndef MIXTRAL_C_KERNELS_H
#define MIXTRAL_C_KERNELS_H

#include <stddef.h>
#include <stdint.h>

// The compute kernels, reached only through one table per CPU level.
//
// The CPU is probed once (mx_cpu_detect: cpuid, and XCR0 for the state the OS saves); a
// level is chosen from it (generic, AVX2 + FMA + F16C, AVX-512 F/BW/DQ/VL), and
// mx_kernels_for_level fills a table of function pointers for that level and the
// extensions found (AVX512-VNNI, -BF16, -VBMI). No kernel checks the CPU itself, and no
// function compiled for an instruction set is reachable except through a table whose
// level the CPU has. Every level is complete: a kernel without a hand-written version for
// a level is the portable source (Portable.h) compiled for that level's instructions.

#if defined(__clang__)
#define MX_NONNULL _Nonnull
#define MX_NULLABLE _Nullable
#else
#define MX_NONNULL
#define MX_NULLABLE
#endif

// MARK: - CPU

enum {
    MX_LEVEL_GENERIC = 0,  // any CPU (x86-64 baseline SSE2, or aarch64)
    MX_LEVEL_AVX2 = 1,     // AVX, AVX2, FMA, F16C (Haswell, AMD Zen 1 and later)
    MX_LEVEL_AVX512 = 2,   // AVX2 level + AVX-512 F, BW, DQ, VL (Skylake-X, AMD Zen 4 and later)
};

/// Feature bits of mx_cpu_info.features: each set only when the CPU has the instructions
/// and the OS saves their registers.
enum {
    MX_CPU_SSE42 = 1 << 0,
    MX_CPU_AVX = 1 << 1,
    MX_CPU_AVX2 = 1 << 2,
    MX_CPU_FMA = 1 << 3,
    MX_CPU_F16C = 1 << 4,
    MX_CPU_BMI2 = 1 << 5,
    MX_CPU_AVX_VNNI = 1 << 6,
    MX_CPU_AVX512F = 1 << 7,
    MX_CPU_AVX512BW = 1 << 8,
    MX_CPU_AVX512DQ = 1 << 9,
    MX_CPU_AVX512VL = 1 << 10,
    MX_CPU_AVX512VNNI = 1 << 11,
    MX_CPU_AVX512BF16 = 1 << 12,
    MX_CPU_AVX512VBMI = 1 << 13,
    MX_CPU_NEON = 1 << 14,
};

typedef struct mx_cpu_info {
    /// MX_CPU_* bits.
    uint32_t features;
    /// The highest level the features allow (MX_LEVEL_*).
    int level;
    /// The CPU's brand string (cpuid 0x80000002-4), or "" where there is none.
    char brand[49];
} mx_cpu_info;

/// Probes the CPU this process runs on.
void mx_cpu_detect(mx_cpu_info *MX_NONNULL info);

// MARK: - Kernel table

/// GGML block types of the 8-bit kernels.
/// (The K-quants are panel types only: their rows go through q8k_matvec.)
enum { MX_INT8_Q8_0 = 0, MX_INT8_Q4_0 = 1, MX_INT8_Q4_1 = 2, MX_INT8_Q4_K = 3, MX_INT8_Q5_K = 4, MX_INT8_Q6_K = 5 };
enum { MX_Q8K_Q4_K = 0, MX_Q8K_Q5_K = 1, MX_Q8K_Q6_K = 2 };
/// Rows of a bf16 panel, and the token tile of the AVX512-BF16 product.
enum { MX_BF16_PANEL_ROWS = 32, MX_BF16_TOKEN_TILE = 12 };
/// Rows of an fp32 panel (mx_kernels.f32_panel_multiply).
enum { MX_F32_PANEL_ROWS = 32 };

typedef struct mx_kernels {
    /// The level these kernels were chosen for (MX_LEVEL_*).
    int level;

    // --- One token against float weights (decode), fp32 activations and accumulation ---

    /// Σ a[i] b[i].
    float (*MX_NONNULL dot_f32)(const float *MX_NONNULL a, const float *MX_NONNULL b, int n);
    /// Σ w[i] x[i] with IEEE half weights.
    float (*MX_NONNULL dot_f16)(const uint16_t *MX_NONNULL w, const float *MX_NONNULL x, int n);
    /// x rearranged for bf16_dot_rows: in each block of 32, the 16 even-indexed values,
    /// then the 16 odd-indexed ones; a tail of k % 32 values is copied as it is. out [k].
    void (*MX_NONNULL bf16_split_pairs)(const float *MX_NONNULL x, int k, float *MX_NONNULL out);
    /// y[r] = Σ_j w[r][j] x[j] for `rows` consecutive bf16 rows (row r at w + r * row_stride),
    /// read one row after the other with a software prefetch ahead; x_split from
    /// bf16_split_pairs.
    void (*MX_NONNULL bf16_dot_rows)(const uint16_t *MX_NONNULL w, size_t row_stride, const float *MX_NONNULL x_split,
                                     int k, float *MX_NONNULL y, int rows);
    /// Four bf16 rows times 1 to 4 tokens (x [tokens][k], y[t * y_stride + r]): each weight
    /// is read once for all tokens (an expert's share of a batched decode step).
    void (*MX_NONNULL bf16_dot4_tokens)(const uint16_t *MX_NONNULL w, size_t row_stride, const float *MX_NONNULL x,
                                        int tokens, int k, float *MX_NONNULL y, size_t y_stride);
    /// One row of `blocks` GGML blocks of 32 dotted with fp32 x: Q8_0 Σ d Σ q x; Q4_0
    /// Σ d Σ (q - 8) x; Q4_1 Σ (d Σ q x + m Σ x).
    float (*MX_NONNULL dot_q8_0)(const void *MX_NONNULL row, const float *MX_NONNULL x, int blocks);
    float (*MX_NONNULL dot_q4_0)(const void *MX_NONNULL row, const float *MX_NONNULL x, int blocks);
    float (*MX_NONNULL dot_q4_1)(const void *MX_NONNULL row, const float *MX_NONNULL x, int blocks);

    // --- Many tokens (prefill): weight panels reused for all tokens ---

    /// Packs rows [0, rows) (rows <= 32, missing rows zero) of a bf16 matrix as
    /// [k/2][32 rows][2]: a 32-bit word holds the pair (2i, 2i+1) of one row. k even.
    void (*MX_NONNULL bf16_pack_panel)(const uint16_t *MX_NONNULL w, size_t w_row_stride, int rows, int k,
                                       uint16_t *MX_NONNULL panel);
    /// y[t * y_stride + r] = Σ_j w[r][j] x[t][j] for r < rows (<= 32), t < tokens, from a
    /// packed bf16 panel and fp32 activations x [tokens][k].
    void (*MX_NONNULL bf16_panel_multiply)(const uint16_t *MX_NONNULL panel, int k, const float *MX_NONNULL x,
                                           int tokens, float *MX_NONNULL y, size_t y_stride, int rows);
    /// The same from an fp32 panel laid out [k][32 rows].
    void (*MX_NONNULL f32_panel_multiply)(const float *MX_NONNULL panel, int k, const float *MX_NONNULL x, int tokens,
                                          float *MX_NONNULL y, size_t y_stride, int rows);
    /// With AVX512-BF16 only (NULL elsewhere): the product of a packed panel (`panel`,
    /// rows <= 32, packed here from w) with bf16 activations x [padded_tokens][k]
    /// (padded_tokens a multiple of MX_BF16_TOKEN_TILE, padding rows zero), fp32 sums.
    void (*MX_NULLABLE bf16_gemm_panel)(const uint16_t *MX_NONNULL w, size_t w_row_stride, int rows, int k,
                                        const uint16_t *MX_NONNULL x, int tokens, int padded_tokens,
                                        float *MX_NONNULL y, size_t y_row_stride, uint16_t *MX_NONNULL panel);

    // --- 8-bit activations (llama.cpp's arithmetic for quantised weights) ---

    /// x [k] (k a multiple of 32) quantised as llama.cpp's quantize_row_q8_0 and q8_1: per
    /// block of 32, q = round(x * 127 / max|x|), d = fp16(max|x| / 127), s = fp16(d * Σq).
    void (*MX_NONNULL q8_quantize)(const float *MX_NONNULL x, int k, int8_t *MX_NONNULL q, float *MX_NONNULL d,
                                   float *MX_NONNULL s);
    /// y[t][r] for `rows` rows of a Q8_0, Q4_0 or Q4_1 matrix (MX_INT8_*) and `tokens`
    /// activation rows from q8_quantize (q [tokens][k], d and s [tokens][k/32]), as
    /// llama.cpp's vec_dot_q8_0_q8_0, q4_0_q8_0 and q4_1_q8_1.
    void (*MX_NONNULL q8_matmul)(const void *MX_NONNULL w, size_t row_bytes, int type, int rows, int k,
                                 const int8_t *MX_NONNULL q, const float *MX_NONNULL d, const float *MX_NONNULL s,
                                 int tokens, float *MX_NONNULL y, size_t y_row_stride);
    /// x [k] (k a multiple of 256) as llama.cpp's block_q8_K (quantize_row_q8_K_ref): per
    /// 256, d = m / -127 for the element m of largest magnitude, q = min(127, round(x * -127 / m)),
    /// and the sums of each 16 quants (sums16 [k/16]). A block of zeros (or with a maximum that
    /// is not finite) gives d = 0 and q = 0.
    void (*MX_NONNULL q8k_quantize)(const float *MX_NONNULL x, int k, int8_t *MX_NONNULL q, float *MX_NONNULL d,
                                    int32_t *MX_NONNULL sums16);
    /// y[r] for `rows` rows of a Q4_K, Q5_K or Q6_K matrix (MX_Q8K_*) and one activation row
    /// in llama.cpp's Q8_K form (q [k], d [k/256], sums16 [k/16]), as vec_dot_q*_K_q8_K.
    void (*MX_NONNULL q8k_matvec)(const void *MX_NONNULL w, size_t row_bytes, int type, int rows, int k,
                                  const int8_t *MX_NONNULL q, const float *MX_NONNULL d,
                                  const int32_t *MX_NONNULL sums16, float *MX_NONNULL y);
    /// Panels of 8-bit products for many tokens (MX_INT8_* weights): `int8_panel_rows`
    /// weight rows are unpacked once (int8_pack_panel, int8_panel_bytes(k) bytes, any
    /// type) and multiplied with all tokens `int8_token_tile` at a time. Activations are
    /// quantised per block of 32 as q8_quantize does, in the layout of this level
    /// (int8_quantize_activations: xq [padded_tokens][k] bytes, dx [padded_tokens][k/32],
    /// sums16 [padded_tokens][k/16] the sums of each 16 signed quants, which every panel
    /// reads instead of summing again; padding rows zero). Q8_0 and Q4_0 weights are signed
    /// integers times a scale; Q4_1, Q4_K and Q5_K are unsigned integers u with a scale s
    /// and an offset o per 32 weights (w = s u + o), so a block adds fma(Σ u q, s d_x) then
    /// fma(o d_x, Σ q); Q6_K's are u - 32 with a scale per 16, so a block adds
    /// fma(Σ (u - 32) q, s d_x) per half.
    int int8_panel_rows, int8_token_tile;
    size_t (*MX_NONNULL int8_panel_bytes)(int k);
    void (*MX_NONNULL int8_pack_panel)(const void *MX_NONNULL w, size_t row_bytes, int type, int rows, int k,
                                       void *MX_NONNULL panel);
    void (*MX_NONNULL int8_quantize_activations)(const float *MX_NONNULL x, int tokens, int padded_tokens, int k,
                                                 uint8_t *MX_NONNULL xq, float *MX_NONNULL dx,
                                                 int32_t *MX_NONNULL sums16);
    void (*MX_NONNULL int8_gemm_panel)(const void *MX_NONNULL panel, int type, int rows, int k, const uint8_t *MX_NONNULL xq,
                                       const float *MX_NONNULL dx, const int32_t *MX_NONNULL sums16, int tokens,
                                       int padded_tokens, float *MX_NONNULL y, size_t y_row_stride);

    // --- Attention and activations (transformers' fp32 arithmetic) ---

    /// Causal attention of one kv head's query heads for `tokens` query tokens starting at
    /// first_token (positions first_position + first_token ...): q [tokens][heads * d],
    /// keys in blocks of 16 positions ([block][kv_heads][d][16]), values
    /// [positions][kv_heads * d]; window 0 for none. Scores scaled by d^-0.5, online
    /// softmax over tiles of 64 keys. scratch: mx_attention_scratch_floats(...) floats.
    void (*MX_NONNULL attention_block)(const float *MX_NONNULL q, int first_token, int tokens, int first_position,
                                       int kv_head, const float *MX_NONNULL keys, const float *MX_NONNULL values,
                                       int heads, int kv_heads, int d, int window, float *MX_NONNULL out,
                                       float *MX_NONNULL scratch);
    /// gate[i] = silu(gate[i]) * up[i] with a vector exp (about 1 ulp from expf).
    void (*MX_NONNULL silu_multiply)(float *MX_NONNULL gate, const float *MX_NONNULL up, int n);

    // --- llama.cpp's steps between products (`--precision fast`), float step for float step ---

    float (*MX_NONNULL llama_dot_f32)(const float *MX_NONNULL x, const float *MX_NONNULL y, int n);
    float (*MX_NONNULL llama_dot_f32_tinyblas)(const float *MX_NONNULL x, const float *MX_NONNULL y, int n);
    void (*MX_NONNULL llama_rms_norm)(const float *MX_NONNULL x, const float *MX_NONNULL w, float eps, int n,
                                      float *MX_NONNULL y);
    void (*MX_NONNULL llama_swiglu)(float *MX_NONNULL gate, const float *MX_NONNULL up, int n);
    void (*MX_NONNULL llama_softmax)(float *MX_NONNULL x, int n);
    void (*MX_NONNULL llama_rotary)(float *MX_NONNULL x, int heads, int head_dim, const float *MX_NONNULL cos_t,
                                    const float *MX_NONNULL sin_t);
    /// scratch: 2 * d floats.
    void (*MX_NONNULL llama_attention)(const float *MX_NONNULL q, const float *MX_NONNULL keys, int kv_heads,
                                       int kv_head, int d, const float *MX_NONNULL values, size_t value_stride,
                                       int first_key, int last_key, float scale, float *MX_NONNULL out,
                                       float *MX_NONNULL scratch);

    // --- Memory ---

    /// Reads `bytes` (a multiple of 64) of memory and folds them into one value (integer
    /// adds); with `prefetch` != 0 a software prefetch runs 8 KB ahead, as the decode
    /// kernels read weights. The bandwidth probe's two ways of reading.
    uint64_t (*MX_NONNULL read_memory)(const void *MX_NONNULL memory, size_t bytes, int prefetch);
} mx_kernels;

/// The kernels for `level` (clamped to what `info` allows) and the extensions in `info`.
mx_kernels mx_kernels_for_level(int level, const mx_cpu_info *MX_NONNULL info);

/// Floats of scratch one attention_block call needs.
size_t mx_attention_scratch_floats(int tokens, int heads, int kv_heads, int d);

// MARK: - Portable helpers (the same on every CPU)

/// fp32 -> fp16 -> fp32, round to nearest even (llama.cpp's F16 KV cache values).
float mx_round_to_half(float x);
/// cos and sin of one position's RoPE angles as ggml_rope_cache_init computes them.
void mx_llama_rope_table(int position, float base, int dims, float *MX_NONNULL cos_out, float *MX_NONNULL sin_out);
/// glibc: serve allocations up to 256 MB from the heap and keep freed memory (no
/// mmap/munmap and page zeroing for every large temporary buffer). No-op elsewhere.
void mx_keep_freed_memory_for_reuse(void);
/// Opens a file read-only for reads that bypass the page cache (Linux O_DIRECT, macOS
/// F_NOCACHE), for expert streaming: the cache of experts is ours, sized to the budget.
/// Where the file system refuses O_DIRECT the file is opened normally and *direct is 0.
/// Returns the descriptor, or -1 with errno set.
int mx_open_uncached(const char *MX_NONNULL path, int *MX_NONNULL direct);

#endif
