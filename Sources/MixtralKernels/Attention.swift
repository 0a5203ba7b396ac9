import Foundation
import MixtralCKernels

/// Rotary position embedding, half-split layout (transformers' `rotate_half`):
/// for i < d/2, (x[i], x[i+d/2]) is rotated by angle position * invFreq[i].
/// `cos`/`sin` hold the d/2 values for one position.
public func applyRotary(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let half = headDim / 2
    for h in 0..<heads {
        let v = x + h * headDim
        for i in 0..<half {
            let a = v[i], b = v[i + half]
            v[i] = a * cos[i] - b * sin[i]
            v[i + half] = b * cos[i] + a * sin[i]
        }
    }
}

/// Geometry of grouped-query attention over a key/value cache.
public struct AttentionShape: Sendable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    /// Keys a query at position i sees: max(0, i - window + 1) ... i; nil for all.
    public var slidingWindow: Int?

    public init(heads: Int, kvHeads: Int, headDim: Int, slidingWindow: Int?) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.slidingWindow = slidingWindow
    }
}

/// How keys are stored for attention: in blocks of 16 positions, each kv head's block
/// transposed to [headDim][16]. Sixteen scores then come from one broadcast-FMA per head
/// dimension, with no horizontal sums and no transposing at attention time.
public enum KeyLayout {
    public static let block = 16

    /// Floats for `positions` positions (rounded up to whole blocks).
    public static func count(positions: Int, kvHeads: Int, headDim: Int) -> Int {
        (positions + block - 1) / block * block * kvHeads * headDim
    }

    /// Index of element `i` of kv head `kvHead`'s key at `position`.
    @inline(__always)
    public static func index(position: Int, kvHead: Int, element i: Int, kvHeads: Int, headDim: Int) -> Int {
        ((position / block * kvHeads + kvHead) * headDim + i) * block + position % block
    }

    /// Stores `count` rows of keys [count, kvHeads*headDim] at positions first ..< first+count.
    public static func store(_ rows: UnsafePointer<Float>, count: Int, first: Int, kvHeads: Int, headDim: Int,
                             into keys: UnsafeMutablePointer<Float>) {
        for t in 0..<count {
            for g in 0..<kvHeads {
                let row = rows + t * kvHeads * headDim + g * headDim
                for i in 0..<headDim {
                    keys[index(position: first + t, kvHead: g, element: i, kvHeads: kvHeads, headDim: headDim)] = row[i]
                }
            }
        }
    }
}

/// Causal attention for `tokens` queries at positions firstPosition ..< firstPosition+tokens.
/// q: [tokens, heads*headDim]; keys in `KeyLayout`, values [positions, kvHeads*headDim],
/// with the new tokens already stored; out: [tokens, heads*headDim]. Query head h reads kv head
/// h / (heads/kvHeads). Scores are scaled by headDim^-0.5 and soft-maxed in fp32.
///
/// FlashAttention-style (the table's `attention_block`): keys are visited in tiles of 64
/// with an online softmax (running max and sum, rescaling the partial output), so no
/// [queries x keys] matrix exists and memory stays linear in the sequence length. One task
/// handles one kv head for a block of query tokens, so all query heads of the group share
/// each key and value read.
public func attention(_ q: UnsafePointer<Float>, tokens: Int, firstPosition: Int,
                      keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      shape: AttentionShape, _ out: UnsafeMutablePointer<Float>, pool: ComputePool) {
    let kernels = pool.kernels.functions
    let blockTokens = tokens == 1 ? 1 : 16
    let blocks = (tokens + blockTokens - 1) / blockTokens
    let scratchCount = mx_attention_scratch_floats(Int32(blockTokens), Int32(shape.heads), Int32(shape.kvHeads),
                                                   Int32(shape.headDim))
    pool.run(parts: blocks * shape.kvHeads) { task in
        let kvHead = task % shape.kvHeads
        let firstToken = (task / shape.kvHeads) * blockTokens
        let count = min(blockTokens, tokens - firstToken)
        let scratch = allocateCacheAligned(Float.self, count: scratchCount)
        defer { scratch.deallocate() }
        kernels.attention_block(q, Int32(firstToken), Int32(count), Int32(firstPosition), Int32(kvHead), keys, values,
                                Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim),
                                Int32(shape.slidingWindow ?? 0), out, scratch)
    }
}
