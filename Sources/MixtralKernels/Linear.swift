import MixtralCKernels

/// One matrix product y = x W^T (nn.Linear without bias) for a weight matrix W [N, K]
/// stored in place: x is [tokens, K] fp32 row-major, y is [tokens, N] fp32.
public struct LinearJob: @unchecked Sendable {
    public var x: UnsafePointer<Float>
    public var tokens: Int
    public var w: WeightMatrix
    public var y: UnsafeMutablePointer<Float>

    public init(_ x: UnsafePointer<Float>, tokens: Int, _ w: WeightMatrix, _ y: UnsafeMutablePointer<Float>) {
        self.x = x
        self.tokens = tokens
        self.w = w
        self.y = y
    }
}

/// How activations enter matrix products.
public enum ActivationPrecision: String, Sendable, CaseIterable {
    /// fp32 activations: the products equal transformers' fp32 computation.
    case exact
    /// llama.cpp's arithmetic where it is faster: activations rounded to bf16 for
    /// multi-token (prefill) products with bf16 weights, as llama.cpp and transformers in
    /// bf16 do, with AVX512-BF16 dot products where the CPU has them (about twice the fp32
    /// throughput); activations quantised to 8 bits (llama.cpp's Q8_0/Q8_1/Q8_K) for
    /// GGML-quantised weights, with integer dot products (AVX512-VNNI) in decode and
    /// prefill. Decode with float weights keeps fp32 activations. The model computes the
    /// steps between products as llama.cpp does too (`LlamaCppKernels`).
    case fast
}

/// The kernel a job runs on under `.fast`.
enum FastKernel {
    case bf16Activations, int8Panels, int8Rows, kQuantRows, fp32
}

/// Up to this many tokens, 8-bit products read each group of four weight rows once and
/// multiply it with every token (`mx_q8_matmul`); more tokens pack 16-row panels first.
let int8RowsMaxTokens = 4

/// Q8_0 and Q4_1 products follow ggml's vec_dot bit for bit in the four-row kernel, and
/// llama.cpp multiplies a prompt's tokens in that arithmetic too (tinyBLAS for Q8_0, which
/// sums in the same order; vec_dot for Q4_1). Prompts up to this many tokens take the
/// four-row kernel so that they give llama.cpp's logits (and at up to 16 tokens it is
/// also the faster one: Q8_0 pp16 508 against 448 t/s with panels, SmolLM2 Q4_1 416
/// against 362; at 32 tokens the panels win).
let llamaCppRowsMaxTokens = 16

/// Up to this many tokens, bf16 products stream four weight rows at a time for all tokens
/// (`mx_bf16_dot4_tokens`, fp32 activations in both precisions); more tokens pack panels.
let bf16RowsMaxTokens = 8

func fastKernel(for job: LinearJob) -> FastKernel {
    switch job.w.type {
    case .bf16 where job.tokens > bf16RowsMaxTokens && job.w.columns % 2 == 0:
        return .bf16Activations
    case .q8_0, .q4_0:
        guard cpuHasAVX512VNNI else { return .fp32 }
        let rowsMaxTokens = job.w.type == .q8_0 ? llamaCppRowsMaxTokens : int8RowsMaxTokens
        return job.tokens <= rowsMaxTokens && cpuHasInt8MatVec ? .int8Rows : .int8Panels
    case .q4_1:
        // Many tokens: the fp32 panels are faster than re-reading four rows per token
        // (there is no 8-bit panel kernel for Q4_1's per-block minimum yet).
        return cpuHasInt8MatVec && job.tokens <= llamaCppRowsMaxTokens ? .int8Rows : .fp32
    case .q4_K, .q5_K, .q6_K:
        return job.tokens <= int8RowsMaxTokens && job.w.columns % 256 == 0 ? .kQuantRows : .fp32
    default:
        return .fp32
    }
}

/// y = x W^T; see `LinearJob`.
public func linear(_ x: UnsafePointer<Float>, tokens: Int, _ w: WeightMatrix,
                   _ y: UnsafeMutablePointer<Float>, precision: ActivationPrecision = .exact, pool: ComputePool) {
    linear([LinearJob(x, tokens: tokens, w, y)], precision: precision, pool: pool)
}

