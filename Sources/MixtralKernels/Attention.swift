import Foundation

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

/// Causal attention for `tokens` queries at positions firstPosition ..< firstPosition+tokens.
/// q: [tokens, heads*headDim]; keys/values: [positions, kvHeads*headDim] with the new
/// tokens already appended; out: [tokens, heads*headDim]. Query head h reads kv head
/// h / (heads/kvHeads). Scores are scaled by headDim^-0.5 and soft-maxed in fp32 with an
/// online softmax over tiles of keys, so memory stays linear in the sequence length.
public func attention(_ q: UnsafePointer<Float>, tokens: Int, firstPosition: Int,
                      keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      shape: AttentionShape, _ out: UnsafeMutablePointer<Float>, pool: ComputePool) {
    let d = shape.headDim
    let group = shape.heads / shape.kvHeads
    let qStride = shape.heads * d
    let kvStride = shape.kvHeads * d
    let scale = 1 / Float(d).squareRoot()
    let tile = 64
    pool.run(parts: tokens * shape.heads) { task in
        let t = task / shape.heads
        let h = task % shape.heads
        let position = firstPosition + t
        let first = shape.slidingWindow.map { max(0, position - $0 + 1) } ?? 0
        let query = q + t * qStride + h * d
        let kvOffset = (h / group) * d
        let result = out + t * qStride + h * d
        withUnsafeTemporaryAllocation(of: Float.self, capacity: tile) { scoresBuffer in
            guard let scores = scoresBuffer.baseAddress else { return }
            result.initialize(repeating: 0, count: d)
            var runningMax = -Float.infinity
            var runningSum: Float = 0
            var start = first
            while start <= position {
                let count = min(tile, position + 1 - start)
                var tileMax = -Float.infinity
                for j in count..<((count + 15) / 16 * 16) { scores[j] = -.infinity }
                for j in 0..<count {
                    let s = dot(query, keys + (start + j) * kvStride + kvOffset, d) * scale
                    scores[j] = s
                    tileMax = max(tileMax, s)
                }
                let newMax = max(runningMax, tileMax)
                let correction = expf(runningMax - newMax)
                if correction != 1 {
                    for i in 0..<d { result[i] *= correction }
                }
                runningSum *= correction
                // p_j = exp(s_j - max), 16 at a time (the tile buffer is a multiple of 16).
                var j = 0
                while j < count {
                    let p = exp16(load16(scores + j) - newMax)
                    UnsafeMutableRawPointer(scores + j).storeBytes(of: p, as: SIMD16<Float>.self)
                    j += 16
                }
                for j in 0..<count {
                    let p = scores[j]
                    runningSum += p
                    addScaled(result, values + (start + j) * kvStride + kvOffset, p, count: d)
                }
                runningMax = newMax
                start += count
            }
            let inverse = 1 / runningSum
            for i in 0..<d { result[i] *= inverse }
        }
    }
}
