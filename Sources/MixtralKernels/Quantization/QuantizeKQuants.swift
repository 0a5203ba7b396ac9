/// Quantisation to Q4_K as llama.cpp's reference quantizer does it (quantize_row_q4_K_ref,
/// used by llama-quantize without an importance matrix), bit for bit: every operation
/// below is one IEEE float operation in the reference's order, so the same bytes come out
/// (checked against llama-quantize on 96 blocks). That holds for llama.cpp builds whose
/// ggml-base is compiled without fused multiply-add contraction, as its default CMake
/// build is (no -march for ggml-base); a build that contracts could differ in rare blocks.
///
/// Per 256-weight block: each of the 8 sub-blocks of 32 gets a scale s and a min m from a
/// weighted least-squares search (`fitScaleAndMin`); the 8 scales and 8 mins are then
/// quantised to 6 bits against the block's largest (d = max s / 63, dmin = max m / 63,
/// both halves), and the weights are re-quantised to 4 bits with the rounded scales.

/// Rounds to the nearest integer, halves to even, as the reference's `nearest_int`
/// (adding 1.5 * 2^23 and reading the low mantissa bits); exact for |x| < 2^22.
@inline(__always)
func nearestInt(_ x: Float) -> Int {
    let shifted = x + 12_582_912
    return Int(shifted.bitPattern & 0x007F_FFFF) - 0x0040_0000
}

/// Levels 0...maxLevel for x[i] ≈ scale * L[i] - min (min >= 0), minimising
/// Σ w[i] (scale L[i] - min - x[i])², searched over 21 candidate scales around
/// maxLevel / (max - min) with a least-squares fit of scale and min for each
/// (make_qkx2_quants with rmin -1, rdelta 0.1, 20 steps, squared error). Each accepted
/// fit also becomes the origin the next candidates are measured from, as in the reference.
/// Returns (scale, min); writes the levels to `levels`.
func fitScaleAndMin(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, count n: Int, maxLevel: Int,
                    levels: UnsafeMutablePointer<UInt8>, scratch: UnsafeMutablePointer<UInt8>) -> (scale: Float, min: Float) {
    let nmax = Float(maxLevel)
    var minX = x[0], maxX = x[0]
    var sumW = w[0]
    var sumX = sumW * x[0]
    for i in 1..<n {
        if x[i] < minX { minX = x[i] }
        if x[i] > maxX { maxX = x[i] }
        sumW += w[i]
        sumX += w[i] * x[i]
    }
    if minX > 0 { minX = 0 }
    if maxX == minX {
        for i in 0..<n { levels[i] = 0 }
        return (0, -minX)
    }
    func level(_ v: Float) -> UInt8 { UInt8(Swift.max(0, Swift.min(maxLevel, nearestInt(v)))) }

    var iscale = nmax / (maxX - minX)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
        levels[i] = level(iscale * (x[i] - minX))
        let diff = scale * Float(levels[i]) + minX - x[i]
        bestError += w[i] * (diff * diff)
    }
    // As in the reference, an accepted fit also moves `minX`, which the later candidate
    // scales are then measured from.
    for step in 0...20 {
        iscale = (-1 + 0.1 * Float(step) + nmax) / (maxX - minX)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0..<n {
            let l = level(iscale * (x[i] - minX))
            scratch[i] = l
            let wl = w[i] * Float(l)
            sumL += wl
            sumL2 += wl * Float(l)
            sumXL += wl * x[i]
        }
        let det = sumW * sumL2 - sumL * sumL
        guard det > 0 else { continue }
        var thisScale = (sumW * sumXL - sumX * sumL) / det
        var thisMin = (sumL2 * sumX - sumL * sumXL) / det
        if thisMin > 0 {
            thisMin = 0
            thisScale = sumXL / sumL2
        }
        var error: Float = 0
        for i in 0..<n {
            let diff = thisScale * Float(scratch[i]) + thisMin - x[i]
            error += w[i] * (diff * diff)
        }
        if error < bestError {
            for i in 0..<n { levels[i] = scratch[i] }
            bestError = error
            scale = thisScale
            minX = thisMin
        }
    }
    return (scale, -minX)
}

/// Q4_K block (144 bytes, layout in Dequantize.swift) from 256 Floats.
func quantizeQ4_K(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32) { bytes in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 16) { floats in
            guard let levels = bytes.baseAddress, let weights = floats.baseAddress else { return }
            let scratch = levels + 256
            let scales = weights + 32, mins = weights + 40

            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                let xs = x + 32 * j
                var sumX2: Float = 0
                for l in 0..<32 { sumX2 += xs[l] * xs[l] }
                let averageMagnitude = (sumX2 / 32).squareRoot()
                for l in 0..<32 { weights[l] = averageMagnitude + abs(xs[l]) }
                let fit = fitScaleAndMin(xs, weights, count: 32, maxLevel: 15, levels: levels + 32 * j, scratch: scratch)
                scales[j] = fit.scale
                mins[j] = fit.min
                if fit.scale > maxScale { maxScale = fit.scale }
                if fit.min > maxMin { maxMin = fit.min }
            }

            // 6-bit scales and mins, packed as kQuantScaleAndMin reads them.
            let inverseScale: Float = maxScale > 0 ? 63 / maxScale : 0
            let inverseMin: Float = maxMin > 0 ? 63 / maxMin : 0
            var packed = [UInt8](repeating: 0, count: 12)
            for j in 0..<8 {
                let ls = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(inverseScale * scales[j])))
                let lm = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(inverseMin * mins[j])))
                if j < 4 {
                    packed[j] = ls
                    packed[j + 4] = lm
                } else {
                    packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4)
                    packed[j - 4] |= (ls >> 4) << 6
                    packed[j] |= (lm >> 4) << 6
                }
            }
            let dBits = halfBits(maxScale / 63), dminBits = halfBits(maxMin / 63)
            storeUInt16(block, 0, dBits)
            storeUInt16(block, 2, dminBits)
            for i in 0..<12 { block.storeBytes(of: packed[i], toByteOffset: 4 + i, as: UInt8.self) }

            // Re-quantise with the rounded scales (sub-blocks whose scale rounds to 0 keep
            // the levels of the search, as the reference does).
            let d = floatFromHalfBits(dBits), dmin = floatFromHalfBits(dminBits)
            for j in 0..<8 {
                let (sc, m) = kQuantScaleAndMin(UnsafeRawPointer(block + 4), j)
                let ds = d * Float(sc)
                if ds == 0 { continue }
                let dm = dmin * Float(m)
                for l in 0..<32 {
                    levels[32 * j + l] = UInt8(Swift.max(0, Swift.min(15, nearestInt((x[32 * j + l] + dm) / ds))))
                }
            }
            for chunk in 0..<4 {
                for l in 0..<32 {
                    let byte = levels[64 * chunk + l] | (levels[64 * chunk + 32 + l] << 4)
                    block.storeBytes(of: byte, toByteOffset: 16 + 32 * chunk + l, as: UInt8.self)
                }
            }
        }
    }
}
