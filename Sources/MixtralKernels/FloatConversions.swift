/// Conversions between 16-bit floating-point bit patterns and Float, the one set used
/// everywhere (weights, GGUF, kernels' reference loops). They work on the bits so that
/// every pattern converts exactly as numpy does it (the `gguf` package's reference):
/// subnormals are exact, and NaN payloads are kept as they are (a signalling NaN stays
/// signalling, unlike the hardware `vcvtph2ps` instruction, which quiets it). The hot
/// loops convert in C, per CPU level (MixtralCKernels).

/// IEEE 754 binary16 bits -> Float.
@inline(__always)
public func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x03FF)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa * 2^-24, exact in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: magnitude.bitPattern | sign)
    case 0x1F:
        // Infinity or NaN: all-ones exponent, mantissa moved to the top of Float's.
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        // Normal: rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// bfloat16 bits -> Float: the bits are the upper half of a Float.
@inline(__always)
public func floatFromBFloat16Bits(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Reads a little-endian UInt16 at `offset` (any alignment).
@inline(__always)
func loadUInt16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

/// Reads a little-endian UInt32 at `offset` (any alignment).
@inline(__always)
func loadUInt32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

/// Reads a little-endian binary16 at `offset` as a Float.
@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    floatFromHalfBits(loadUInt16(p, offset))
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

/// `count` uninitialised values starting on a 64-byte cache line: a 64-byte vector load
/// from an unaligned buffer spans two lines, and with weights streaming near the memory's
/// bandwidth the split loads cost bf16 decode about a sixth (BENCHMARKS.md). Release with
/// `deallocate()`.
public func allocateCacheAligned<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
        .bindMemory(to: T.self, capacity: max(1, count))
}
