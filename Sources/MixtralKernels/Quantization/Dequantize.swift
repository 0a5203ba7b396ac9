/// Dequantisation of GGML block formats to Float, bit-exact with `gguf.quants.dequantize`
/// from the `gguf` Python package (the reference; see scripts/gguf/make_vectors.py).
///
/// Exactness: fp16 scales are widened exactly (`floatFromHalfBits`, which also keeps NaN
/// payloads as numpy does) and the arithmetic follows the reference's float32 order
/// (K-quants: `(d * scale) * q - (dmin * min)`). For these formats the order is not
/// delicate: an fp16 scale has 11 significant bits, sub-block scales at most 8 and quants
/// at most 6, so every partial product is exact in Float and only the final product or
/// the final subtraction rounds, whatever the association and with or without fused
/// multiply-add.
///
/// All multi-byte fields are little-endian. "half" is IEEE binary16.

/// Dequantises `count` consecutive weights of `type` stored at `src` into `dst`.
/// `count` should be a multiple of `type.blockSize` (GGUF tensor rows always are; the GGUF
/// reader checks it): a trailing partial block has no data to read, so those last
/// `count % blockSize` outputs are set to NaN rather than read past the row. `src` needs
/// no particular alignment.
public func dequantizeRow(_ type: WeightType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0 else { return }
    let blocks = count / type.blockSize
    for i in blocks * type.blockSize ..< count { dst[i] = .nan }
    switch type {
    case .f32:
        for i in 0..<blocks {
            dst[i] = Float(bitPattern: loadUInt32(src, 4 * i))
        }
    case .f16:
        for i in 0..<blocks {
            dst[i] = floatFromHalfBits(loadUInt16(src, 2 * i))
        }
    case .bf16:
        for i in 0..<blocks {
            dst[i] = floatFromBFloat16Bits(loadUInt16(src, 2 * i))
        }
    case .q8_0:
        forEachBlock(type, blocks, src, dst, dequantizeQ8_0)
    case .q4_0:
        forEachBlock(type, blocks, src, dst, dequantizeQ4_0)
    case .q4_1:
        forEachBlock(type, blocks, src, dst, dequantizeQ4_1)
    case .q5_0:
        forEachBlock(type, blocks, src, dst, dequantizeQ5_0)
    case .q5_1:
        forEachBlock(type, blocks, src, dst, dequantizeQ5_1)
    case .q4_K:
        forEachBlock(type, blocks, src, dst, dequantizeQ4_K)
    case .nf4:
        forEachBlock(type, blocks, src, dst, NF4.dequantizeBlock)
    case .q5_K:
        forEachBlock(type, blocks, src, dst, dequantizeQ5_K)
    case .q6_K:
        forEachBlock(type, blocks, src, dst, dequantizeQ6_K)
    }
}

@inline(__always)
private func forEachBlock(
    _ type: WeightType, _ blocks: Int, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>,
    _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void
) {
    for b in 0..<blocks {
        body(src + b * type.blockBytes, dst + b * type.blockSize)
    }
}

// MARK: - 32-weight blocks

/// Q8_0, 34 bytes: `half d; int8 q[32]`. Weight i = q[i] * d.
@inline(__always)
func dequantizeQ8_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    for i in 0..<32 {
        let q = Int8(bitPattern: block.load(fromByteOffset: 2 + i, as: UInt8.self))
        out[i] = Float(q) * d
    }
}

/// Q4_0, 18 bytes: `half d; u8 qs[16]`. Byte j holds weight j in its low nibble and
/// weight j+16 in its high nibble. Weight = (nibble - 8) * d.
@inline(__always)
func dequantizeQ4_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    for j in 0..<16 {
        let byte = block.load(fromByteOffset: 2 + j, as: UInt8.self)
        out[j] = d * Float(Int(byte & 0x0F) - 8)
        out[j + 16] = d * Float(Int(byte >> 4) - 8)
    }
}

/// Q4_1, 20 bytes: `half d; half m; u8 qs[16]`, nibbles as in Q4_0.
/// Weight = nibble * d + m.
@inline(__always)
func dequantizeQ4_1(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    let m = loadHalf(block, 2)
    for j in 0..<16 {
        let byte = block.load(fromByteOffset: 4 + j, as: UInt8.self)
        out[j] = d * Float(byte & 0x0F) + m
        out[j + 16] = d * Float(byte >> 4) + m
    }
}