/// Runs several matrix products as one parallel operation (one barrier): q/k/v of a
/// layer, gate and up of a feed-forward, or all experts of an MoE layer. The weight rows
/// of all jobs are cut into chunks that the threads take one at a time.
///
/// One token streams each weight row once through a SIMD dot product. More tokens
/// convert a panel of 32 weight rows once (bf16 pairs, or fp32 for other types) and reuse
/// it for all tokens in 32x6 register tiles, so weights are read from memory once per call.
/// Accumulation is fp32.
public func linear(_ jobs: [LinearJob], precision: ActivationPrecision = .exact, pool: ComputePool) {
    if precision == .fast {
        // llama.cpp's arithmetic: bf16 activations with bf16 weights for many tokens, 8-bit
        // activations with Q8_0/Q4_0/Q4_1 weights (AVX512-VNNI).
        var byKernel: [FastKernel: [LinearJob]] = [:]
        for job in jobs { byKernel[fastKernel(for: job), default: []].append(job) }
        if byKernel[.fp32]?.count != jobs.count {
            if let group = byKernel[.bf16Activations] { linearBF16Activations(group, pool: pool) }
            if let group = byKernel[.int8Panels] { linearInt8Activations(group, pool: pool) }
            if let group = byKernel[.int8Rows] { linearInt8Rows(group, pool: pool) }
            if let group = byKernel[.kQuantRows] { linearKQuantRows(group, pool: pool) }
            if let group = byKernel[.fp32] { linear(group, pool: pool) }
            return
        }
    }
    // Multi-token products work in 32-row panels; one-token rows need no alignment.
    let granularity = jobs.allSatisfy { $0.tokens <= 1 } ? 16 : 32
    let chunks = guidedChunks(jobs, threads: pool.threadCount, granularity: granularity)
    guard !chunks.isEmpty else { return }
    // One-token bf16 products read x split into even/odd halves (mx_bf16_dot_rows).
    let splitX: [UnsafeMutablePointer<Float>?] = jobs.map { job in
        guard job.tokens == 1 && job.w.type == .bf16 && cpuHasAVX512F else { return nil }
        let split = allocateCacheAligned(Float.self, count: job.w.columns)
        mx_bf16_split_pairs(job.x, Int32(job.w.columns), split)
        return split
    }
    defer { splitX.forEach { $0?.deallocate() } }
    pool.run(parts: chunks.count) { part in
        let chunk = chunks[part]
        let job = jobs[chunk.job]
        if let split = splitX[chunk.job] {
            mx_bf16_dot_rows(job.w.row(chunk.rows.lowerBound).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
                             split, Int32(job.w.columns), job.y + chunk.rows.lowerBound, Int32(chunk.rows.count))
        } else if job.tokens == 1 && job.w.type == .bf16 {
            var r = chunk.rows.lowerBound
            while r + 4 <= chunk.rows.upperBound {
                dotBF16x4(job.w, r, job.x, job.y + r)
                r += 4
            }
            while r < chunk.rows.upperBound {
                job.y[r] = rowDot(job.w, r, job.x, job.w.columns)
                r += 1
            }
        } else if job.tokens == 1 {
            for r in chunk.rows { job.y[r] = rowDot(job.w, r, job.x, job.w.columns) }
        } else if job.w.type == .bf16 && job.tokens <= bf16RowsMaxTokens && cpuHasAVX512F {
            // A few tokens (an expert's share of a batched decode step): stream the rows
            // once for all tokens instead of packing panels.
            // Tokens in groups of up to 4; the later groups find the four rows in L1.
            var r = chunk.rows.lowerBound
            while r + 4 <= chunk.rows.upperBound {
                var t = 0
                while t < job.tokens {
                    let group = min(4, job.tokens - t)
                    let rows = job.w.row(r).assumingMemoryBound(to: UInt16.self)
                    if group == 1 {
                        mx_bf16_dot4(rows, job.w.rowBytes / 2, job.x + t * job.w.columns, Int32(job.w.columns), job.y + t * job.w.rows + r)
                    } else {
                        mx_bf16_dot4_tokens(rows, job.w.rowBytes / 2, job.x + t * job.w.columns, Int32(group),
                                            Int32(job.w.columns), job.y + t * job.w.rows + r, job.w.rows)
                    }
                    t += group
                }
                r += 4
            }
            for row in r..<chunk.rows.upperBound {
                for t in 0..<job.tokens { job.y[t * job.w.rows + row] = rowDot(job.w, row, job.x + t * job.w.columns, job.w.columns) }
            }
        } else if job.w.type == .bf16 && job.w.columns % 2 == 0 {
            linearPackedBF16(job, rows: chunk.rows)
        } else {
            linearPackedFloat(job, rows: chunk.rows)
        }
    }
}

