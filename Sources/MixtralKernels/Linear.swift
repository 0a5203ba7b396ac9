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
    /// throughput). Decode keeps fp32 activations.
    case fast
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
/// convert a panel of weight rows to fp32 once and reuse it for all tokens in 4x4
/// register tiles, so weights are read from memory once per call. Accumulation is fp32.
public func linear(_ jobs: [LinearJob], precision: ActivationPrecision = .exact, pool: ComputePool) {
    if precision == .fast, jobs.contains(where: { $0.w.type == .bf16 && $0.tokens > 1 && $0.w.columns % 2 == 0 }) {
        let (bf16Jobs, others) = (jobs.filter { $0.w.type == .bf16 && $0.tokens > 1 && $0.w.columns % 2 == 0 },
                                  jobs.filter { !($0.w.type == .bf16 && $0.tokens > 1 && $0.w.columns % 2 == 0) })
        linearBF16Activations(bf16Jobs, pool: pool)
        if !others.isEmpty { linear(others, pool: pool) }
        return
    }
    let totalRows = jobs.reduce(0) { $0 + $1.w.rows }
    guard totalRows > 0 else { return }
    // About 8 chunks per thread over all jobs, in multiples of the 32-row panel.
    let chunkRows = max(32, (totalRows / (pool.threadCount * 8) + 31) / 32 * 32)
    var chunks: [(job: Int, rows: Range<Int>)] = []
    for (index, job) in jobs.enumerated() where job.tokens > 0 {
        var start = 0
        while start < job.w.rows {
            let end = min(job.w.rows, start + chunkRows)
            chunks.append((index, start..<end))
            start = end
        }
    }
    pool.run(parts: chunks.count) { part in
        let chunk = chunks[part]
        let job = jobs[chunk.job]
        if job.tokens == 1 && job.w.type == .bf16 {
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
        } else if job.w.type == .bf16 && job.w.columns % 2 == 0 {
            linearPackedBF16(job, rows: chunk.rows)
        } else {
            linearPanels(job, rows: chunk.rows)
        }
    }
}

/// Rows `rows` of a many-token product with bf16 weights and fp32 activations: panels of
/// 32 rows packed as pairs of k (see mx_bf16_pack_panel), then 32x6 register tiles that
/// broadcast one activation per step. A pair word holds the even-k weight in its low half
/// (`word << 16` as fp32) and the odd-k weight in its high half (`word & 0xFFFF0000`).
func linearPackedBF16(_ job: LinearJob, rows: Range<Int>) {
    let k = job.w.columns
    let n = job.w.rows
    let panel = UnsafeMutablePointer<UInt16>.allocate(capacity: 32 * k)
    defer { panel.deallocate() }
    var r0 = rows.lowerBound
    while r0 < rows.upperBound {
        let count = min(32, rows.upperBound - r0)
        mx_bf16_pack_panel(job.w.row(r0).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
                           Int32(count), Int32(k), panel)
        let words = UnsafeRawPointer(panel)
        var t = 0
        while t < job.tokens {
            let tokens = min(6, job.tokens - t)
            if tokens == 6 {
                tile32x6(words, k, job.x + t * k, job.y + t * n + r0, n, rows: count)
            } else {
                for i in 0..<tokens { tile32x1(words, k, job.x + (t + i) * k, job.y + (t + i) * n + r0, rows: count) }
            }
            t += tokens
        }
        r0 += count
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

/// Rows `rows` of a many-token product, 4 weight rows at a time.
func linearPanels(_ job: LinearJob, rows: Range<Int>) {
    let (x, tokens, w, y) = (job.x, job.tokens, job.w, job.y)
    let n = w.rows
    let k = w.columns
    let panelRows = 4
    let panel = UnsafeMutablePointer<Float>.allocate(capacity: panelRows * k)
    defer { panel.deallocate() }
    var r0 = rows.lowerBound
    while r0 < rows.upperBound {
        let count = min(panelRows, rows.upperBound - r0)
        for i in 0..<count { dequantizeRow(w.type, w.row(r0 + i), panel + i * k, count: k) }
        if count == panelRows {
            var t = 0
            while t + 4 <= tokens {
                tile4x4(panel, k, x + t * k, y + t * n + r0, n)
                t += 4
            }
            while t < tokens {
                for i in 0..<panelRows { y[t * n + r0 + i] = dot(panel + i * k, x + t * k, k) }
                t += 1
            }
        } else {
            for t in 0..<tokens {
                for i in 0..<count { y[t * n + r0 + i] = dot(panel + i * k, x + t * k, k) }
            }
        }
        r0 += count
    }
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

/// y[t][i] = dot(panel row i, x row t) for a 4x4 tile; y rows are `ldy` apart.
@inline(__always) func tile4x4(_ panel: UnsafePointer<Float>, _ k: Int, _ x: UnsafePointer<Float>,
                               _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
    let w0 = panel, w1 = panel + k, w2 = panel + 2 * k, w3 = panel + 3 * k
    let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k
    var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a02 = SIMD16<Float>(), a03 = SIMD16<Float>()
    var a10 = SIMD16<Float>(), a11 = SIMD16<Float>(), a12 = SIMD16<Float>(), a13 = SIMD16<Float>()
    var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a22 = SIMD16<Float>(), a23 = SIMD16<Float>()
    var a30 = SIMD16<Float>(), a31 = SIMD16<Float>(), a32 = SIMD16<Float>(), a33 = SIMD16<Float>()
    var i = 0
    while i + 16 <= k {
        let v0 = load16(w0 + i), v1 = load16(w1 + i), v2 = load16(w2 + i), v3 = load16(w3 + i)
        let u0 = load16(x0 + i)
        a00.addProduct(u0, v0); a01.addProduct(u0, v1); a02.addProduct(u0, v2); a03.addProduct(u0, v3)
        let u1 = load16(x1 + i)
        a10.addProduct(u1, v0); a11.addProduct(u1, v1); a12.addProduct(u1, v2); a13.addProduct(u1, v3)
        let u2 = load16(x2 + i)
        a20.addProduct(u2, v0); a21.addProduct(u2, v1); a22.addProduct(u2, v2); a23.addProduct(u2, v3)
        let u3 = load16(x3 + i)
        a30.addProduct(u3, v0); a31.addProduct(u3, v1); a32.addProduct(u3, v2); a33.addProduct(u3, v3)
        i += 16
    }
    var s = SIMD16<Float>()
    for (index, accumulator) in [a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33].enumerated() {
        s[index] = horizontalSum(accumulator)
    }
    while i < k {
        for t in 0..<4 {
            for j in 0..<4 { s[t * 4 + j] += x[t * k + i] * panel[j * k + i] }
        }
        i += 1
    }
    for t in 0..<4 {
        for j in 0..<4 { y[t * ldy + j] = s[t * 4 + j] }
    }
}
