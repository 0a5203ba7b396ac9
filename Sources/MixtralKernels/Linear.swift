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
    /// GGML-quantised weights, with integer dot products (AVX512-VNNI, or AVX2's
    /// vpmaddubsw) in decode and prefill. Decode with float weights keeps fp32 activations.
    /// The model computes the steps between products as llama.cpp does too
    /// (`LlamaCppKernels`).
    case fast
}

/// Up to this many tokens, bf16 products stream four weight rows at a time for all tokens
/// (`bf16_dot4_tokens`, fp32 activations in both precisions); more tokens pack panels.
let bf16RowsMaxTokens = 8

/// y = x W^T; see `LinearJob`.
public func linear(_ x: UnsafePointer<Float>, tokens: Int, _ w: WeightMatrix,
                   _ y: UnsafeMutablePointer<Float>, precision: ActivationPrecision = .exact, pool: ComputePool) {
    linear([LinearJob(x, tokens: tokens, w, y)], precision: precision, pool: pool)
}

/// Runs several matrix products as one parallel operation (one barrier): q/k/v of a
/// layer, gate and up of a feed-forward, or all experts of an MoE layer. The weight rows
/// of all jobs are cut into chunks that the threads take one at a time. The kernels are
/// the pool's (`ComputePool.kernels`).
///
/// One token streams each weight row once through a SIMD dot product. More tokens
/// convert a panel of 32 weight rows once (bf16 pairs, or fp32 for other types) and reuse
/// it for all tokens in register tiles, so weights are read from memory once per call.
/// Accumulation is fp32.
public func linear(_ jobs: [LinearJob], precision: ActivationPrecision = .exact, pool: ComputePool) {
    if precision == .fast {
        // llama.cpp's arithmetic: bf16 activations with bf16 weights for many tokens, 8-bit
        // activations with GGML-quantised weights.
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
    let kernels = pool.kernels.functions
    // Multi-token products work in 32-row panels; one-token rows need no alignment.
    let granularity = jobs.allSatisfy { $0.tokens <= 1 } ? 16 : 32
    let chunks = guidedChunks(jobs, threads: pool.threadCount, granularity: granularity)
    guard !chunks.isEmpty else { return }
    // One-token bf16 products read x split into even/odd halves (bf16_dot_rows).
    let splitX: [UnsafeMutablePointer<Float>?] = jobs.map { job in
        guard job.tokens == 1 && job.w.type == .bf16 else { return nil }
        let split = allocateCacheAligned(Float.self, count: job.w.columns)
        kernels.bf16_split_pairs(job.x, Int32(job.w.columns), split)
        return split
    }
    defer { splitX.forEach { $0?.deallocate() } }
    pool.run(parts: chunks.count) { part in
        let chunk = chunks[part]
        let job = jobs[chunk.job]
        if let split = splitX[chunk.job] {
            kernels.bf16_dot_rows(job.w.row(chunk.rows.lowerBound).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
                                  split, Int32(job.w.columns), job.y + chunk.rows.lowerBound, Int32(chunk.rows.count))
        } else if job.tokens == 1 {
            for r in chunk.rows { job.y[r] = rowDot(job.w, r, job.x, kernels) }
        } else if job.w.type == .bf16 && job.tokens <= bf16RowsMaxTokens {
            // A few tokens (an expert's share of a batched decode step): stream the rows
            // once for all tokens instead of packing panels.
            linearFewTokensBF16(job, rows: chunk.rows, kernels)
        } else if job.w.type == .bf16 && job.w.columns % 2 == 0 {
            linearPackedBF16(job, rows: chunk.rows, kernels)
        } else {
            linearPackedFloat(job, rows: chunk.rows, kernels)
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

/// Rows `rows` of a product of bf16 weights with a few tokens: four rows at a time for up
/// to four tokens (the later token groups find the rows in L1).
func linearFewTokensBF16(_ job: LinearJob, rows: Range<Int>, _ kernels: mx_kernels) {
    let k = job.w.columns, n = job.w.rows
    var r = rows.lowerBound
    while r < rows.upperBound {
        // The last rows, when fewer than four: all four dot products read row r (stride 0).
        let full = r + 4 <= rows.upperBound
        let weights = job.w.row(r).assumingMemoryBound(to: UInt16.self)
        var t = 0
        while t < job.tokens {
            let group = min(4, job.tokens - t)
            if full {
                kernels.bf16_dot4_tokens(weights, job.w.rowBytes / 2, job.x + t * k, Int32(group), Int32(k), job.y + t * n + r, n)
            } else {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { out in
                    guard let base = out.baseAddress else { return }
                    kernels.bf16_dot4_tokens(weights, 0, job.x + t * k, Int32(group), Int32(k), base, 4)
                    for i in 0..<group { job.y[(t + i) * n + r] = base[i * 4] }
                }
            }
            t += group
        }
        r += full ? 4 : 1
    }
}

/// Rows `rows` of a many-token product with bf16 weights and fp32 activations: panels of
/// 32 rows packed as pairs of k (bf16_pack_panel), then register tiles that broadcast one
/// activation per step. A pair word holds the even-k weight in its low half (`word << 16`
/// as fp32) and the odd-k weight in its high half (`word & 0xFFFF0000`).
func linearPackedBF16(_ job: LinearJob, rows: Range<Int>, _ kernels: mx_kernels) {
    let k = job.w.columns
    let n = job.w.rows
    let panel = allocateCacheAligned(UInt16.self, count: 32 * k)
    defer { panel.deallocate() }
    var r0 = rows.lowerBound
    while r0 < rows.upperBound {
        let count = min(32, rows.upperBound - r0)
        kernels.bf16_pack_panel(job.w.row(r0).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
                                Int32(count), Int32(k), panel)
        kernels.bf16_panel_multiply(panel, Int32(k), job.x, Int32(job.tokens), job.y + r0, n, Int32(count))
        r0 += count
    }
}

/// Rows `rows` of a many-token product for any other weight type (f32, f16, GGML blocks):
/// 32 rows at a time are converted to fp32 once into a panel laid out [k][32 rows], then
/// multiplied with all tokens in register tiles that broadcast one activation per step.
func linearPackedFloat(_ job: LinearJob, rows: Range<Int>, _ kernels: mx_kernels) {
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
        kernels.f32_panel_multiply(panel, Int32(k), job.x, Int32(job.tokens), job.y + r0, n, Int32(count))
        r0 += count
    }
}

/// Dot product of weight row r with x, converting the row's elements on the fly.
@inline(__always) func rowDot(_ w: WeightMatrix, _ r: Int, _ x: UnsafePointer<Float>, _ kernels: mx_kernels) -> Float {
    let k = w.columns
    switch w.type {
    case .f32: return kernels.dot_f32(w.row(r).assumingMemoryBound(to: Float.self), x, Int32(k))
    case .f16: return kernels.dot_f16(w.row(r).assumingMemoryBound(to: UInt16.self), x, Int32(k))
    case .bf16:
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 4) { out in
            guard let base = out.baseAddress else { return .nan }
            kernels.bf16_dot4_tokens(w.row(r).assumingMemoryBound(to: UInt16.self), 0, x, 1, Int32(k), base, 1)
            return base[0]
        }
    default:
        // GGML block formats, read straight from the blocks (Quantization/QuantizedMatVec).
        return dotRow(w.type, w.row(r), x, count: k, kernels)
    }
}