/// The rows of all jobs cut into chunks that shrink towards the end (guided scheduling:
/// each is the remaining rows over twice the threads, at least `granularity` rows), so the
/// threads finish together: with equal chunks of 1/8 per thread, the last chunk alone
/// kept one thread waiting ~1/16 of a decode product on average (lm_head: 2,000 rows).
func guidedChunks(_ jobs: [LinearJob], threads: Int, granularity: Int) -> [(job: Int, rows: Range<Int>)] {
    var remaining = jobs.reduce(0) { $0 + ($1.tokens > 0 ? $1.w.rows : 0) }
    var chunks: [(job: Int, rows: Range<Int>)] = []
    for (index, job) in jobs.enumerated() where job.tokens > 0 {
        var start = 0
        while start < job.w.rows {
            let wanted = max(granularity, (remaining / (2 * threads) + granularity - 1) / granularity * granularity)
            let end = min(job.w.rows, start + wanted)
            chunks.append((index, start..<end))
            remaining -= end - start
            start = end
        }
    }
    return chunks
}

/// Rows `rows` of a many-token product with bf16 weights and fp32 activations: panels of
/// 32 rows packed as pairs of k (see mx_bf16_pack_panel), then 32x6 register tiles that
/// broadcast one activation per step. A pair word holds the even-k weight in its low half
/// (`word << 16` as fp32) and the odd-k weight in its high half (`word & 0xFFFF0000`).
func linearPackedBF16(_ job: LinearJob, rows: Range<Int>) {
    let k = job.w.columns
    let n = job.w.rows
    let panel = allocateCacheAligned(UInt16.self, count: 32 * k)
    defer { panel.deallocate() }
    var r0 = rows.lowerBound
    while r0 < rows.upperBound {
        let count = min(32, rows.upperBound - r0)
        mx_bf16_pack_panel(job.w.row(r0).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
                           Int32(count), Int32(k), panel)
        let words = UnsafeRawPointer(panel)
        forEachTokenTile(job.tokens,
                         six: { t in tile32x6(words, k, job.x + t * k, job.y + t * n + r0, n, rows: count) },
                         one: { t in tile32x1(words, k, job.x + t * k, job.y + t * n + r0, rows: count) })
        r0 += count
    }
}

/// Token tiles of a panel product: `six(t)` for tokens t ..< t+6, `one(t)` for the rest.
@inline(__always) func forEachTokenTile(_ tokens: Int, six: (Int) -> Void, one: (Int) -> Void) {
    var t = 0
    while t + 6 <= tokens {
        six(t)
        t += 6
    }
    while t < tokens {
        one(t)
        t += 1
    }
}

@inline(__always) func splitPairs(_ words: SIMD16<UInt32>) -> (even: SIMD16<Float>, odd: SIMD16<Float>) {
    (unsafeBitCast(words &<< 16, to: SIMD16<Float>.self),
     unsafeBitCast(words & SIMD16(repeating: 0xFFFF_0000), to: SIMD16<Float>.self))
}

