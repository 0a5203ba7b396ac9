import MixtralCKernels

/// K-quant matrix-vector products with 8-bit activations, as llama.cpp computes them: x is
/// cut into blocks of 256 and encoded as llama.cpp's block_q8_K (a float scale, 256 int8
/// quants, sums of each 16), and each weight block's dot product is formed in integers and
/// scaled once (Q4_K and Q5_K: d_x (d_w Σ_j sc_j Σ q_w q_x - dmin_w Σ_j m_j Σ q_x); Q6_K:
/// d_x d_w Σ_j sc_j Σ (q_w - 32) q_x). Exact up to the float additions of the per-block
/// results; the difference to the fp32 path is the activation rounding. The activations
/// are byte-identical to llama.cpp's quantize_row_q8_K_ref (checked by linking ggml). The
/// products run on the kernel table (`q8k_matvec`).

/// x quantised to Q8_K blocks (llama.cpp's quantize_row_q8_K_ref).
public struct Q8KActivations: Sendable {
    /// Number of activations (a multiple of 256).
    public private(set) var count: Int = 0
    /// One scale per 256.
    public private(set) var scales: [Float] = []
    /// The quants, in -127...127.
    public private(set) var quants: [Int8] = []
    /// Σ of each 16 quants.
    public private(set) var sums16: [Int32] = []

    public init() {}

    /// Quantises `count` activations (a multiple of 256; otherwise the result is empty) on the
    /// kernel table's `q8k_quantize`: d = m / -127 for the element m of largest magnitude,
    /// q = min(127, round(x * -127 / m)).
    public mutating func quantize(_ x: UnsafePointer<Float>, count: Int, kernels: KernelTable = .default) {
        guard count >= 0, count % 256 == 0 else {
            self.count = 0
            scales.removeAll()
            quants.removeAll()
            sums16.removeAll()
            return
        }
        self.count = count
        // Reuse the storage from the previous call when the size is the same.
        if scales.count != count / 256 {
            scales = [Float](repeating: 0, count: count / 256)
            quants = [Int8](repeating: 0, count: count)
            sums16 = [Int32](repeating: 0, count: count / 16)
        }
        guard count > 0 else { return }
        quants.withUnsafeMutableBufferPointer { q in
            scales.withUnsafeMutableBufferPointer { d in
                sums16.withUnsafeMutableBufferPointer { sums in
                    guard let q = q.baseAddress, let d = d.baseAddress, let sums = sums.baseAddress else { return }
                    kernels.functions.q8k_quantize(x, Int32(count), q, d, sums)
                }
            }
        }
    }
}

/// y[r] = Σ_c w[r, c] * x[c] for the rows in `rows` (y indexed by absolute row), with x as
/// Q8_K activations of length `w.columns`, on the kernel table's `q8k_matvec`. Q4_K, Q5_K
/// and Q6_K weights; other types (or a length mismatch) give NaN rows.
public func matvec(_ w: WeightMatrix, _ x: Q8KActivations, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>,
                   kernels: KernelTable = .default) {
    guard x.count == w.columns, w.columns % 256 == 0, let type = q8kKernelType(w.type), !rows.isEmpty else {
        for r in rows { y[r] = .nan }
        return
    }
    x.quants.withUnsafeBufferPointer { quants in
        x.sums16.withUnsafeBufferPointer { sums in
            x.scales.withUnsafeBufferPointer { scales in
                guard let q = quants.baseAddress, let s = sums.baseAddress, let d = scales.baseAddress else {
                    for r in rows { y[r] = .nan }
                    return
                }
                kernels.functions.q8k_matvec(w.row(rows.lowerBound), w.rowBytes, type, Int32(rows.count), Int32(w.columns),
                                             q, d, s, y + rows.lowerBound)
            }
        }
    }
}

/// The kernel table's code for a K-quant weight type (a switch: this runs for every product).
private func q8kKernelType(_ type: WeightType) -> Int32? {
    switch type {
    case .q4_K: return Int32(MX_Q8K_Q4_K)
    case .q5_K: return Int32(MX_Q8K_Q5_K)
    case .q6_K: return Int32(MX_Q8K_Q6_K)
    default: return nil
    }
}
