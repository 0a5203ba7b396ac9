import MixtralCKernels

/// Whether this CPU runs the AVX512-VNNI 8-bit kernels (checked once).
public let cpuHasAVX512VNNI = mx_cpu_has_avx512vnni() != 0

/// Multi-token products of Q8_0/Q4_0 weights with activations quantised to 8 bits per
/// block of 32, as llama.cpp computes them: activations are quantised once per job, weight
/// panels of 16 rows are unpacked to signed bytes once and multiplied with all tokens, 8 at
/// a time, with vpdpbusd. (Callers check `cpuHasAVX512VNNI`.)
func linearInt8Activations(_ jobs: [LinearJob], pool: ComputePool) {
    let tile = MX_INT8_TOKEN_TILE
    let panelRows = MX_INT8_PANEL_ROWS
    struct Activations {
        let quants: UnsafeMutablePointer<UInt8>
        let scales: UnsafeMutablePointer<Float>
    }
    let activations: [Activations] = jobs.map { job in
        let k = job.w.columns
        let padded = (job.tokens + tile - 1) / tile * tile
        let quants = UnsafeMutablePointer<UInt8>.allocate(capacity: padded * k)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: padded * (k / 32))
        quants.initialize(repeating: 128, count: padded * k)  // 128 is a zero activation
        scales.initialize(repeating: 0, count: padded * (k / 32))
        mx_int8_quantize_activations(job.x, Int32(job.tokens), Int32(k), quants, scales)
        return Activations(quants: quants, scales: scales)
    }
    defer { activations.forEach { $0.quants.deallocate(); $0.scales.deallocate() } }

    var chunks: [(job: Int, firstRow: Int)] = []
    for (index, job) in jobs.enumerated() {
        for row in stride(from: 0, to: job.w.rows, by: panelRows) { chunks.append((index, row)) }
    }
    pool.run(parts: chunks.count) { part in
        let (index, firstRow) = chunks[part]
        let job = jobs[index]
        let k = job.w.columns
        let panel = UnsafeMutableRawPointer.allocate(byteCount: mx_int8_panel_bytes(Int32(k)), alignment: 64)
        defer { panel.deallocate() }
        let rows = min(panelRows, job.w.rows - firstRow)
        mx_int8_pack_panel(job.w.row(firstRow), job.w.rowBytes, Int32(job.w.type == .q8_0 ? MX_INT8_Q8_0 : MX_INT8_Q4_0),
                           Int32(rows), Int32(k), panel)
        let padded = (job.tokens + tile - 1) / tile * tile
        mx_int8_gemm_panel(panel, Int32(rows), Int32(k), activations[index].quants, activations[index].scales,
                           Int32(job.tokens), Int32(padded), job.y + firstRow, job.w.rows)
    }
}
