import Foundation
import MixtralCKernels

/// RMSNorm as transformers computes it in fp32: x * rsqrt(mean(x^2) + eps) * weight.
public func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, eps: Float,
                    count n: Int, _ y: UnsafeMutablePointer<Float>, kernels: KernelTable) {
    let meanSquare = kernels.functions.dot_f32(x, x, Int32(n)) / Float(n)
    let scale = 1 / (meanSquare + eps).squareRoot()
    for i in 0..<n { y[i] = weight[i] * (x[i] * scale) }
}

/// SiLU(gate) * up, in place into gate (SwiGLU's activation), 16 lanes at a time with a
/// vector exp (about 1 ulp from expf; torch's CPU silu is a vectorised exp too): it runs on
/// one thread between two parallel products, where scalar expf took ~3% of a decode step.
public func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int,
                         kernels: KernelTable) {
    kernels.functions.silu_multiply(gate, up, Int32(n))
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
