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
/// Speed (4096 x 4096, one thread, this AVX-512 machine, best of 30 under load):
/// Q8_0 0.94 ms, Q4_0 1.1 ms, Q4_1 1.1 ms, against 2.2-2.6 ms for the fp32 Swift kernels in
/// QuantizedMatVec.swift and 0.9 ms for main's AVX-512 C kernels behind `dotRow`. The int8
/// products use only same-width SIMD lane operations (`pairSums`), which compile to plain
/// vector instructions; Swift's 8-bit widening conversions would be calls.

/// x quantised to Q8_0 blocks, with per-block sums for Q4_1 weights.
public struct Q8Activations: Sendable {
    /// Number of activations (a multiple of 32).
    public private(set) var count: Int = 0
    /// `count / 32` Q8_0 blocks of 34 bytes.
    public private(set) var blocks: [UInt8] = []
    /// d * Σ q of each block (what llama.cpp's block_q8_1 keeps as `s`).
    public private(set) var blockSums: [Float] = []
    /// Σ q of each block.
    public private(set) var quantSums: [Int32] = []

    public init() {}

    /// Quantises `count` activations (a multiple of 32; otherwise the result is empty).
    public mutating func quantize(_ x: UnsafePointer<Float>, count: Int) {
        guard count >= 0, count % 32 == 0 else {
            self.count = 0
            blocks.removeAll()
            blockSums.removeAll()
            quantSums.removeAll()
            return
        }
        self.count = count
        let blockCount = count / 32
        if blocks.count != blockCount * 34 { blocks = [UInt8](repeating: 0, count: blockCount * 34) }
        if blockSums.count != blockCount { blockSums = [Float](repeating: 0, count: blockCount) }
        if quantSums.count != blockCount { quantSums = [Int32](repeating: 0, count: blockCount) }
        blocks.withUnsafeMutableBytes { raw in
            guard let out = raw.baseAddress else { return }
            for b in 0..<blockCount {
                let block = out + 34 * b
                quantizeQ8_0(x + 32 * b, block)
                let q = SIMD32<Int32>(truncatingIfNeeded: UnsafeRawPointer(block + 2).loadUnaligned(as: SIMD32<Int8>.self))
                quantSums[b] = q.wrappedSum()
                blockSums[b] = fastHalf(UnsafeRawPointer(block), 0) * Float(quantSums[b])
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
            x.quantSums.withUnsafeBufferPointer { sums in
                guard let s = sums.baseAddress else { return }
                for r in rows { y[r] = dotQ4_0Q8(w.row(r), activations, s, blocks: blocks) }
            }
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

/// Σ a_i b_i over the 32 int8 values packed two to an Int16 lane in `a` and `b` (element 2j
/// in the low byte of lane j, 2j+1 in the high byte), as 8 exact int32 partial sums. Bytes
/// are sign-extended with shifts and multiplied in int16 lanes, where the sum of two
/// products fits as long as one factor is in -127...127 (activation quants always are).
/// Only same-width lane operations are used: Swift's SIMD conversions from 8-bit lanes are
/// calls, these compile to vpsllw/vpsraw/vpmullw/vpaddw/vpsrad.
@inline(__always)
func pairSums(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
    let aLow = (a &<< 8) &>> 8, aHigh = a &>> 8
    let bLow = (b &<< 8) &>> 8, bHigh = b &>> 8
    let products = aLow &* bLow &+ aHigh &* bHigh
    let words = unsafeBitCast(products, to: SIMD8<Int32>.self)
    return ((words &<< 16) &>> 16) &+ (words &>> 16)
}

/// The 32 nibbles of a Q4_0/Q4_1 block (16 bytes at `qs`: low nibbles are weights 0..<16,
/// high nibbles 16..<32) as bytes 0...15 in the pair layout of `pairSums`.
@inline(__always)
func nibblePairs(_ qs: UnsafeRawPointer) -> SIMD16<Int16> {
    let bytes = qs.loadUnaligned(as: SIMD8<Int16>.self)
    let mask = SIMD8<Int16>(repeating: 0x0F0F)
    return SIMD16(lowHalf: bytes & mask, highHalf: (bytes &>> 4) & mask)
}

@inline(__always)
func quantPairs(_ block: UnsafeRawPointer) -> SIMD16<Int16> {
    (block + 2).loadUnaligned(as: SIMD16<Int16>.self)
}

/// Q8_0 weights x Q8_0 activations: Σ_blocks (d_w d_x) Σ q_w q_x.
@inline(__always)
func dotQ8_0Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, blocks: Int) -> Float {
    var acc = SIMD8<Float>()
    for b in 0..<blocks {
        let wb = row + 34 * b, xb = x + 34 * b
        let sums = pairSums(quantPairs(wb), quantPairs(xb))
        acc.addProduct(SIMD8<Float>(sums), SIMD8(repeating: fastHalf(wb, 0) * fastHalf(xb, 0)))
    }
    return acc.sum()
}

/// Q4_0 weights x Q8_0 activations: Σ_blocks (d_w d_x) (Σ q_w q_x - 8 Σ q_x).
@inline(__always)
func dotQ4_0Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, _ quantSums: UnsafePointer<Int32>, blocks: Int) -> Float {
    var acc = SIMD8<Float>()
    var offsets: Float = 0
    for b in 0..<blocks {
        let wb = row + 18 * b, xb = x + 34 * b
        let scale = fastHalf(wb, 0) * fastHalf(xb, 0)
        acc.addProduct(SIMD8<Float>(pairSums(nibblePairs(wb + 2), quantPairs(xb))), SIMD8(repeating: scale))
        offsets += scale * Float(-8 * quantSums[b])
    }
    return acc.sum() + offsets
}

/// Q4_1 weights x Q8 activations: Σ_blocks (d_w d_x) Σ q_w q_x + m_w s_x, s_x = d_x Σ q_x.
@inline(__always)
func dotQ4_1Q8(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, _ blockSums: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD8<Float>()
    var offsets: Float = 0
    for b in 0..<blocks {
        let wb = row + 20 * b, xb = x + 34 * b
        acc.addProduct(SIMD8<Float>(pairSums(nibblePairs(wb + 4), quantPairs(xb))),
                       SIMD8(repeating: fastHalf(wb, 0) * fastHalf(xb, 0)))
        offsets += fastHalf(wb, 2) * blockSums[b]
    }
    return acc.sum() + offsets
}
