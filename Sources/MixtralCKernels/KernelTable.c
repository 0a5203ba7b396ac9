#include "KernelVariants.h"

// The one place that decides which kernel runs on which CPU: the portable set of the
// level (Portable.h compiled for it), then the hand-written kernels whose instructions the
// CPU has (as ggml-cpu scores its backend variants by the features found).

#define MX_FILL_PORTABLE(t, S) \
    do { \
        t.dot_f32 = mx_dot_f32_##S; \
        t.dot_f16 = mx_dot_f16_##S; \
        t.bf16_split_pairs = mx_bf16_split_pairs_##S; \
        t.bf16_dot_rows = mx_bf16_dot_rows_##S; \
        t.bf16_dot4_tokens = mx_bf16_dot4_tokens_##S; \
        t.dot_q8_0 = mx_dot_q8_0_##S; \
        t.dot_q4_0 = mx_dot_q4_0_##S; \
        t.dot_q4_1 = mx_dot_q4_1_##S; \
        t.bf16_pack_panel = mx_bf16_pack_panel_##S; \
        t.bf16_panel_multiply = mx_bf16_panel_multiply_##S; \
        t.f32_panel_multiply = mx_f32_panel_multiply_##S; \
        t.bf16_gemm_panel = NULL; \
        t.q8_quantize = mx_q8_quantize_##S; \
        t.q8k_quantize = mx_q8k_quantize_##S; \
        t.q8_matmul = mx_q8_matmul_##S; \
        t.q8k_matvec = mx_q8k_matvec_##S; \
        t.int8_panel_rows = 16; \
        t.int8_token_tile = 8; \
        t.int8_panel_bytes = mx_int8_panel_bytes_##S; \
        t.int8_pack_panel = mx_int8_pack_panel_##S; \
        t.int8_quantize_activations = mx_int8_quantize_activations_##S; \
        t.int8_gemm_panel = mx_int8_gemm_panel_##S; \
        t.attention_block = mx_attention_block_##S; \
        t.silu_multiply = mx_silu_multiply_##S; \
        t.llama_dot_f32 = mx_llama_dot_f32_##S; \
        t.llama_dot_f32_tinyblas = mx_llama_dot_f32_tinyblas_##S; \
        t.llama_rms_norm = mx_llama_rms_norm_##S; \
        t.llama_swiglu = mx_llama_swiglu_##S; \
        t.llama_softmax = mx_llama_softmax_##S; \
        t.llama_rotary = mx_llama_rotary_##S; \
        t.llama_attention = mx_llama_attention_##S; \
        t.read_memory = mx_read_memory_##S; \
    } while (0)

#if defined(__x86_64__)
/// The AVX2 8-bit kernels (also the AVX-512 level's where there is no AVX512-VNNI).
static void use_avx2_int8(mx_kernels *t) {
    t->q8_matmul = mx_q8_matmul_avx2_intrinsics;
    t->q8k_matvec = mx_q8k_matvec_avx2_intrinsics;
    t->int8_panel_rows = MX_AVX2_INT8_PANEL_ROWS;
    t->int8_token_tile = MX_AVX2_INT8_TOKEN_TILE;
    t->int8_panel_bytes = mx_int8_panel_bytes_avx2_intrinsics;
    t->int8_pack_panel = mx_int8_pack_panel_avx2_intrinsics;
    t->int8_quantize_activations = mx_int8_quantize_activations_avx2_intrinsics;  // signed bytes, as the portable quantiser
    t->int8_gemm_panel = mx_int8_gemm_panel_avx2_intrinsics;
}
#endif

mx_kernels mx_kernels_for_level(int level, const mx_cpu_info *info) {
    if (level > info->level) level = info->level;
    if (level < MX_LEVEL_GENERIC) level = MX_LEVEL_GENERIC;
    mx_kernels t;
    MX_FILL_PORTABLE(t, generic);
    t.level = MX_LEVEL_GENERIC;
#if defined(__x86_64__)
    if (level == MX_LEVEL_AVX2) {
        MX_FILL_PORTABLE(t, avx2);
        use_avx2_int8(&t);
        t.q8_quantize = mx_q8_quantize_avx2_intrinsics;
        t.level = MX_LEVEL_AVX2;
    } else if (level == MX_LEVEL_AVX512) {
        const uint32_t f = info->features;
        MX_FILL_PORTABLE(t, avx512);
        // Decode rows read weights at memory speed with 256-bit vectors; the 512-bit builds
        // of the same kernels (the same bits) measured slower on a CPU that executes
        // 512-bit operations in two halves (AMD Zen 4), and no faster elsewhere is needed.
        t.dot_f16 = mx_dot_f16_avx2;
        t.bf16_dot_rows = mx_bf16_dot_rows_avx2;
        t.bf16_dot4_tokens = mx_bf16_dot4_tokens_avx2;
        t.dot_q8_0 = mx_dot_q8_0_avx2;
        t.dot_q4_0 = mx_dot_q4_0_avx2;
        t.dot_q4_1 = mx_dot_q4_1_avx2;
        t.q8_matmul = mx_q8_matmul_avx2_intrinsics;
        t.bf16_pack_panel = mx_bf16_pack_panel_avx512_transpose;
        t.q8_quantize = mx_q8_quantize_avx512_intrinsics;
        t.q8k_matvec = mx_q8k_matvec_avx512_intrinsics;
        if (f & MX_CPU_AVX512VBMI) t.q8_matmul = mx_q8_matmul_avx512vbmi;  // its own Q4_0 kernel
        if (f & MX_CPU_AVX512VNNI) {
            t.int8_panel_rows = 16;
            t.int8_token_tile = 8;
            t.int8_panel_bytes = mx_int8_panel_bytes_avx512vnni;
            t.int8_pack_panel = mx_int8_pack_panel_avx512vnni;
            t.int8_quantize_activations = mx_int8_quantize_activations_avx512vnni;
            t.int8_gemm_panel = mx_int8_gemm_panel_avx512vnni;
        } else {
            use_avx2_int8(&t);
            t.q8k_matvec = mx_q8k_matvec_avx512_intrinsics;
        }
        if (f & MX_CPU_AVX512BF16) t.bf16_gemm_panel = mx_bf16_gemm_panel_avx512bf16;
        t.llama_swiglu = mx_llama_swiglu_avx512_intrinsics;
        t.llama_softmax = mx_llama_softmax_avx512_intrinsics;
        t.llama_attention = mx_llama_attention_avx512_intrinsics;
        t.level = MX_LEVEL_AVX512;
    }
#endif
    return t;
}

size_t mx_attention_scratch_floats(int tokens, int heads, int kv_heads, int d) {
    // queries and outputs [rows][d], scores [rows][64], running max and sum per row.
    const size_t rows = (size_t)tokens * (size_t)(heads / (kv_heads > 0 ? kv_heads : 1));
    return 2 * rows * (size_t)d + rows * 64 + 2 * rows;
}
