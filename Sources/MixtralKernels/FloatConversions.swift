/// bf16 is the upper half of an fp32.
@inline(__always) public func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// IEEE half to fp32 (exact; with a target CPU this is one vcvtph2ps).
@inline(__always) public func f16ToFloat(_ bits: UInt16) -> Float {
    #if arch(x86_64) && os(macOS)
    return halfToFloatPortable(bits)
    #else
    return Float(Float16(bitPattern: bits))
    #endif
}

@inline(__always) func halfToFloatPortable(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}

/// fp32 to bf16, round to nearest even (as torch's `.to(torch.bfloat16)`).
@inline(__always) public func floatToBF16(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(bits >> 16) | 0x40 }
    let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}

/// `count` uninitialised values starting on a 64-byte cache line: a 64-byte vector load
/// from an unaligned buffer spans two lines, and with weights streaming near the memory's
/// bandwidth the split loads cost bf16 decode about a sixth (BENCHMARKS.md). Release with
/// `deallocate()`.
public func allocateCacheAligned<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
        .bindMemory(to: T.self, capacity: max(1, count))
}
