import MixtralCKernels

/// llama.cpp's CPU arithmetic for the steps between matrix products, float step for float
/// step (Portable.h and LlamaCppOps.c name the ggml routine each follows). `--precision
/// fast` uses them so that, with the 8-bit products that follow ggml's vec_dot, a forward
/// pass gives llama.cpp's logits. They give the same bits at every CPU level.
public enum LlamaCppKernels {
    /// fp32 -> fp16 -> fp32, round to nearest even (the F16 KV cache's values).
    @inline(__always) public static func roundToHalf(_ x: Float) -> Float { mx_round_to_half(x) }

    /// ggml_vec_dot_f32 (one token) or tinyBLAS (llamafile_sgemm, two or more tokens).
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int, tinyBLAS: Bool,
                           kernels: KernelTable) -> Float {
        tinyBLAS ? kernels.functions.llama_dot_f32_tinyblas(x, y, Int32(count)) : kernels.functions.llama_dot_f32(x, y, Int32(count))
    }

    /// RMSNorm with the squares summed in double (ggml_compute_forward_rms_norm_f32).
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, eps: Float, count: Int,
                               _ y: UnsafeMutablePointer<Float>, kernels: KernelTable) {
        kernels.functions.llama_rms_norm(x, weight, eps, Int32(count), y)
    }

    /// silu(gate) * up into gate with ggml's vector exp (ggml_vec_swiglu_f32).
    public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int,
                              kernels: KernelTable) {
        kernels.functions.llama_swiglu(gate, up, Int32(count))
    }

    /// Softmax in place, summed in double (ggml_compute_forward_soft_max_f32).
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int, kernels: KernelTable) {
        kernels.functions.llama_softmax(x, Int32(count))
    }

    /// cos and sin of one position's RoPE angles, theta multiplied by base^(-2/d) per pair
    /// (ggml_rope_cache_init).
    public static func ropeTable(position: Int, base: Float, headDim: Int, cos: UnsafeMutablePointer<Float>,
                                 sin: UnsafeMutablePointer<Float>) {
        mx_llama_rope_table(Int32(position), base, Int32(headDim), cos, sin)
    }

    /// RoPE on `heads` heads of one row, rotate_half pairs, as GCC compiles ggml's rotate_pairs.
    public static func rotary(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, cos: UnsafePointer<Float>,
                              sin: UnsafePointer<Float>, kernels: KernelTable) {
        kernels.functions.llama_rotary(x, Int32(heads), Int32(headDim), cos, sin)
    }

    /// Causal attention as `attention` (same layouts), computed as llama.cpp's flash
    /// attention over an F16 cache (ggml_compute_forward_flash_attn_ext_f16_one_chunk): the
    /// cached keys and values must already be fp16 values. One (token, head) pair per part.
    public static func attention(_ q: UnsafePointer<Float>, tokens: Int, firstPosition: Int,
                                 keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                                 shape: AttentionShape, _ out: UnsafeMutablePointer<Float>, pool: ComputePool) {
        let d = shape.headDim, group = shape.heads / shape.kvHeads
        let qStride = shape.heads * d, kvStride = shape.kvHeads * d
        let scale = 1 / Float(d).squareRoot()
        let kernels = pool.kernels.functions
        pool.run(parts: tokens * shape.heads) { part in
            let token = part / shape.heads, head = part % shape.heads, kvHead = head / group
            let position = firstPosition + token
            let lowest = shape.slidingWindow.map { max(0, position - $0 + 1) } ?? 0
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * d) { scratch in
                guard let scratch = scratch.baseAddress else { return }
                kernels.llama_attention(q + token * qStride + head * d, keys, Int32(shape.kvHeads), Int32(kvHead), Int32(d),
                                        values + kvHead * d, kvStride, Int32(lowest), Int32(position), scale,
                                        out + token * qStride + head * d, scratch)
            }
        }
    }
}
