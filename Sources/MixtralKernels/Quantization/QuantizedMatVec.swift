import MixtralCKernels

/// Matrix-vector products read straight from GGML blocks (no dequantised copy of the
/// weights), fp32 activations and fp32 accumulation.
///
/// Q8_0, Q4_0 and Q4_1 rows run on the kernel table's block dot products (per block the
/// integer-valued quants times x, scaled once: `d Σ q x`, `d Σ (q - 8) x`,
/// `d Σ q x + m Σ x`). Other types are dequantised 256 weights at a time, then dotted.
/// Results agree with dequantize-then-dot up to fp32 rounding (the order of additions
/// differs), not bit for bit.

/// y[r] = Σ_c w[r, c] * x[c] for every row r of `w`. `x` holds `w.columns` Floats.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                   kernels: KernelTable = .default) {
    matvec(w, x, y, rows: 0..<w.rows, kernels: kernels)
}

/// y[r] = Σ_c w[r, c] * x[c] for the rows in `rows` only (to split the work across threads;
/// y is indexed by absolute row).
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>,
                   kernels: KernelTable = .default) {
    guard w.columns % w.type.blockSize == 0 else {
        // A WeightMatrix made from a checked file never has partial blocks.
        for r in rows { y[r] = .nan }
        return
    }
    for r in rows { y[r] = dotRow(w.type, w.row(r), x, count: w.columns, kernels.functions) }
}

/// Dot product of one weight row of `count` elements (a whole number of blocks) with x.
func dotRow(_ type: WeightType, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int, _ kernels: mx_kernels) -> Float {
    guard count % type.blockSize == 0 else { return .nan }
    switch type {
    case .q8_0: return kernels.dot_q8_0(row, x, Int32(count / 32))
    case .q4_0: return kernels.dot_q4_0(row, x, Int32(count / 32))
    case .q4_1: return kernels.dot_q4_1(row, x, Int32(count / 32))
    case .f32: return kernels.dot_f32(row.assumingMemoryBound(to: Float.self), x, Int32(count))
    case .f16: return kernels.dot_f16(row.assumingMemoryBound(to: UInt16.self), x, Int32(count))
    default:
        // Dequantise in chunks of 256 (a multiple of every block size), then dot.
        let chunk = 256
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buffer in
            guard let tmp = buffer.baseAddress else { return .nan }
            var total: Float = 0
            var done = 0
            while done < count {
                let n = Swift.min(chunk, count - done)
                let byteOffset = (done / type.blockSize) * type.blockBytes
                dequantizeRow(type, row + byteOffset, tmp, count: n)
                total += kernels.dot_f32(tmp, x + done, Int32(n))
                done += n
            }
            return total
        }
    }
}
