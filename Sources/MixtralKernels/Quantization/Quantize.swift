/// Quantisation of Float rows to GGML block formats, bit-exact with ggml's reference
/// quantizers as llama-quantize runs them. For Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 that is also
/// `gguf.quants.quantize` from the `gguf` Python package, except in one corner: for a
/// block of zeros gguf-py may store the scale d (Q4_0, Q5_0) or min m (Q4_1, Q5_1) as +0
/// where ggml stores -0 (ggml keeps +0 as the initial extreme, gguf-py takes element 0);
/// here ggml's choice is followed (checked by linking ggml's quantize_row_*_ref). Q4_K,
/// Q5_K and Q6_K are in QuantizeKQuants.swift. Block layouts: see Dequantize.swift.

/// Why a row cannot be quantised.
public enum QuantizationError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The engine has no quantizer for this type (kept for types added later).
    case unsupportedType(WeightType)
    /// `count` is not a whole number of blocks.
    case partialBlock(type: WeightType, count: Int)

    public var description: String {
        switch self {
        case let .unsupportedType(type):
            return "quantising to \(type.rawValue) is not supported"
        case let .partialBlock(type, count):
            return "\(count) weights are not a whole number of \(type.rawValue) blocks of \(type.blockSize)"
        }
    }
}

/// The weight types `quantizeRow` can write (all of them).
public let quantizableWeightTypes: Set<WeightType> = Set(WeightType.allCases)

/// Quantises `count` Floats from `src` into `type.byteCount(elements: count)` bytes at `dst`
/// (`dst` needs no particular alignment). Non-finite inputs do not trap; their encoding is
/// unspecified (the reference leaves it undefined too).
public func quantizeRow(_ type: WeightType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer,
                        count: Int) throws(QuantizationError) {
    guard count >= 0, count % type.blockSize == 0 else { throw .partialBlock(type: type, count: count) }
    switch type {
    case .f32:
        for i in 0..<count { storeUInt32(dst, 4 * i, src[i].bitPattern) }
    case .f16:
        for i in 0..<count { storeUInt16(dst, 2 * i, halfBits(src[i])) }
    case .bf16:
        for i in 0..<count { storeUInt16(dst, 2 * i, bfloat16Bits(src[i])) }
    case .q8_0:
        for b in 0..<count / 32 { quantizeQ8_0(src + 32 * b, dst + 34 * b) }
    case .q4_0:
        for b in 0..<count / 32 { quantizeQ4_0(src + 32 * b, dst + 18 * b) }
    case .q4_K:
        for b in 0..<count / 256 { quantizeQ4_K(src + 256 * b, dst + 144 * b) }
    case .q5_K:
        for b in 0..<count / 256 { quantizeQ5_K(src + 256 * b, dst + 176 * b) }
    case .q6_K:
        for b in 0..<count / 256 { quantizeQ6_K(src + 256 * b, dst + 210 * b) }
    case .q4_1:
        for b in 0..<count / 32 { quantizeQ4_1(src + 32 * b, dst + 20 * b) }
    case .q5_0:
        for b in 0..<count / 32 { quantizeQ5_0(src + 32 * b, dst + 22 * b) }
    case .q5_1:
        for b in 0..<count / 32 { quantizeQ5_1(src + 32 * b, dst + 24 * b) }
    case .nf4:
        for b in 0..<count / 64 { NF4.quantizeBlock(src + 64 * b, dst + 36 * b) }
    }
}

@inline(__always)
func storeUInt16(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt16) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
}

@inline(__always)
func storeUInt32(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt32) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self)
}

/// Q8_0: d = max|x| / 127; q = round(x / d) (halves away from zero), computed as
/// x * (1/d) in Float as the reference does; d stored as half.
@inline(__always)
func quantizeQ8_0(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    var amax: Float = 0
    for i in 0..<32 { amax = Swift.max(amax, abs(x[i])) }
    let d = amax / 127
    let id: Float = d == 0 ? 0 : 1 / d
    storeUInt16(block, 0, halfBits(d))
    for i in 0..<32 {
        let q = (x[i] * id).rounded(.toNearestOrAwayFromZero)
        let clamped = q.isNaN ? 0 : Swift.min(Swift.max(q, -128), 127)
        block.storeBytes(of: UInt8(bitPattern: Int8(clamped)), toByteOffset: 2 + i, as: UInt8.self)
    }
}

