/// Quantisation to Q4_K, Q5_K and Q6_K as llama.cpp's reference quantizers do it
/// (quantize_row_q{4,5,6}_K_ref, used by llama-quantize without an importance matrix),
/// bit for bit: every operation
/// below is one IEEE float operation in the reference's order, so the same bytes come out
/// (checked against llama-quantize: 96 Q4_K, 128 Q5_K and 128 Q6_K blocks). That holds for llama.cpp builds whose
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
/// Σ w[i] (scale L[i] - min - x[i])², searched over the candidate scales
/// (maxLevel + rmin + rdelta * step) / (max - min), step 0...steps, with a least-squares
/// fit of scale and min for each (make_qkx2_quants, squared error; Q4_K uses rmin -1,
/// rdelta 0.1, 20 steps, Q5_K -0.5, 0.1, 15). Each accepted fit also becomes the origin
/// the next candidates are measured from, as in the reference.
/// Returns (scale, min); writes the levels to `levels`.
func fitScaleAndMin(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, count n: Int, maxLevel: Int,
                    rmin: Float, rdelta: Float, steps: Int,
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
    for step in 0...steps {
        iscale = (rmin + rdelta * Float(step) + nmax) / (maxX - minX)
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
    quantizeKBlockWithMins(x, block, maxLevel: 15) { levels in
        // qs: chunk c holds sub-block 2c in the low nibbles, 2c+1 in the high nibbles.
        for chunk in 0..<4 {
            for l in 0..<32 {
                let byte = levels[64 * chunk + l] | (levels[64 * chunk + 32 + l] << 4)
                block.storeBytes(of: byte, toByteOffset: 16 + 32 * chunk + l, as: UInt8.self)
            }
        }
    }
}

/// Q5_K block (176 bytes, layout in Dequantize.swift) from 256 Floats.
func quantizeQ5_K(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    quantizeKBlockWithMins(x, block, maxLevel: 31) { levels in
        // Low 4 bits as in Q4_K (qs at 48); bit 4 of weight l of sub-block k is bit k of qh[l].
        for l in 0..<32 {
            var high: UInt8 = 0
            for sub in 0..<8 { high |= (levels[32 * sub + l] >> 4) << UInt8(sub) }
            block.storeBytes(of: high, toByteOffset: 16 + l, as: UInt8.self)
        }
        for chunk in 0..<4 {
            for l in 0..<32 {
                let byte = (levels[64 * chunk + l] & 0x0F) | ((levels[64 * chunk + 32 + l] & 0x0F) << 4)
                block.storeBytes(of: byte, toByteOffset: 48 + 32 * chunk + l, as: UInt8.self)
            }
        }
    }
}

/// The part Q4_K and Q5_K share: eight sub-blocks of 32 with a scale and a min each
/// (`fitScaleAndMin`), the scales and mins quantised to 6 bits against the largest
/// (d = max scale / 63, dmin = max min / 63, halves, at bytes 0 and 2; packed 6-bit
/// values at bytes 4..<16 as `kQuantScaleAndMin` reads them), and the weights
/// re-quantised to 0...maxLevel with the rounded scales; `pack` stores those levels.
func quantizeKBlockWithMins(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer, maxLevel: Int,
                            pack: (UnsafeMutablePointer<UInt8>) -> Void) {
    let (rmin, steps): (Float, Int) = maxLevel == 15 ? (-1, 20) : (-0.5, 15)
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
                let fit = fitScaleAndMin(xs, weights, count: 32, maxLevel: maxLevel, rmin: rmin, rdelta: 0.1,
                                         steps: steps, levels: levels + 32 * j, scratch: scratch)
                scales[j] = fit.scale
                mins[j] = fit.min
                if fit.scale > maxScale { maxScale = fit.scale }
                if fit.min > maxMin { maxMin = fit.min }
            }

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
                    levels[32 * j + l] = UInt8(Swift.max(0, Swift.min(maxLevel, nearestInt((x[32 * j + l] + dm) / ds))))
                }
            }
            pack(levels)
        }
    }
}

// MARK: - Q6_K

