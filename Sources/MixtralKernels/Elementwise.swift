import Foundation

/// RMSNorm as transformers computes it in fp32: x * rsqrt(mean(x^2) + eps) * weight.
public func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, eps: Float,
                    count n: Int, _ y: UnsafeMutablePointer<Float>) {
    let meanSquare = dot(x, x, n) / Float(n)
    let scale = 1 / (meanSquare + eps).squareRoot()
    for i in 0..<n { y[i] = weight[i] * (x[i] * scale) }
}

/// SiLU(gate) * up, in place into gate (SwiGLU's activation). 16 lanes at a time with
/// `exp16` (about 1 ulp from expf; torch's CPU silu is a vectorised exp too): it runs on
/// one thread between two parallel products, where scalar expf took ~3% of a decode step.
public func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
    var i = 0
    while i + 16 <= n {
        let g = load16(gate + i)
        let result = g / (1 + exp16(-g)) * load16(up + i)
        UnsafeMutableRawPointer(gate + i).storeBytes(of: result, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n {
        let g = gate[i]
        gate[i] = g / (1 + expf(-g)) * up[i]
        i += 1
    }
}

/// Softmax over n values in place, in fp32 with the max subtracted (as torch.softmax).
public func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    guard n > 0 else { return }
    var maximum = -Float.infinity
    for i in 0..<n { maximum = max(maximum, x[i]) }
    var sum: Float = 0
    for i in 0..<n {
        let e = expf(x[i] - maximum)
        x[i] = e
        sum += e
    }
    let inverse = 1 / sum
    for i in 0..<n { x[i] *= inverse }
}

/// y += a * x
@inline(__always) public func addScaled(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ a: Float, count n: Int) {
    var i = 0
    let va = SIMD16<Float>(repeating: a)
    while i + 16 <= n {
        var v = load16(y + i)
        v.addProduct(va, load16(x + i))
        UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n {
        y[i] += a * x[i]
        i += 1
    }
}

/// e^x for 16 lanes: Cephes' expf polynomial (max error about 1 ulp) after reducing by
/// powers of two; e^x is 0 below -87.3 (including -inf) and +inf above 88.7.
@inline(__always) func exp16(_ x: SIMD16<Float>) -> SIMD16<Float> {
    // (SIMD's clamped(lowerBound:upperBound:) is not inlined; masked replaces are.)
    var clamped = x
    clamped.replace(with: -87.336, where: x .< -87.336)
    clamped.replace(with: 88.72, where: x .> 88.72)
    // Adding 1.5 * 2^23 rounds x * log2(e) to an integer n held in the low mantissa bits.
    let magic: Float = 12_582_912
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    var r = clamped - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_1e-1
    p = p * (r * r) + r + 1
    let exponent = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- magic.bitPattern &+ 127
    let scale = unsafeBitCast(exponent &<< 23, to: SIMD16<Float>.self)
    var result = p * scale
    result.replace(with: 0, where: x .< -87.336)
    result.replace(with: .infinity, where: x .> 88.72)
    return result
}
