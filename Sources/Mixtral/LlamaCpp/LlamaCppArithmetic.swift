import Foundation
import MixtralKernels

/// The steps between matrix products: transformers' fp32 arithmetic under `.exact`, and
/// llama.cpp's CPU arithmetic under `.fast` (`LlamaCppKernels`): RMSNorm summed in double,
/// RoPE angles by repeated multiplication, K and V rounded to fp16 (its default KV cache),
/// flash attention with an fp16 Q and an fp16 value accumulator, the router's dot products
/// and softmax, and SwiGLU with ggml's vector exp. With the 8-bit products that follow
/// ggml's vec_dot, a decode step on a Q8_0 or Q4_1 GGUF file then gives llama.cpp's logits
/// bit for bit.
extension LanguageModel {
    var followsLlamaCpp: Bool { precision == .fast }

    /// RMSNorm of one row (x * rsqrt(mean(x^2) + eps) * weight).
    func normalizeRow(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        if followsLlamaCpp {
            LlamaCppKernels.rmsNorm(x, weight, eps: config.rmsNormEps, count: config.hiddenSize, y, kernels: pool.kernels)
        } else {
            rmsNorm(x, weight, eps: config.rmsNormEps, count: config.hiddenSize, y, kernels: pool.kernels)
        }
    }

    /// Plain RoPE follows llama.cpp's angle recurrence; scaled variants keep transformers'
    /// tables.
    var ropeFollowsLlamaCpp: Bool { followsLlamaCpp && config.ropeScaling == .none }

    /// cos and sin tables [positions, headDim/2].
    func ropeTables(positions: Range<Int>) -> (cos: [Float], sin: [Float]) {
        let half = config.headDim / 2
        var cosTable = [Float](repeating: 0, count: positions.count * half)
        var sinTable = cosTable
        for (row, position) in positions.enumerated() {
            if ropeFollowsLlamaCpp {
                cosTable.withUnsafeMutableBufferPointer { c in
                    sinTable.withUnsafeMutableBufferPointer { s in
                        LlamaCppKernels.ropeTable(position: position, base: config.ropeTheta, headDim: config.headDim,
                                                  cos: c.baseAddress! + row * half, sin: s.baseAddress! + row * half)
                    }
                }
            } else {
                for i in 0..<half {
                    let angle = Float(position) * inverseFrequencies[i]
                    cosTable[row * half + i] = Foundation.cos(angle)
                    sinTable[row * half + i] = Foundation.sin(angle)
                }
            }
        }
        return (cosTable, sinTable)
    }

    /// RoPE on `heads` heads of one row with one position's tables.
    func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        if ropeFollowsLlamaCpp {
            LlamaCppKernels.rotary(x, heads: heads, headDim: config.headDim, cos: cos, sin: sin, kernels: pool.kernels)
        } else {
            applyRotary(x, heads: heads, headDim: config.headDim, cos: cos, sin: sin)
        }
    }

    /// Stores `count` rows of keys and values for positions first..< first+count, as fp16
    /// values under llama.cpp's arithmetic (its default F16 cache).
    func storeKeysValues(_ k: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, count: Int, first: Int,
                         cache: KVCache, layer: Int) {
        let c = config
        let width = c.numKeyValueHeads * c.headDim
        if followsLlamaCpp {
            for i in 0..<(count * width) {
                k[i] = LlamaCppKernels.roundToHalf(k[i])
                v[i] = LlamaCppKernels.roundToHalf(v[i])
            }
        }
        KeyLayout.store(k, count: count, first: first, kvHeads: c.numKeyValueHeads, headDim: c.headDim, into: cache.keys[layer].pointer)
        (cache.values[layer].pointer + first * width).update(from: v, count: count * width)
    }

    /// llama.cpp runs its one-chunk flash attention (what `LlamaCppKernels.attention`
    /// reproduces) only for fewer than 64 query rows and a KV view under 512 cells; its
    /// view is padded to 256, so that is up to 256 positions. Past that it splits the keys
    /// over threads (decode) or tiles the queries (prompts), and our vectorised kernel on
    /// the same fp16 cache is used instead (the one-chunk kernel's scalar exp per key makes
    /// long contexts slow).
    static let llamaCppOneChunkPositions = 256

    /// Causal attention of `tokens` query rows at firstPosition... over a layer's cache.
    func attend(_ q: UnsafePointer<Float>, tokens: Int, firstPosition: Int, cache: KVCache, layer: Int,
                _ out: UnsafeMutablePointer<Float>) {
        let c = config
        let shape = AttentionShape(heads: c.numHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, slidingWindow: c.slidingWindow)
        let keys = cache.keys[layer].pointer, values = cache.values[layer].pointer
        if followsLlamaCpp && tokens < 64 && firstPosition + tokens <= Self.llamaCppOneChunkPositions {
            LlamaCppKernels.attention(q, tokens: tokens, firstPosition: firstPosition, keys: keys, values: values,
                                      shape: shape, out, pool: pool)
        } else {
            attention(q, tokens: tokens, firstPosition: firstPosition, keys: keys, values: values, shape: shape, out, pool: pool)
        }
    }

    /// silu(gate) * up into gate.
    func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        if followsLlamaCpp {
            LlamaCppKernels.swiGLU(gate, up, count: count, kernels: pool.kernels)
        } else {
            siluMultiply(gate, up, count: count, kernels: pool.kernels)
        }
    }

    /// Router logits [tokens, experts]. llama.cpp keeps the router in F32 and multiplies it
    /// with ggml_vec_dot_f32 for one token and with tinyBLAS for more.
    func routerLogits(_ router: WeightMatrix, input: UnsafePointer<Float>, tokens t: Int, into out: UnsafeMutablePointer<Float>) {
        let k = router.columns
        guard followsLlamaCpp, router.type == .f32 else {
            linear(input, tokens: t, router, out, pool: pool)
            return
        }
        for token in 0..<t {
            for expert in 0..<router.rows {
                out[token * router.rows + expert] = LlamaCppKernels.dot(
                    router.row(expert).assumingMemoryBound(to: Float.self), input + token * k, count: k,
                    tinyBLAS: t >= 2 && k % 16 == 0, kernels: pool.kernels)
            }
        }
    }

    /// Softmax of one token's router logits, in place.
    func routerSoftmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        if followsLlamaCpp {
            LlamaCppKernels.softmax(x, count: count, kernels: pool.kernels)
        } else {
            softmax(x, count: count)
        }
    }
}