@inline(__always) func tile32x6(_ panel: UnsafeRawPointer, _ k: Int, _ x: UnsafePointer<Float>,
                                _ y: UnsafeMutablePointer<Float>, _ ldy: Int, rows: Int) {
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a10 = SIMD16<Float>(), a11 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a30 = SIMD16<Float>(), a31 = SIMD16<Float>()
    var a40 = SIMD16<Float>(), a41 = SIMD16<Float>(), a50 = SIMD16<Float>(), a51 = SIMD16<Float>()
    let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k, x4 = x + 4 * k, x5 = x + 5 * k
    var kk = 0
    while kk < k / 2 {
        let (e0, o0) = splitPairs(panel.loadUnaligned(fromByteOffset: kk * 128, as: SIMD16<UInt32>.self))
        let (e1, o1) = splitPairs(panel.loadUnaligned(fromByteOffset: kk * 128 + 64, as: SIMD16<UInt32>.self))
        let i = 2 * kk
        var b = SIMD16<Float>(repeating: x0[i]), c = SIMD16<Float>(repeating: x0[i + 1])
        a00.addProduct(e0, b); a00.addProduct(o0, c); a01.addProduct(e1, b); a01.addProduct(o1, c)
        b = SIMD16(repeating: x1[i]); c = SIMD16(repeating: x1[i + 1])
        a10.addProduct(e0, b); a10.addProduct(o0, c); a11.addProduct(e1, b); a11.addProduct(o1, c)
        b = SIMD16(repeating: x2[i]); c = SIMD16(repeating: x2[i + 1])
        a20.addProduct(e0, b); a20.addProduct(o0, c); a21.addProduct(e1, b); a21.addProduct(o1, c)
        b = SIMD16(repeating: x3[i]); c = SIMD16(repeating: x3[i + 1])
        a30.addProduct(e0, b); a30.addProduct(o0, c); a31.addProduct(e1, b); a31.addProduct(o1, c)
        b = SIMD16(repeating: x4[i]); c = SIMD16(repeating: x4[i + 1])
        a40.addProduct(e0, b); a40.addProduct(o0, c); a41.addProduct(e1, b); a41.addProduct(o1, c)
        b = SIMD16(repeating: x5[i]); c = SIMD16(repeating: x5[i + 1])
        a50.addProduct(e0, b); a50.addProduct(o0, c); a51.addProduct(e1, b); a51.addProduct(o1, c)
        kk += 1
    }
    store32(a00, a01, y, rows: rows)
    store32(a10, a11, y + ldy, rows: rows)
    store32(a20, a21, y + 2 * ldy, rows: rows)
    store32(a30, a31, y + 3 * ldy, rows: rows)
    store32(a40, a41, y + 4 * ldy, rows: rows)
    store32(a50, a51, y + 5 * ldy, rows: rows)
}

@inline(__always) func tile32x1(_ panel: UnsafeRawPointer, _ k: Int, _ x: UnsafePointer<Float>,
                                _ y: UnsafeMutablePointer<Float>, rows: Int) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    for kk in 0..<(k / 2) {
        let (e0, o0) = splitPairs(panel.loadUnaligned(fromByteOffset: kk * 128, as: SIMD16<UInt32>.self))
        let (e1, o1) = splitPairs(panel.loadUnaligned(fromByteOffset: kk * 128 + 64, as: SIMD16<UInt32>.self))
        let b = SIMD16<Float>(repeating: x[2 * kk]), c = SIMD16<Float>(repeating: x[2 * kk + 1])
        a0.addProduct(e0, b); a0.addProduct(o0, c); a1.addProduct(e1, b); a1.addProduct(o1, c)
    }
    store32(a0, a1, y, rows: rows)
}

