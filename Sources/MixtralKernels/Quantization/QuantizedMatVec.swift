import MixtralCKernels

/// Matrix-vector products read straight from GGML blocks (no dequantised copy of the
/// weights), fp32 activations and fp32 accumulation.
///
/// Per 32-weight block the kernels form the block's dot product with integer-valued quants
/// in SIMD16 lanes and scale it once: Q8_0 and Q4_0 `d * Σ q x`; Q4_1 `d * Σ q x + m * Σ x`.
/// Other types fall back to dequantising one row at a time into a small buffer.
/// Results agree with dequantize-then-dot up to fp32 rounding (the order of additions
/// differs), not bit for bit.

/// y[r] = Σ_c w[r, c] * x[c] for every row r of `w`. `x` holds `w.columns` Floats.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    matvec(w, x, y, rows: 0..<w.rows)
}

/// y[r] = Σ_c w[r, c] * x[c] for the rows in `rows` only (to split the work across threads;
/// y is indexed by absolute row).
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    let k = w.columns
    guard k % w.type.blockSize == 0 else {
        // A WeightMatrix made from a checked file never has partial blocks.
        for r in rows { y[r] = .nan }
        return
    }
    switch w.type {
    case .q8_0:
        for r in rows { y[r] = dotQ8_0(w.row(r), x, blocks: k / 32) }
    case .q4_0:
        for r in rows { y[r] = dotQ4_0(w.row(r), x, blocks: k / 32) }
    case .q4_1:
        // Σ x per block is shared by all rows.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k / 32) { sums in
            guard let blockSums = sums.baseAddress else { return }
            for b in 0..<k / 32 { blockSums[b] = blockSum(x + 32 * b) }
            for r in rows { y[r] = dotQ4_1(w.row(r), x, blockSums, blocks: k / 32) }
        }
    default:
        for r in rows { y[r] = dotRow(w.type, w.row(r), x, count: k) }
    }
}

/// Whether the AVX-512 block kernels (MixtralCKernels/QuantDot.c) run on this CPU.
let cpuHasAVX512F = mx_cpu_has_avx512f() != 0

/// Dot product of one weight row of `count` elements (a whole number of blocks) with x.
public func dotRow(_ type: WeightType, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, count: Int) -> Float {
    guard count % type.blockSize == 0 else { return .nan }
    if cpuHasAVX512F {
        switch type {
        case .q8_0: return mx_dot_q8_0(row, x, Int32(count / 32))
        case .q4_0: return mx_dot_q4_0(row, x, Int32(count / 32))
        case .q4_1: return mx_dot_q4_1(row, x, Int32(count / 32))
        default: break
        }
    }
    switch type {
    case .q8_0:
        return dotQ8_0(row, x, blocks: count / 32)
    case .q4_0:
        return dotQ4_0(row, x, blocks: count / 32)
    case .q4_1:
        // Per lane: d * (q x) + m * x, so the lanes add up to d * Σ q x + m * Σ x.
        var sum = SIMD16<Float>()
        for b in 0..<count / 32 {
            let block = row + 20 * b
            sum += blockDot4Bit(block + 4, x + 32 * b, offset: 0) * SIMD16(repeating: fastHalf(block, 0))
                + (loadFloat16Lanes(x + 32 * b) + loadFloat16Lanes(x + 32 * b + 16)) * SIMD16(repeating: fastHalf(block, 2))
        }
        return sum.sum()
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
                var acc = SIMD16<Float>()
                var i = 0
                while i + 16 <= n {
                    acc.addProduct(loadFloat16Lanes(tmp + i), loadFloat16Lanes(x + done + i))
                    i += 16
                }
                var partial = acc.sum()
                while i < n {
                    partial += tmp[i] * x[done + i]
                    i += 1
                }
                total += partial
                done += n
            }
            return total
        }
    }
}

// MARK: - Block kernels

@inline(__always)
func loadFloat16Lanes(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// A half scale as Float. Uses the hardware conversion where there is one (NaN payloads do
/// not matter for arithmetic).
@inline(__always)
func fastHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    #if arch(x86_64) && os(macOS)
    return loadHalf(p, offset)
    #else
    return Float(Float16(bitPattern: loadUInt16(p, offset)))
    #endif
}

/// Σ_j (nibble_j - offset) * x_j over one 32-weight block of 4-bit quants (16 bytes at
/// `qs`: low nibbles are weights 0..<16, high nibbles 16..<32), per lane.
@inline(__always)
func blockDot4Bit(_ qs: UnsafeRawPointer, _ x: UnsafePointer<Float>, offset: Float) -> SIMD16<Float> {
    let bytes = qs.loadUnaligned(as: SIMD16<UInt8>.self)
    let low = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: bytes & 0x0F)) - SIMD16(repeating: offset)
    let high = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: bytes &>> 4)) - SIMD16(repeating: offset)
    var s = low * loadFloat16Lanes(x)
    s.addProduct(high, loadFloat16Lanes(x + 16))
    return s
}

@inline(__always)
func blockSum(_ x: UnsafePointer<Float>) -> Float {
    (loadFloat16Lanes(x) + loadFloat16Lanes(x + 16)).sum()
}

/// Q8_0 rows: Σ_blocks d * Σ q x.
@inline(__always)
func dotQ8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let block = row + 34 * b
        let xb = x + 32 * b
        let q0 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: (block + 2).loadUnaligned(as: SIMD16<Int8>.self)))
        let q1 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: (block + 18).loadUnaligned(as: SIMD16<Int8>.self)))
        var s = q0 * loadFloat16Lanes(xb)
        s.addProduct(q1, loadFloat16Lanes(xb + 16))
        acc.addProduct(SIMD16(repeating: fastHalf(block, 0)), s)
    }
    return acc.sum()
}

/// Q4_0 rows: Σ_blocks d * Σ (q - 8) x.
@inline(__always)
func dotQ4_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let block = row + 18 * b
        acc.addProduct(SIMD16(repeating: fastHalf(block, 0)), blockDot4Bit(block + 2, x + 32 * b, offset: 8))
    }
    return acc.sum()
}

/// Q4_1 rows: Σ_blocks (d * Σ q x + m * Σ x), with Σ x per block precomputed.
@inline(__always)
func dotQ4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ blockSums: UnsafePointer<Float>,
             blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offsets: Float = 0
    for b in 0..<blocks {
        let block = row + 20 * b
        acc.addProduct(SIMD16(repeating: fastHalf(block, 0)), blockDot4Bit(block + 4, x + 32 * b, offset: 0))
        offsets += fastHalf(block, 2) * blockSums[b]
    }
    return acc.sum() + offsets
}
