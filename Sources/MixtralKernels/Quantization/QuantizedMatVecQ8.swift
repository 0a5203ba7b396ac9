/// Matrix-vector products with the activations quantised to 8 bits, as llama.cpp computes
/// them: x is cut into blocks of 32 and encoded as Q8_0 (the same bytes as
/// llama.cpp's quantize_row_q8_0), and each weight block's dot product with an activation
/// block is an exact integer sum, scaled once by both blocks' scales. For Q8_0 and Q4_0
/// weights; Q4_1 also uses the activation block sums (as llama.cpp's Q8_1 does).
///
/// The result differs from the fp32 path by the activation rounding (relative error of
/// order 1/256 per element); it is what llama.cpp's CPU backend computes, up to the order
/// of the float additions, which makes it the path to use when comparing with llama.cpp.
///
/// Speed: written with Swift SIMD types only, it is slower than the fp32 path here
/// (4096 x 4096 Q8_0, one thread, AVX-512 machine: about 4.0 ms against 2.3 ms); the int8
/// widening and int32 conversion cost more than the fp32 path's conversions. Making it
/// faster needs the VNNI dot-product instruction (vpdpbusd), which Swift reaches only
/// through a C shim.

/// x quantised to Q8_0 blocks, with per-block sums for Q4_1 weights.
public struct Q8Activations: Sendable {
    /// Number of activations (a multiple of 32).
    public private(set) var count: Int = 0
    /// `count / 32` Q8_0 blocks of 34 bytes.
    public private(set) var blocks: [UInt8] = []
    /// d * Σ q of each block (what llama.cpp's block_q8_1 keeps as `s`).
    public private(set) var blockSums: [Float] = []

    public init() {}

    /// Quantises `count` activations (a multiple of 32; otherwise the result is empty).
    public mutating func quantize(_ x: UnsafePointer<Float>, count: Int) {
        guard count >= 0, count % 32 == 0 else {
            self.count = 0
            blocks.removeAll()
            blockSums.removeAll()
            return
        }
        self.count = count
        let blockCount = count / 32
        if blocks.count != blockCount * 34 { blocks = [UInt8](repeating: 0, count: blockCount * 34) }
        if blockSums.count != blockCount { blockSums = [Float](repeating: 0, count: blockCount) }
        blocks.withUnsafeMutableBytes { raw in
            guard let out = raw.baseAddress else { return }
            for b in 0..<blockCount {
                let block = out + 34 * b
                quantizeQ8_0(x + 32 * b, block)
                let q = SIMD32<Int32>(truncatingIfNeeded: UnsafeRawPointer(block + 2).loadUnaligned(as: SIMD32<Int8>.self))
                blockSums[b] = fastHalf(UnsafeRawPointer(block), 0) * Float(q.wrappedSum())
            }
        }
    }
}

/// y[r] = Σ_c w[r, c] * x[c] for the rows in `rows` (y indexed by absolute row), with x
/// given as Q8 activations of length `w.columns`. Q8_0, Q4_0 and Q4_1 weights; other types
/// (or a length mismatch) give NaN rows.
public func matvec(_ w: WeightMatrix, _ x: Q8Activations, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    let blocks = w.columns / 32
    guard x.count == w.columns, w.columns % 32 == 0 else {
        for r in rows { y[r] = .nan }
        return
    }
    x.blocks.withUnsafeBytes { raw in
        guard let activations = raw.baseAddress else {
            for r in rows { y[r] = 0 }
            return
        }
        switch w.type {
        case .q8_0:
            for r in rows { y[r] = dotQ8_0Q8(w.row(r), activations, blocks: blocks) }
        case .q4_0:
            for r in rows { y[r] = dotQ4_0Q8(w.row(r), activations, blocks: blocks) }
        case .q4_1:
            x.blockSums.withUnsafeBufferPointer { sums in
                guard let s = sums.baseAddress else { return }
                for r in rows { y[r] = dotQ4_1Q8(w.row(r), activations, s, blocks: blocks) }
            }
        default:
            for r in rows { y[r] = .nan }
        }
    }
}

/// Exact Σ a_i b_i over 32 int8 pairs, as 16 partial int32 sums. Products of int8 values
/// fit in int16 (|a b| <= 2^14), so they are formed 16 at a time in int16 lanes.
@inline(__always)
func int8Dot32(_ a: SIMD32<Int8>, _ b: SIMD32<Int8>) -> SIMD16<Int32> {
    let p0 = SIMD16<Int16>(truncatingIfNeeded: a.lowHalf) &* SIMD16<Int16>(truncatingIfNeeded: b.lowHalf)
    let p1 = SIMD16<Int16>(truncatingIfNeeded: a.highHalf) &* SIMD16<Int16>(truncatingIfNeeded: b.highHalf)
    return SIMD16<Int32>(truncatingIfNeeded: p0) &+ SIMD16<Int32>(truncatingIfNeeded: p1)
}

/// The 32 4-bit quants of a Q4_0/Q4_1 block (16 bytes at `qs`) as int8, minus `offset`.
@inline(__always)
func nibbles32(_ qs: UnsafeRawPointer, offset: Int8) -> SIMD32<Int8> {
    let bytes = SIMD16<Int8>(truncatingIfNeeded: qs.loadUnaligned(as: SIMD16<UInt8>.self))
    let low = bytes & 0x0F, high = (bytes &>> 4) & 0x0F
    return SIMD32<Int8>(lowHalf: low, highHalf: high) &- SIMD32(repeating: offset)
}

/// Q8_0 weights x Q8_0 activations: Σ_blocks (d_w d_x) Σ q_w q_x.
@inline(__always)
func dotQ8_0Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let wb = row + 34 * b, xb = x + 34 * b
        let sums = int8Dot32((wb + 2).loadUnaligned(as: SIMD32<Int8>.self), (xb + 2).loadUnaligned(as: SIMD32<Int8>.self))
        acc.addProduct(SIMD16<Float>(sums), SIMD16(repeating: fastHalf(wb, 0) * fastHalf(xb, 0)))
    }
    return acc.sum()
}

/// Q4_0 weights x Q8_0 activations: Σ_blocks (d_w d_x) Σ (q_w - 8) q_x.
@inline(__always)
func dotQ4_0Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let wb = row + 18 * b, xb = x + 34 * b
        let sums = int8Dot32(nibbles32(wb + 2, offset: 8), (xb + 2).loadUnaligned(as: SIMD32<Int8>.self))
        acc.addProduct(SIMD16<Float>(sums), SIMD16(repeating: fastHalf(wb, 0) * fastHalf(xb, 0)))
    }
    return acc.sum()
}

/// Q4_1 weights x Q8 activations: Σ_blocks (d_w d_x) Σ q_w q_x + m_w s_x, s_x = d_x Σ q_x.
@inline(__always)
func dotQ4_1Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, _ blockSums: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offsets: Float = 0
    for b in 0..<blocks {
        let wb = row + 20 * b, xb = x + 34 * b
        let sums = int8Dot32(nibbles32(wb + 4, offset: 0), (xb + 2).loadUnaligned(as: SIMD32<Int8>.self))
        acc.addProduct(SIMD16<Float>(sums), SIMD16(repeating: fastHalf(wb, 0) * fastHalf(xb, 0)))
        offsets += fastHalf(wb, 2) * blockSums[b]
    }
    return acc.sum() + offsets
}