/// Writes the first `rows` (<= 32) of two 16-lane vectors.
@inline(__always) func store32(_ low: SIMD16<Float>, _ high: SIMD16<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int) {
    if rows == 32 {
        UnsafeMutableRawPointer(y).storeBytes(of: low, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(y + 16).storeBytes(of: high, as: SIMD16<Float>.self)
    } else {
        for i in 0..<min(rows, 16) { y[i] = low[i] }
        for i in 16..<max(16, rows) { y[i] = high[i - 16] }
    }
}

/// Rows `rows` of a many-token product for any other weight type (f32, f16, GGML blocks):
/// 32 rows at a time are converted to fp32 once into a panel laid out [k][32 rows], then
/// multiplied with all tokens in 32x6 register tiles that broadcast one activation per step.
func linearPackedFloat(_ job: LinearJob, rows: Range<Int>) {
    let k = job.w.columns
    let n = job.w.rows
    let panel = allocateCacheAligned(Float.self, count: 32 * k)
    let row = allocateCacheAligned(Float.self, count: k)
    defer { panel.deallocate(); row.deallocate() }
    var r0 = rows.lowerBound
    while r0 < rows.upperBound {
        let count = min(32, rows.upperBound - r0)
        if count < 32 { panel.initialize(repeating: 0, count: 32 * k) }
        for i in 0..<count {
            dequantizeRow(job.w.type, job.w.row(r0 + i), row, count: k)
            for c in 0..<k { panel[c * 32 + i] = row[c] }
        }
        forEachTokenTile(job.tokens,
                         six: { t in floatTile32x6(panel, k, job.x + t * k, job.y + t * n + r0, n, rows: count) },
                         one: { t in floatTile32x1(panel, k, job.x + t * k, job.y + t * n + r0, rows: count) })
        r0 += count
    }
}

@inline(__always) func floatTile32x6(_ panel: UnsafePointer<Float>, _ k: Int, _ x: UnsafePointer<Float>,
                                     _ y: UnsafeMutablePointer<Float>, _ ldy: Int, rows: Int) {
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a10 = SIMD16<Float>(), a11 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a30 = SIMD16<Float>(), a31 = SIMD16<Float>()
    var a40 = SIMD16<Float>(), a41 = SIMD16<Float>(), a50 = SIMD16<Float>(), a51 = SIMD16<Float>()
    for c in 0..<k {
        let w0 = load16(panel + 32 * c), w1 = load16(panel + 32 * c + 16)
        var b = SIMD16<Float>(repeating: x[c])
        a00.addProduct(w0, b); a01.addProduct(w1, b)
        b = SIMD16(repeating: x[k + c]); a10.addProduct(w0, b); a11.addProduct(w1, b)
        b = SIMD16(repeating: x[2 * k + c]); a20.addProduct(w0, b); a21.addProduct(w1, b)
        b = SIMD16(repeating: x[3 * k + c]); a30.addProduct(w0, b); a31.addProduct(w1, b)
        b = SIMD16(repeating: x[4 * k + c]); a40.addProduct(w0, b); a41.addProduct(w1, b)
        b = SIMD16(repeating: x[5 * k + c]); a50.addProduct(w0, b); a51.addProduct(w1, b)
    }
    store32(a00, a01, y, rows: rows)
    store32(a10, a11, y + ldy, rows: rows)
    store32(a20, a21, y + 2 * ldy, rows: rows)
    store32(a30, a31, y + 3 * ldy, rows: rows)
    store32(a40, a41, y + 4 * ldy, rows: rows)
    store32(a50, a51, y + 5 * ldy, rows: rows)
}

@inline(__always) func floatTile32x1(_ panel: UnsafePointer<Float>, _ k: Int, _ x: UnsafePointer<Float>,
                                     _ y: UnsafeMutablePointer<Float>, rows: Int) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    for c in 0..<k {
        let b = SIMD16<Float>(repeating: x[c])
        a0.addProduct(load16(panel + 32 * c), b)
        a1.addProduct(load16(panel + 32 * c + 16), b)
    }
    store32(a0, a1, y, rows: rows)
}

/// Dot product of weight row r with x, converting the row's elements on the fly.
@inline(__always) func rowDot(_ w: WeightMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ k: Int) -> Float {
    switch w.type {
    case .f32: return dot(w.row(r).assumingMemoryBound(to: Float.self), x, k)
    case .bf16: return dotBF16(w.row(r).assumingMemoryBound(to: UInt16.self), x, k)
    case .f16: return dotF16(w.row(r).assumingMemoryBound(to: UInt16.self), x, k)
    default:
        // GGML block formats, read straight from the blocks (Quantization/QuantizedMatVec).
        return dotRow(w.type, w.row(r), x, count: k)
    }
}

/// Sum of the 16 lanes as a tree (SIMD's `sum()` adds them one after another).
@inline(__always) func horizontalSum(_ v: SIMD16<Float>) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func loadBF16x16(_ p: UnsafePointer<UInt16>) -> SIMD16<Float> {
    let bits = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt16>.self)
    return unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD16<Float>.self)
}

