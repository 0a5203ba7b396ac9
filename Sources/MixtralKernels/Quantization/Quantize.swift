/// Quantisation of Float rows to GGML block formats, bit-exact with `gguf.quants.quantize`
/// from the `gguf` Python package (which itself matches ggml's reference quantizers,
/// quantize_row_q8_0_ref and quantize_row_q4_0_ref), and for Q4_K, Q5_K and Q6_K with llama-quantize
/// (QuantizeKQuants.swift). Block layouts: see Dequantize.swift.

/// Why a row cannot be quantised.
public enum QuantizationError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The engine has no quantizer for this type (only dequantisation).
    case unsupportedType(WeightType)
    /// `count` is not a whole number of blocks.
    case partialBlock(type: WeightType, count: Int)

    public var description: String {
        switch self {
        case let .unsupportedType(type):
            return "quantising to \(type.rawValue) is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)"
        case let .partialBlock(type, count):
            return "\(count) weights are not a whole number of \(type.rawValue) blocks of \(type.blockSize)"
        }
    }
}

/// The weight types `quantizeRow` can write.
public let quantizableWeightTypes: Set<WeightType> = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_K, .q5_K, .q6_K, .nf4]

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
    case .nf4:
        for b in 0..<count / 64 { NF4.quantizeBlock(src + 64 * b, dst + 36 * b) }
    case .q4_1, .q5_0, .q5_1:
        throw .unsupportedType(type)
    }
}

/// Float -> IEEE binary16 bits, round to nearest even (as numpy's astype(float16)).
@inline(__always)
public func halfBits(_ x: Float) -> UInt16 {
    Float16(x).bitPattern
}

/// Float -> bfloat16 bits, round to nearest even; NaNs are made quiet (as ggml and gguf-py).
@inline(__always)
public func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        return UInt16(bits >> 16) | 0x0040
    }
    return UInt16(truncatingIfNeeded: (UInt64(bits) + 0x7FFF + UInt64((bits >> 16) & 1)) >> 16)
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

/// Q4_0: d = m / -8 where m is the element of largest magnitude (the first one on ties),
/// keeping its sign; q = min(15, trunc(x * (1/d) + 8.5)); d stored as half.
@inline(__always)
func quantizeQ4_0(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    var amax = abs(x[0])
    var extreme = x[0]
    for i in 1..<32 where abs(x[i]) > amax {
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
