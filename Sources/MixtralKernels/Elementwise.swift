import Foundation

/// RMSNorm as transformers computes it in fp32: x * rsqrt(mean(x^2) + eps) * weight.
public func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, eps: Float,
                    count n: Int, _ y: UnsafeMutablePointer<Float>) {
    let meanSquare = dot(x, x, n) / Float(n)
    let scale = 1 / (meanSquare + eps).squareRoot()
    for i in 0..<n { y[i] = weight[i] * (x[i] * scale) }
}

/// SiLU(gate) * up, in place into gate (SwiGLU's activation).
public func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n {
        let g = gate[i]
        gate[i] = g / (1 + expf(-g)) * up[i]
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
