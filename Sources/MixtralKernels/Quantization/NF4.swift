/// bitsandbytes' NF4 4-bit format, as `quantize_4bit(..., blocksize=64, quant_type="nf4")`
/// computes it on the CPU (bitsandbytes/backends/default/ops.py): per block of 64,
/// absmax = max |x|; scaled = clamp(x * (1 / absmax), -1, 1); the code is the bucket of
/// `scaled` among the midpoints of the sorted NF4 table (torch.bucketize, right=False: a
/// value equal to a midpoint takes the lower code); two codes per byte, the even element in
/// the high nibble. Dequantised value = table[code] * absmax, in fp32.
/// Block layout here: fp32 absmax (little endian), then 32 bytes of codes.
enum NF4 {
    /// The NF4 table, bit for bit as bitsandbytes holds it in fp32.
    static let table: [Float] = [
        0xBF80_0000, 0xBF32_39B1, 0xBF06_6B30, 0xBECA_32A0, 0xBE91_A24D, 0xBE3D_353F, 0xBDBA_7871, 0x0000_0000,
        0x3DA2_FAFF, 0x3E24_CAE3, 0x3E7C_04DD, 0x3EAD_033A, 0x3EE1_A4B8, 0x3F10_07AB, 0x3F39_13B3, 0x3F80_0000,
    ].map { Float(bitPattern: $0) }

    /// (table[i] + table[i+1]) / 2 in fp32, as torch computes the bucket boundaries.
    static let midpoints: [Float] = (0..<15).map { (table[$0] + table[$0 + 1]) / 2 }

    static func quantizeBlock(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var absmax: Float = 0
        for i in 0..<64 { absmax = max(absmax, abs(x[i])) }
        out.storeBytes(of: absmax.bitPattern.littleEndian, as: UInt32.self)
        let inverse = 1 / max(absmax, 1e-38)
        for pair in 0..<32 {
            let high = code(min(max(x[2 * pair] * inverse, -1), 1))
            let low = code(min(max(x[2 * pair + 1] * inverse, -1), 1))
            out.storeBytes(of: high << 4 | low, toByteOffset: 4 + pair, as: UInt8.self)
        }
    }

    /// torch.bucketize(value, midpoints): the number of midpoints strictly below `value`.
    @inline(__always) static func code(_ value: Float) -> UInt8 {
        var code: UInt8 = 0
        for midpoint in midpoints where value > midpoint { code += 1 }
        return code
    }

    static func dequantizeBlock(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let absmax = Float(bitPattern: UInt32(littleEndian: block.loadUnaligned(as: UInt32.self)))
        for pair in 0..<32 {
            let byte = block.load(fromByteOffset: 4 + pair, as: UInt8.self)
            out[2 * pair] = table[Int(byte >> 4)] * absmax
            out[2 * pair + 1] = table[Int(byte & 0x0F)] * absmax
        }
    }
}