public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        acc0.addProduct(load16(a + i), load16(b + i))
        acc1.addProduct(load16(a + i + 16), load16(b + i + 16))
        i += 32
    }
    if i + 16 <= n {
        acc0.addProduct(load16(a + i), load16(b + i))
        i += 16
    }
    var sum = horizontalSum(acc0 + acc1)
    while i < n {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

/// Dot product of a bf16 row with x. bf16 is the upper half of an fp32, so one 32-bit
/// load holds two weights: `word << 16` is the even one and `word & 0xFFFF0000` the odd
/// one. No widening is needed; x is read as its even and odd elements instead.
func dotBF16(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var even = SIMD16<Float>(), odd = SIMD16<Float>()
    let mask = SIMD16<UInt32>(repeating: 0xFFFF_0000)
    var i = 0
    while i + 32 <= n {
        let words = UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<UInt32>.self)
        let pair = UnsafeRawPointer(x + i).loadUnaligned(as: (SIMD16<Float>, SIMD16<Float>).self)
        // x[i..<i+32] as 32 floats: deinterleave into even and odd lanes.
        let xEven = SIMD16<Float>(lowHalf: pair.0.evenHalf, highHalf: pair.1.evenHalf)
        let xOdd = SIMD16<Float>(lowHalf: pair.0.oddHalf, highHalf: pair.1.oddHalf)
        even.addProduct(unsafeBitCast(words &<< 16, to: SIMD16<Float>.self), xEven)
        odd.addProduct(unsafeBitCast(words & mask, to: SIMD16<Float>.self), xOdd)
        i += 32
    }
    var sum = horizontalSum(even + odd)
    while i < n {
        sum += bf16ToFloat(w[i]) * x[i]
        i += 1
    }
    return sum
}

/// Four bf16 rows (r ..< r+4) dotted with x at once: the even/odd split of x is shared,
/// and four weight streams are in flight.
func dotBF16x4(_ w: WeightMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    let n = w.columns
    let (w0, w1, w2, w3) = (w.row(r), w.row(r + 1), w.row(r + 2), w.row(r + 3))
    var e0 = SIMD16<Float>(), o0 = SIMD16<Float>(), e1 = SIMD16<Float>(), o1 = SIMD16<Float>()
    var e2 = SIMD16<Float>(), o2 = SIMD16<Float>(), e3 = SIMD16<Float>(), o3 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        let pair = UnsafeRawPointer(x + i).loadUnaligned(as: (SIMD16<Float>, SIMD16<Float>).self)
        let xEven = SIMD16<Float>(lowHalf: pair.0.evenHalf, highHalf: pair.1.evenHalf)
        let xOdd = SIMD16<Float>(lowHalf: pair.0.oddHalf, highHalf: pair.1.oddHalf)
        var (even, odd) = splitPairs(w0.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt32>.self))
        e0.addProduct(even, xEven); o0.addProduct(odd, xOdd)
        (even, odd) = splitPairs(w1.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt32>.self))
        e1.addProduct(even, xEven); o1.addProduct(odd, xOdd)
        (even, odd) = splitPairs(w2.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt32>.self))
        e2.addProduct(even, xEven); o2.addProduct(odd, xOdd)
        (even, odd) = splitPairs(w3.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt32>.self))
        e3.addProduct(even, xEven); o3.addProduct(odd, xOdd)
        i += 32
    }
    y[0] = horizontalSum(e0 + o0)
    y[1] = horizontalSum(e1 + o1)
    y[2] = horizontalSum(e2 + o2)
    y[3] = horizontalSum(e3 + o3)
    if i < n {
        for index in 0..<4 {
            let bits = w.row(r + index).assumingMemoryBound(to: UInt16.self)
            for j in i..<n { y[index] += bf16ToFloat(bits[j]) * x[j] }
        }
    }
}

func dotF16(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc.addProduct(loadF16x16(w + i), load16(x + i))
        i += 16
    }
    var sum = horizontalSum(acc)
    while i < n {
        sum += f16ToFloat(w[i]) * x[i]
        i += 1
    }
    return sum
}

/// 16 IEEE halves as fp32 (one vcvtph2ps with a target CPU).
@inline(__always) func loadF16x16(_ p: UnsafePointer<UInt16>) -> SIMD16<Float> {
    #if arch(x86_64) && os(macOS)
    var v = SIMD16<Float>()
    for j in 0..<16 { v[j] = f16ToFloat(p[j]) }
    return v
    #else
    return SIMD16<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float16>.self))
    #endif
}