/// Signed levels -maxLevel..<maxLevel for x[i] ≈ scale * L[i], weighting element i by x[i]²:
/// a first scale from the element of largest magnitude (which maps to -maxLevel), then 18
/// nearby candidates, keeping the one with the best weighted least-squares fit
/// (make_qx_quants with rmse_type 1). Writes L + maxLevel to `levels`; returns the scale.
func fitSymmetricScale(_ x: UnsafePointer<Float>, count n: Int, maxLevel: Int, levels: UnsafeMutablePointer<UInt8>) -> Float {
    var extreme: Float = 0, amax: Float = 0
    for i in 0..<n where abs(x[i]) > amax {
        amax = abs(x[i])
        extreme = x[i]
    }
    if amax < 1e-15 {
        for i in 0..<n { levels[i] = 0 }
        return 0
    }
    let nmax = Float(maxLevel)
    func level(_ v: Float) -> Int { Swift.max(-maxLevel, Swift.min(maxLevel - 1, nearestInt(v))) }
    /// Σ w x l and Σ w l² for the levels of `iscale`, w = x².
    func sums(_ iscale: Float) -> (lx: Float, l2: Float) {
        var lx: Float = 0, l2: Float = 0
        for i in 0..<n {
            let l = Float(level(iscale * x[i]))
            let w = x[i] * x[i]
            lx += w * x[i] * l
            l2 += w * l * l
        }
        return (lx, l2)
    }
    var iscale = -nmax / extreme
    for i in 0..<n { levels[i] = UInt8(level(iscale * x[i]) + maxLevel) }
    var (sumLX, sumL2) = sums(iscale)
    var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
    var best = scale * sumLX
    for step in -9...9 where step != 0 {
        iscale = -(nmax + 0.1 * Float(step)) / extreme
        (sumLX, sumL2) = sums(iscale)
        if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
            for i in 0..<n { levels[i] = UInt8(level(iscale * x[i]) + maxLevel) }
            scale = sumLX / sumL2
            best = scale * sumLX
        }
    }
    return scale
}

/// Q6_K block (210 bytes, layout in Dequantize.swift) from 256 Floats, as llama.cpp's
/// quantize_row_q6_K_ref: a scale per 16 weights (`fitSymmetricScale`), the 16 scales
/// quantised to int8 against the largest (d = that scale / -128, a half), then the
/// weights re-quantised to 6 bits with the rounded scales.
func quantizeQ6_K(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { scaleBuffer in
            guard let levels = buffer.baseAddress, let scales = scaleBuffer.baseAddress else { return }
            var maxScale: Float = 0, maxAbsScale: Float = 0
            for sub in 0..<16 {
                let scale = fitSymmetricScale(x + 16 * sub, count: 16, maxLevel: 32, levels: levels + 16 * sub)
                scales[sub] = scale
                if abs(scale) > maxAbsScale {
                    maxAbsScale = abs(scale)
                    maxScale = scale
                }
            }
            if maxAbsScale < 1e-15 {
                block.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                storeUInt16(block, 208, halfBits(0))
                return
            }
            let iscale = -128 / maxScale
            let dBits = halfBits(1 / iscale)
            storeUInt16(block, 208, dBits)
            for sub in 0..<16 {
                let q = Int8(truncatingIfNeeded: Swift.min(127, nearestInt(iscale * scales[sub])))
                block.storeBytes(of: UInt8(bitPattern: q), toByteOffset: 192 + sub, as: UInt8.self)
            }
            let d = floatFromHalfBits(dBits)
            for sub in 0..<16 {
                let q = Int8(bitPattern: block.load(fromByteOffset: 192 + sub, as: UInt8.self))
                let ds = d * Float(q)
                if ds == 0 { continue }
                for i in 0..<16 {
                    let l = Swift.max(-32, Swift.min(31, nearestInt(x[16 * sub + i] / ds)))
                    levels[16 * sub + i] = UInt8(l + 32)
                }
            }
            // Pack: per half of 128, ql holds low nibbles (weights l and l+64 in byte l,
            // l+32 and l+96 in byte l+32), qh the top 2 bits of l, l+32, l+64, l+96.
            for half in 0..<2 {
                let L = levels + 128 * half
                for l in 0..<32 {
                    let low = (L[l] & 0x0F) | ((L[l + 64] & 0x0F) << 4)
                    let low2 = (L[l + 32] & 0x0F) | ((L[l + 96] & 0x0F) << 4)
                    let high = (L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6)
                    block.storeBytes(of: low, toByteOffset: 64 * half + l, as: UInt8.self)
                    block.storeBytes(of: low2, toByteOffset: 64 * half + 32 + l, as: UInt8.self)
                    block.storeBytes(of: high, toByteOffset: 128 + 32 * half + l, as: UInt8.self)
                }
            }
        }
    }
}
