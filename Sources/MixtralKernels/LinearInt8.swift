import MixtralCKernels

/// The kernels' codes for the 8-bit block types.
func int8Type(_ type: WeightType) -> Int32 {
    switch type {
    case .q8_0: return Int32(MX_INT8_Q8_0)
    case .q4_0: return Int32(MX_INT8_Q4_0)
    case .q4_K: return Int32(MX_INT8_Q4_K)
    case .q5_K: return Int32(MX_INT8_Q5_K)
    case .q6_K: return Int32(MX_INT8_Q6_K)
    default: return Int32(MX_INT8_Q4_1)
    }
}

/// Which jobs read the same input: the gate and up products of a feed-forward, or of all
/// experts that a token picked, share one, which is then quantised once.
struct SharedInputs {
    /// For every distinct input, the first job that reads it.
    private(set) var firstJobs: [Int] = []
    /// For every job, its input's index in `firstJobs`.
    private(set) var indexOfJob: [Int] = []

    init(_ jobs: [LinearJob]) {
        struct Input: Hashable {
            let x: UnsafePointer<Float>
            let tokens: Int
            let columns: Int
        }
        var index: [Input: Int] = [:]
        for (j, job) in jobs.enumerated() {
            let input = Input(x: job.x, tokens: job.tokens, columns: job.w.columns)
            if let known = index[input] {
                indexOfJob.append(known)
            } else {
                index[input] = firstJobs.count
                indexOfJob.append(firstJobs.count)
                firstJobs.append(j)
            }
        }
    }
}

/// Activation rows quantised by the table's `q8_quantize`: llama.cpp's Q8_0 (q, d) and
/// Q8_1 (s).
struct QuantizedActivations {
    let q: UnsafeMutablePointer<Int8>
    let d: UnsafeMutablePointer<Float>
    let s: UnsafeMutablePointer<Float>

    init(_ x: UnsafePointer<Float>, tokens: Int, columns k: Int, kernels: mx_kernels) {
        q = allocateCacheAligned(Int8.self, count: tokens * k)
        d = allocateCacheAligned(Float.self, count: tokens * (k / 32))
        s = allocateCacheAligned(Float.self, count: tokens * (k / 32))
        for t in 0..<tokens {
            kernels.q8_quantize(x + t * k, Int32(k), q + t * k, d + t * (k / 32), s + t * (k / 32))
        }
    }

    func deallocate() {
        q.deallocate()
        d.deallocate()
        s.deallocate()
    }
}

/// Few-token products of Q8_0/Q4_0/Q4_1 weights with 8-bit activations, as llama.cpp's
/// vec_dot_q8_0_q8_0 / q4_0_q8_0 / q4_1_q8_1 compute them: each group of four weight rows
/// is read once and multiplied with every token. Decode runs at memory bandwidth this way.
func linearInt8Rows(_ jobs: [LinearJob], pool: ComputePool) {
    let kernels = pool.kernels.functions
    let inputs = SharedInputs(jobs)
    let quantised = inputs.firstJobs.map { jobs[$0] }.map {
        QuantizedActivations($0.x, tokens: $0.tokens, columns: $0.w.columns, kernels: kernels)
    }
    defer { quantised.forEach { $0.deallocate() } }
    let activations = inputs.indexOfJob.map { quantised[$0] }
    // Groups of four rows; chunks shrink towards the end (see `guidedChunks`).
    let chunks = guidedChunks(jobs, threads: pool.threadCount, granularity: 4)
    pool.run(parts: chunks.count) { part in
        let (index, rows) = chunks[part]
        let job = jobs[index]
        let x = activations[index]
        kernels.q8_matmul(job.w.row(rows.lowerBound), job.w.rowBytes, int8Type(job.w.type), Int32(rows.count),
                          Int32(job.w.columns), x.q, x.d, x.s, Int32(job.tokens), job.y + rows.lowerBound, job.w.rows)
    }
}