/// Q4_0: d = m / -8 where m is the element of largest magnitude (the first one on ties,
/// +0 for a block of zeros), keeping its sign; q = min(15, trunc(x * (1/d) + 8.5)); d
/// stored as half.
@inline(__always)
func quantizeQ4_0(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    // As ggml's reference: an all-zero block keeps extreme = +0, so d = -0.
    var amax: Float = 0
    var extreme: Float = 0
    for i in 0..<32 where abs(x[i]) > amax {
        amax = abs(x[i])
        extreme = x[i]
    }
    let d = extreme / -8
    let id: Float = d == 0 ? 0 : 1 / d
    storeUInt16(block, 0, halfBits(d))
    func nibble(_ v: Float) -> UInt8 {
        let shifted = v * id + 8.5
        guard !shifted.isNaN else { return 0 }
        return UInt8(Swift.min(Swift.max(shifted, 0), 15).rounded(.towardZero))
    }
    for j in 0..<16 {
        let byte = nibble(x[j]) | (nibble(x[j + 16]) << 4)
        block.storeBytes(of: byte, toByteOffset: 2 + j, as: UInt8.self)
    }
}

/// Smallest and largest element of a 32-weight block.
@inline(__always)
func blockRange(_ x: UnsafePointer<Float>) -> (min: Float, max: Float) {
    var lo = x[0], hi = x[0]
    for i in 1..<32 {
        lo = Swift.min(lo, x[i])
        hi = Swift.max(hi, x[i])
    }
    return (lo, hi)
}

/// trunc(v) clamped to 0...maxLevel, as the reference's float -> uint8 conversion and clip
/// (NaN gives 0).
@inline(__always)
func truncatedLevel(_ v: Float, maxLevel: Float) -> UInt8 {
    guard !v.isNaN else { return 0 }
    return UInt8(Swift.min(Swift.max(v, 0), maxLevel).rounded(.towardZero))
}

/// Q4_1: d = (max - min) / 15, m = min; q = min(15, trunc((x - min) * (1/d) + 0.5)).
@inline(__always)
func quantizeQ4_1(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    let (lo, hi) = blockRange(x)
    let d = (hi - lo) / 15
    let id: Float = d == 0 ? 0 : 1 / d
    storeUInt16(block, 0, halfBits(d))
    storeUInt16(block, 2, halfBits(lo))
    for j in 0..<16 {
        let q0 = truncatedLevel((x[j] - lo) * id + 0.5, maxLevel: 15)
        let q1 = truncatedLevel((x[j + 16] - lo) * id + 0.5, maxLevel: 15)
        block.storeBytes(of: q0 | (q1 << 4), toByteOffset: 4 + j, as: UInt8.self)
    }
}

/// Stores 32 five-bit levels as Q5_0/Q5_1 do: bit 4 of level i is bit i of the u32 `qh` at
/// `qhOffset`; the low 4 bits go in nibbles as in Q4_0 (16 bytes after qh).
@inline(__always)
func storeFiveBitLevels(_ q: SIMD32<UInt8>, _ block: UnsafeMutableRawPointer, qhOffset: Int) {
    var qh: UInt32 = 0
    for i in 0..<32 { qh |= UInt32(q[i] >> 4) << UInt32(i) }
    storeUInt32(block, qhOffset, qh)
    for j in 0..<16 {
        block.storeBytes(of: (q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4), toByteOffset: qhOffset + 4 + j, as: UInt8.self)
    }
}

/// Q5_0: d = m / -16 for the element m of largest magnitude (the first on ties);
/// q = min(31, trunc(x * (1/d) + 16.5)).
@inline(__always)
func quantizeQ5_0(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    var amax: Float = 0, extreme: Float = 0  // as Q4_0
    for i in 0..<32 where abs(x[i]) > amax {
        amax = abs(x[i])
        extreme = x[i]
    }
    let d = extreme / -16
    let id: Float = d == 0 ? 0 : 1 / d
    storeUInt16(block, 0, halfBits(d))
    var q = SIMD32<UInt8>()
    for i in 0..<32 { q[i] = truncatedLevel(x[i] * id + 16.5, maxLevel: 31) }
    storeFiveBitLevels(q, block, qhOffset: 2)
}

/// Q5_1: d = (max - min) / 31, m = min; q = min(31, trunc((x - min) * (1/d) + 0.5)).
@inline(__always)
func quantizeQ5_1(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    let (lo, hi) = blockRange(x)
    let d = (hi - lo) / 31
    let id: Float = d == 0 ? 0 : 1 / d
    storeUInt16(block, 0, halfBits(d))
    storeUInt16(block, 2, halfBits(lo))
    var q = SIMD32<UInt8>()
    for i in 0..<32 { q[i] = truncatedLevel((x[i] - lo) * id + 0.5, maxLevel: 31) }
    storeFiveBitLevels(q, block, qhOffset: 4)
}
