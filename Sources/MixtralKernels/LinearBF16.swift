import MixtralCKernels

/// Multi-token products of bf16 weights with activations rounded to bf16 (round to
/// nearest even), fp32 accumulation. Activations are converted once per job; weight
/// panels of 32 rows are packed once and multiplied with all tokens, 12 at a time.
/// Without AVX512-BF16 (the table has no `bf16_gemm_panel`) the same rounded values go
/// through the fp32 kernels.
func linearBF16Activations(_ jobs: [LinearJob], pool: ComputePool) {
    let tile = MX_BF16_TOKEN_TILE
    let panelRows = MX_BF16_PANEL_ROWS
    // Activations as bf16, tokens padded with zero rows to a multiple of the token tile.
    let rounded: [UnsafeMutablePointer<UInt16>] = jobs.map { job in
        let k = job.w.columns
        let padded = (job.tokens + tile - 1) / tile * tile
        let buffer = allocateCacheAligned(UInt16.self, count: padded * k)
        buffer.initialize(repeating: 0, count: padded * k)
        for i in 0..<(job.tokens * k) { buffer[i] = bfloat16Bits(job.x[i]) }
        return buffer
    }
    defer { rounded.forEach { $0.deallocate() } }

    guard let gemm = pool.kernels.functions.bf16_gemm_panel else {
        // Portable path: the rounded activations back in fp32, through the fp32 kernels.
        var widened: [UnsafeMutablePointer<Float>] = []
        var fallback: [LinearJob] = []
        for (job, bits) in zip(jobs, rounded) {
            let count = job.tokens * job.w.columns
            let values = allocateCacheAligned(Float.self, count: count)
            for i in 0..<count { values[i] = floatFromBFloat16Bits(bits[i]) }
            widened.append(values)
            fallback.append(LinearJob(values, tokens: job.tokens, job.w, job.y))
        }
        linear(fallback, pool: pool)
        widened.forEach { $0.deallocate() }
        return
    }

    var chunks: [(job: Int, firstRow: Int)] = []
    for (index, job) in jobs.enumerated() {
        for row in stride(from: 0, to: job.w.rows, by: panelRows) { chunks.append((index, row)) }
    }
    pool.run(parts: chunks.count) { part in
        let (index, firstRow) = chunks[part]
        let job = jobs[index]
        let k = job.w.columns
        let panel = allocateCacheAligned(UInt16.self, count: panelRows * k)
        defer { panel.deallocate() }
        let padded = (job.tokens + tile - 1) / tile * tile
        gemm(job.w.row(firstRow).assumingMemoryBound(to: UInt16.self), job.w.rowBytes / 2,
             Int32(min(panelRows, job.w.rows - firstRow)), Int32(k),
             rounded[index], Int32(job.tokens), Int32(padded),
             job.y + firstRow, job.w.rows, panel)
    }
}
