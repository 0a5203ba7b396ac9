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

    // Scratch: scaled queries [rows][d], outputs [rows][d], scores [rows][tile], running
    // max and sum per row.
    let scratchCount = 2 * rows * d + rows * tile + 2 * rows
    let scratch = allocateCacheAligned(Float.self, count: scratchCount)
    defer { scratch.deallocate() }
    let queries = scratch, outputs = scratch + rows * d, scores = outputs + rows * d
    let runningMax = scores + rows * tile, runningSum = runningMax + rows
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

    // Tiles of 64 keys aligned to key blocks; keys before the window are masked.
    var start = lowestKey(firstQueryPosition) / KeyLayout.block * KeyLayout.block
    while start <= lastPosition {
        let count = min(tile, lastPosition + 1 - start)
        // Scores, 16 keys at a time from the blocked key layout (tiles start on block
        // boundaries, so a tile is whole blocks; positions past `count` are masked below).
        for b in 0..<((count + KeyLayout.block - 1) / KeyLayout.block) {
            let keyBlock = keys + ((start / KeyLayout.block + b) * shape.kvHeads + kvHead) * d * KeyLayout.block
            for r in 0..<rows { scoreBlock(queries + r * d, keyBlock, d: d, into: scores + r * tile + b * KeyLayout.block) }
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
        // outputs[r] += sum_j p[r][j] * v[j], 16 dimensions at a time in a register.
        for r in 0..<rows {
            let output = outputs + r * d, p = scores + r * tile
            var c = 0
            while c + 16 <= d {
                var acc = load16(output + c)
                for j in 0..<count { acc.addProduct(SIMD16(repeating: p[j]), load16(values + (start + j) * kvStride + kvOffset + c)) }
                UnsafeMutableRawPointer(output + c).storeBytes(of: acc, as: SIMD16<Float>.self)
                c += 16
            }
            while c < d {
                for j in 0..<count { output[c] += p[j] * values[(start + j) * kvStride + kvOffset + c] }
                c += 1
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

/// scores[0..<16] = sum_i query[i] * keyBlock[i][0..<16]: one broadcast query element per
/// step against 16 keys.
@inline(__always) private func scoreBlock(_ query: UnsafePointer<Float>, _ keyBlock: UnsafePointer<Float>, d: Int,
                                          into scores: UnsafeMutablePointer<Float>) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var i = 0
    while i + 2 <= d {
        a0.addProduct(SIMD16(repeating: query[i]), load16(keyBlock + i * 16))
        a1.addProduct(SIMD16(repeating: query[i + 1]), load16(keyBlock + (i + 1) * 16))
        i += 2
    }
    if i < d { a0.addProduct(SIMD16(repeating: query[i]), load16(keyBlock + i * 16)) }
    UnsafeMutableRawPointer(scores).storeBytes(of: a0 + a1, as: SIMD16<Float>.self)
}
