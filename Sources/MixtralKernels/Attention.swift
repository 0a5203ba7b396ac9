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
/// h / (heads/kvHeads). Scores are scaled by headDim^-0.5 and soft-maxed in fp32.
///
/// FlashAttention-style: keys are visited in tiles of 64 with an online softmax (running
/// max and sum, rescaling the partial output), so no [queries x keys] matrix exists and
/// memory stays linear in the sequence length. One task handles one kv head for a block of
/// query tokens, so all query heads of the group share each key and value read.
public func attention(_ q: UnsafePointer<Float>, tokens: Int, firstPosition: Int,
                      keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      shape: AttentionShape, _ out: UnsafeMutablePointer<Float>, pool: ComputePool) {
    let blockTokens = tokens == 1 ? 1 : 16
    let blocks = (tokens + blockTokens - 1) / blockTokens
    pool.run(parts: blocks * shape.kvHeads) { task in
        let kvHead = task % shape.kvHeads
        let firstToken = (task / shape.kvHeads) * blockTokens
        let count = min(blockTokens, tokens - firstToken)
        attentionBlock(q, firstToken: firstToken, tokens: count, firstPosition: firstPosition, kvHead: kvHead,
                       keys: keys, values: values, shape: shape, out)
    }
}

/// Attention of `tokens` query tokens (all heads of one kv group) against their keys.
/// Rows r = token * group + head-in-group.
private func attentionBlock(_ q: UnsafePointer<Float>, firstToken: Int, tokens: Int, firstPosition: Int, kvHead: Int,
                            keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                            shape: AttentionShape, _ out: UnsafeMutablePointer<Float>) {
    let d = shape.headDim
    let group = shape.heads / shape.kvHeads
    let rows = tokens * group
    let qStride = shape.heads * d
    let kvStride = shape.kvHeads * d
    let kvOffset = kvHead * d
    let scale = 1 / Float(d).squareRoot()
    let tile = 64
    let firstQueryPosition = firstPosition + firstToken
    let lastPosition = firstQueryPosition + tokens - 1
    func lowestKey(_ position: Int) -> Int { shape.slidingWindow.map { max(0, position - $0 + 1) } ?? 0 }

    // Scratch: scaled queries [rows][d], outputs [rows][d], scores [rows][tile],
    // keys of a tile transposed [d][tile], running max and sum per row.
    let scratchCount = 2 * rows * d + rows * tile + d * tile + 2 * rows
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
    defer { scratch.deallocate() }
    let queries = scratch, outputs = scratch + rows * d, scores = outputs + rows * d
    let transposed = scores + rows * tile, runningMax = transposed + d * tile, runningSum = runningMax + rows
    for t in 0..<tokens {
        for g in 0..<group {
            let source = q + (firstToken + t) * qStride + (kvHead * group + g) * d
            let row = queries + (t * group + g) * d
            for i in 0..<d { row[i] = source[i] * scale }
        }
    }
    outputs.initialize(repeating: 0, count: rows * d)
    runningMax.initialize(repeating: -.infinity, count: rows)
    runningSum.initialize(repeating: 0, count: rows)

    var start = lowestKey(firstQueryPosition)
    while start <= lastPosition {
        let count = min(tile, lastPosition + 1 - start)
        // Scores: many rows share a transposed key tile (no horizontal sums); a single
        // token (decode) takes plain dot products instead of paying for the transpose.
        if rows >= 16 {
            for j in 0..<count {
                let key = keys + (start + j) * kvStride + kvOffset
                for i in 0..<d { transposed[i * tile + j] = key[i] }
            }
            for j in count..<tile {
                for i in 0..<d { transposed[i * tile + j] = 0 }
            }
            for r in 0..<rows { scoreRow(queries + r * d, transposed, d: d, into: scores + r * tile) }
        } else {
            for r in 0..<rows {
                for j in 0..<count { scores[r * tile + j] = dot(queries + r * d, keys + (start + j) * kvStride + kvOffset, d) }
            }
        }
        for r in 0..<rows {
            let position = firstQueryPosition + r / group
            let row = scores + r * tile
            // Keys this query may not see (future, or before its window) get -inf.
            let lowest = lowestKey(position)
            for j in 0..<tile where j >= count || start + j > position || start + j < lowest { row[j] = -.infinity }
            var tileMax = -Float.infinity
            for j in 0..<count { tileMax = max(tileMax, row[j]) }
            let newMax = max(runningMax[r], tileMax)
            if newMax == -.infinity { continue }  // nothing visible in this tile yet
            let correction = expf(runningMax[r] - newMax)
            runningMax[r] = newMax
            var sum: Float = 0
            var j = 0
            while j < tile {
                let p = exp16(load16(row + j) - newMax)
                UnsafeMutableRawPointer(row + j).storeBytes(of: p, as: SIMD16<Float>.self)
                sum += horizontalSum(p)
                j += 16
            }
            runningSum[r] = runningSum[r] * correction + sum
            let output = outputs + r * d
            if correction != 1 {
                for i in 0..<d { output[i] *= correction }
            }
        }
        // outputs[r] += sum_j p[r][j] * v[j]: each value row is read once for all rows.
        for j in 0..<count {
            let value = values + (start + j) * kvStride + kvOffset
            for r in 0..<rows {
                let p = scores[r * tile + j]
                if p != 0 { addScaled(outputs + r * d, value, p, count: d) }
            }
        }
        start += count
    }
    for t in 0..<tokens {
        for g in 0..<group {
            let r = t * group + g
            let destination = out + (firstToken + t) * qStride + (kvHead * group + g) * d
            let inverse = 1 / runningSum[r]
            for i in 0..<d { destination[i] = outputs[r * d + i] * inverse }
        }
    }
}

/// scores[0..<64] = sum_i query[i] * transposed[i][0..<64]: four 16-lane accumulators,
/// one broadcast query element per step.
@inline(__always) private func scoreRow(_ query: UnsafePointer<Float>, _ transposed: UnsafePointer<Float>, d: Int,
                                        into scores: UnsafeMutablePointer<Float>) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    for i in 0..<d {
        let x = SIMD16<Float>(repeating: query[i])
        let column = transposed + i * 64
        a0.addProduct(x, load16(column))
        a1.addProduct(x, load16(column + 16))
        a2.addProduct(x, load16(column + 32))
        a3.addProduct(x, load16(column + 48))
    }
    for (index, value) in [a0, a1, a2, a3].enumerated() {
        UnsafeMutableRawPointer(scores + 16 * index).storeBytes(of: value, as: SIMD16<Float>.self)
    }
}
