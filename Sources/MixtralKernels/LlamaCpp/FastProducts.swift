import MixtralCKernels

// Which kernel each matrix product takes under `.fast` (llama.cpp's arithmetic): the token
// counts at which llama.cpp itself changes kernels, so that short prompts and generation
// give its logits (see Documentation/Accuracy.md). `.exact` never reads these.

/// The kernel a job runs on under `.fast`.
enum FastKernel {
    case bf16Activations, int8Panels, int8Rows, kQuantRows, fp32
}

/// Up to this many tokens, 8-bit products read each group of four weight rows once and
/// multiply it with every token (the table's `q8_matmul`); more tokens pack panels first.
let int8RowsMaxTokens = 4

/// Q8_0 and Q4_1 products follow ggml's vec_dot bit for bit in the four-row kernel, and
/// llama.cpp multiplies a prompt's tokens in that arithmetic too (tinyBLAS for Q8_0, which
/// sums in the same order; vec_dot for Q4_1). Prompts up to this many tokens take the
/// four-row kernel so that they give llama.cpp's logits (up to 16 tokens it was also
/// measured faster than panels; at 32 the panels win).
let llamaCppRowsMaxTokens = 16

func fastKernel(for job: LinearJob) -> FastKernel {
    switch job.w.type {
    case .bf16 where job.tokens > bf16RowsMaxTokens && job.w.columns % 2 == 0:
        return .bf16Activations
    case .q8_0, .q4_0:
        let rowsMaxTokens = job.w.type == .q8_0 ? llamaCppRowsMaxTokens : int8RowsMaxTokens
        return job.tokens <= rowsMaxTokens ? .int8Rows : .int8Panels
    case .q4_1:
        return job.tokens <= llamaCppRowsMaxTokens ? .int8Rows : .int8Panels
    case .q4_K, .q5_K, .q6_K:
        guard job.w.columns % 256 == 0 else { return .fp32 }
        return job.tokens <= int8RowsMaxTokens ? .kQuantRows : .int8Panels
    default:
        return .fp32
    }
}