/// Q5_0, 22 bytes: `half d; u32 qh; u8 qs[16]`. Low 4 bits of each weight as in Q4_0;
/// bit i of qh is bit 4 of weight i. Weight = (q - 16) * d.
@inline(__always)
func dequantizeQ5_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    let qh = loadUInt32(block, 2)
    for j in 0..<16 {
        let byte = block.load(fromByteOffset: 6 + j, as: UInt8.self)
        let low = Int(byte & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
        let high = Int(byte >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
        out[j] = d * Float(low - 16)
        out[j + 16] = d * Float(high - 16)
    }
}

/// Q5_1, 24 bytes: `half d; half m; u32 qh; u8 qs[16]`, bits as in Q5_0.
/// Weight = q * d + m.
@inline(__always)
func dequantizeQ5_1(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    let m = loadHalf(block, 2)
    let qh = loadUInt32(block, 4)
    for j in 0..<16 {
        let byte = block.load(fromByteOffset: 8 + j, as: UInt8.self)
        let low = Int(byte & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
        let high = Int(byte >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
        out[j] = d * Float(low) + m
        out[j + 16] = d * Float(high) + m
    }
}

// MARK: - 256-weight K-quant blocks

/// The 6-bit scale and 6-bit min of sub-block `j` (0..<8) of a Q4_K/Q5_K block, packed
/// in 12 bytes. Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3;
/// sub-blocks 4-7 keep their low 4 bits in bytes 8-11 (scale low nibble, min high
/// nibble) and their top 2 bits in the top 2 bits of bytes 0-3 (scale) and 4-7 (min).
@inline(__always)
func kQuantScaleAndMin(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
    func byte(_ i: Int) -> UInt8 { scales.load(fromByteOffset: i, as: UInt8.self) }
    if j < 4 {
        return (byte(j) & 0x3F, byte(j + 4) & 0x3F)
    }
    let scale = (byte(j + 4) & 0x0F) | ((byte(j - 4) >> 6) << 4)
    let min = (byte(j + 4) >> 4) | ((byte(j) >> 6) << 4)
    return (scale, min)
}

/// Q4_K, 144 bytes: `half d; half dmin; u8 scales[12]; u8 qs[128]`. Eight sub-blocks of
/// 32 weights with 6-bit scale s and min m each (see `kQuantScaleAndMin`). qs is four
/// 32-byte chunks; chunk c holds sub-block 2c in its low nibbles and 2c+1 in its high
/// nibbles. Weight = (d * s) * q - (dmin * m).
@inline(__always)
func dequantizeQ4_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    let dmin = loadHalf(block, 2)
    let scales = block + 4
    let qs = block + 16
    for chunk in 0..<4 {
        let (s0, m0) = kQuantScaleAndMin(scales, 2 * chunk)
        let (s1, m1) = kQuantScaleAndMin(scales, 2 * chunk + 1)
        let d0 = d * Float(s0), min0 = dmin * Float(m0)
        let d1 = d * Float(s1), min1 = dmin * Float(m1)
        let o = out + 64 * chunk
        for l in 0..<32 {
            let byte = qs.load(fromByteOffset: 32 * chunk + l, as: UInt8.self)
            o[l] = d0 * Float(byte & 0x0F) - min0
            o[l + 32] = d1 * Float(byte >> 4) - min1
        }
    }
}

/// Q5_K, 176 bytes: `half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]`. As Q4_K,
/// plus a fifth bit: bit k of qh[l] is bit 4 of weight l of sub-block k.
/// Weight = (d * s) * q - (dmin * m).
@inline(__always)
func dequantizeQ5_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let d = loadHalf(block, 0)
    let dmin = loadHalf(block, 2)
    let scales = block + 4
    let qh = block + 16
    let qs = block + 48
    for chunk in 0..<4 {
        let (s0, m0) = kQuantScaleAndMin(scales, 2 * chunk)
        let (s1, m1) = kQuantScaleAndMin(scales, 2 * chunk + 1)
        let d0 = d * Float(s0), min0 = dmin * Float(m0)
        let d1 = d * Float(s1), min1 = dmin * Float(m1)
        let o = out + 64 * chunk
        for l in 0..<32 {
            let byte = qs.load(fromByteOffset: 32 * chunk + l, as: UInt8.self)
            let high = qh.load(fromByteOffset: l, as: UInt8.self)
            let q0 = (byte & 0x0F) | (((high >> UInt8(2 * chunk)) & 1) << 4)
            let q1 = (byte >> 4) | (((high >> UInt8(2 * chunk + 1)) & 1) << 4)
            o[l] = d0 * Float(q0) - min0
            o[l + 32] = d1 * Float(q1) - min1
        }
    }
}

/// Q6_K, 210 bytes: `u8 ql[128]; u8 qh[64]; int8 scales[16]; half d`. Sixteen sub-blocks
/// of 16 weights, each with an 8-bit signed scale. The block is two halves of 128
/// weights; half h uses ql[64h..<64h+64] and qh[32h..<32h+32]. Within a half, weight
/// e = 32g + l (g 0..<4, l 0..<32) has low 4 bits from ql[64h + e] (low nibble, e < 64)
/// or ql[64h + e - 64] (high nibble, e >= 64), and high 2 bits from bits 2g, 2g+1 of
/// qh[32h + l]. Weight = (d * scales[(128h + e) / 16]) * (q - 32).
@inline(__always)
func dequantizeQ6_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    let ql = block
    let qh = block + 128
    let scales = block + 192
    let d = loadHalf(block, 208)
    for half in 0..<2 {
        for group in 0..<4 {
            let lowByteBase = 64 * half + 32 * (group & 1)
            let lowShift = UInt8(4 * (group >> 1))
            let highShift = UInt8(2 * group)
            // 32 weights = two sub-blocks of 16 with one scale each.
            for sub in 0..<2 {
                let scale = Int8(bitPattern: scales.load(fromByteOffset: 8 * half + 2 * group + sub, as: UInt8.self))
                let ds = d * Float(scale)
                let o = out + 128 * half + 32 * group + 16 * sub
                for i in 0..<16 {
                    let l = 16 * sub + i
                    let low = (ql.load(fromByteOffset: lowByteBase + l, as: UInt8.self) >> lowShift) & 0x0F
                    let high = (qh.load(fromByteOffset: 32 * half + l, as: UInt8.self) >> highShift) & 0x03
                    o[i] = ds * Float(Int(low | (high << 4)) - 32)
                }
            }
        }
    }
}