/// Multi-token products of Q8_0/Q4_0/Q4_1/Q4_K/Q5_K/Q6_K weights with activations quantised to
/// 8 bits per block of 32, as llama.cpp's Q8_0 activations: activations are quantised once
/// per distinct input, weight panels (the table's `int8_panel_rows` rows) are unpacked once and
/// multiplied with all tokens, `int8_token_tile` at a time.
func linearInt8Activations(_ jobs: [LinearJob], pool: ComputePool) {
    let kernels = pool.kernels.functions
    let tile = Int(kernels.int8_token_tile)
    let panelRows = Int(kernels.int8_panel_rows)
    struct Activations {
        let quants: UnsafeMutablePointer<UInt8>
        let scales: UnsafeMutablePointer<Float>
        /// Σ of each 16 quants, summed once here instead of in every panel.
        let sums: UnsafeMutablePointer<Int32>
    }
    let inputs = SharedInputs(jobs)
    let quantised: [Activations] = inputs.firstJobs.map { jobs[$0] }.map { job in
        let k = job.w.columns
        let padded = (job.tokens + tile - 1) / tile * tile
        let quants = allocateCacheAligned(UInt8.self, count: padded * k)
        let scales = allocateCacheAligned(Float.self, count: padded * (k / 32))
        let sums = allocateCacheAligned(Int32.self, count: padded * (k / 16))
        kernels.int8_quantize_activations(job.x, Int32(job.tokens), Int32(padded), Int32(k), quants, scales, sums)
        return Activations(quants: quants, scales: scales, sums: sums)
    }
    defer { quantised.forEach { $0.quants.deallocate(); $0.scales.deallocate(); $0.sums.deallocate() } }
    let activations = inputs.indexOfJob.map { quantised[$0] }

    var chunks: [(job: Int, firstRow: Int)] = []
    for (index, job) in jobs.enumerated() {
        for row in stride(from: 0, to: job.w.rows, by: panelRows) { chunks.append((index, row)) }
    }
    pool.run(parts: chunks.count) { part in
        let (index, firstRow) = chunks[part]
        let job = jobs[index]
        let k = job.w.columns
        let panel = UnsafeMutableRawPointer.allocate(byteCount: kernels.int8_panel_bytes(Int32(k)), alignment: 64)
        defer { panel.deallocate() }
        let rows = min(panelRows, job.w.rows - firstRow)
        let type = int8Type(job.w.type)
        kernels.int8_pack_panel(job.w.row(firstRow), job.w.rowBytes, type, Int32(rows), Int32(k), panel)
        let padded = (job.tokens + tile - 1) / tile * tile
        let x = activations[index]
        kernels.int8_gemm_panel(panel, type, Int32(rows), Int32(k), x.quants, x.scales, x.sums, Int32(job.tokens),
                                Int32(padded), job.y + firstRow, job.w.rows)
    }
}

/// Few-token products of Q4_K/Q5_K/Q6_K weights with activations quantised to llama.cpp's
/// Q8_K (vec_dot_q*_K_q8_K), one token at a time, on the table's `q8k_matvec`.
func linearKQuantRows(_ jobs: [LinearJob], pool: ComputePool) {
    let inputs = SharedInputs(jobs)
    let quantised: [[Q8KActivations]] = inputs.firstJobs.map { jobs[$0] }.map { job in
        (0..<job.tokens).map { t in
            var q = Q8KActivations()
            q.quantize(job.x + t * job.w.columns, count: job.w.columns, kernels: pool.kernels)
            return q
        }
    }
    let activations = inputs.indexOfJob.map { quantised[$0] }
    let chunks = guidedChunks(jobs, threads: pool.threadCount, granularity: 4)
    pool.run(parts: chunks.count) { part in
        let (index, rows) = chunks[part]
        let job = jobs[index]
        for t in 0..<job.tokens {
            matvec(job.w, activations[index][t], job.y + t * job.w.rows, rows: rows, kernels: pool.kernels)
        }
    }
}
