import Foundation
import Testing
@testable import MixtralKernels
import MixtralCKernels

/// Kernels against plain double-precision reference loops: fp32 relative error <= 1e-5
/// (relative to the magnitude of the terms summed).
@Suite struct KernelTests {
    var random = SeededRandom(seed: 11)

    static func reference(_ x: [Float], _ w: [Float], tokens: Int, rows: Int, columns: Int) -> (values: [Double], scale: [Double]) {
        var values = [Double](repeating: 0, count: tokens * rows), scale = values
        for t in 0..<tokens {
            for r in 0..<rows {
                for c in 0..<columns {
                    let product = Double(x[t * columns + c]) * Double(w[r * columns + c])
                    values[t * rows + r] += product
                    scale[t * rows + r] += abs(product)
                }
            }
        }
        return (values, scale)
    }

    /// Weights stored as `type`, and the fp32 values they represent.
    mutating func weights(_ type: WeightType, count: Int) -> (bytes: [UInt8], values: [Float]) {
        let values = (0..<count).map { _ in random.float() }
        switch type {
        case .f32:
            return (values.withUnsafeBytes { Array($0) }, values)
        case .bf16:
            let bits = values.map(bfloat16Bits)
            return (bits.withUnsafeBytes { Array($0) }, bits.map(floatFromBFloat16Bits))
        default:
            let bits = values.map { Float16($0).bitPattern }
            return (bits.withUnsafeBytes { Array($0) }, bits.map(floatFromHalfBits))
        }
    }

    @Test(arguments: [WeightType.f32, .bf16, .f16], KernelTable.availableLevels)
    mutating func linearMatchesReference(_ type: WeightType, _ level: CPULevel) {
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        for (tokens, rows, columns) in [(1, 37, 70), (1, 64, 1024), (1, 6, 100), (1, 3, 20), (2, 37, 1024), (3, 9, 33), (4, 12, 64), (5, 21, 96),
                                        (8, 40, 128), (17, 13, 31)] {
            let x = (0..<(tokens * columns)).map { _ in random.float() }
            let (bytes, values) = weights(type, count: rows * columns)
            var y = [Float](repeating: .nan, count: tokens * rows)
            bytes.withUnsafeBytes { w in
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        let matrix = WeightMatrix(type: type, rows: rows, columns: columns, base: w.baseAddress!)
                        linear(xp.baseAddress!, tokens: tokens, matrix, yp.baseAddress!, pool: pool)
                    }
                }
            }
            let expected = Self.reference(x, values, tokens: tokens, rows: rows, columns: columns)
            for i in y.indices {
                #expect(abs(Double(y[i]) - expected.values[i]) <= 1e-5 * expected.scale[i] + 1e-30,
                        "\(level) \(type) tokens \(tokens) rows \(rows) columns \(columns) index \(i)")
            }
        }
    }

    /// bf16 activations (AVX512-BF16 kernel where the CPU has it, else the portable path)
    /// against the reference with the activations rounded to bf16 first.
    @Test(arguments: KernelTable.availableLevels)
    mutating func bf16ActivationsMatchReference(_ level: CPULevel) {
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        for (tokens, rows, columns) in [(2, 70, 1024), (4, 37, 96), (13, 33, 40), (30, 64, 96), (5, 8, 64)] {
            let x = (0..<(tokens * columns)).map { _ in random.float() }
            let roundedX = x.map { floatFromBFloat16Bits(bfloat16Bits($0)) }
            let (bytes, values) = weights(.bf16, count: rows * columns)
            var y = [Float](repeating: .nan, count: tokens * rows)
            bytes.withUnsafeBytes { w in
                y.withUnsafeMutableBufferPointer { yp in
                    let matrix = WeightMatrix(type: .bf16, rows: rows, columns: columns, base: w.baseAddress!)
                    linear(x, tokens: tokens, matrix, yp.baseAddress!, precision: .fast, pool: pool)
                }
            }
            // Up to bf16RowsMaxTokens tokens stream the rows with fp32 activations instead.
            let activations = tokens <= bf16RowsMaxTokens ? x : roundedX
            let expected = Self.reference(activations, values, tokens: tokens, rows: rows, columns: columns)
            for i in y.indices {
                #expect(abs(Double(y[i]) - expected.values[i]) <= 1e-5 * expected.scale[i] + 1e-30,
                        "\(level) tokens \(tokens) rows \(rows) columns \(columns) index \(i)")
            }
        }
    }

    /// Q8_0/Q4_0/Q4_1 weights with 8-bit activations (`.fast`) at every level against the
    /// same arithmetic in double: activations quantised per block of 32 as llama.cpp's
    /// quantize_row_q8_0/q8_1 do (q = round(x * 127 / max|x|), d = fp16(max|x| / 127),
    /// s = fp16(d * Σq)), dot products of the integer quants, scaled by both blocks' scales.
    /// Up to 4 tokens take the four-row kernel, more tokens the packed panels (Q4_1: fp32).
    /// A random rows x columns matrix quantised to `type`, and its dequantised weights.
    mutating func randomQuantizedMatrix(_ type: WeightType, rows: Int, columns: Int) throws -> (bytes: [UInt8], weights: [Float]) {
        let values = (0..<(rows * columns)).map { _ in random.float() }
        let rowBytes = type.byteCount(elements: columns)!
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
        try values.withUnsafeBufferPointer { v in
            try bytes.withUnsafeMutableBytes { b in
                for r in 0..<rows { try quantizeRow(type, v.baseAddress! + r * columns, b.baseAddress! + r * rowBytes, count: columns) }
            }
        }
        var weights = [Float](repeating: 0, count: rows * columns)
        bytes.withUnsafeBytes { b in weights.withUnsafeMutableBufferPointer { dequantizeRow(type, b.baseAddress!, $0.baseAddress!, count: rows * columns) } }
        return (bytes, weights)
    }

    @Test(arguments: [WeightType.q8_0, .q4_0, .q4_1], KernelTable.availableLevels)
    mutating func int8ActivationsMatchReference(_ type: WeightType, _ level: CPULevel) throws {
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        for (tokens, rows, columns) in [(1, 37, 96), (1, 64, 1024), (2, 9, 64), (3, 40, 64), (9, 16, 256), (17, 33, 96)] {
            let (bytes, weights) = try randomQuantizedMatrix(type, rows: rows, columns: columns)
            let rowBytes = type.byteCount(elements: columns)!
            let x = (0..<(tokens * columns)).map { _ in random.float() * 3 }
            // The activations' blocks as llama.cpp quantises them: values q·d, and s - d·Σq
            // (what Q4_1's m multiplies beyond the dequantised product).
            var xq = [Double](repeating: 0, count: x.count), sCorrection = [Double](repeating: 0, count: x.count / 32)
            for block in 0..<(x.count / 32) {
                let slice = x[(32 * block)..<(32 * block + 32)]
                let amax = slice.map(abs).max() ?? 0
                let inverse: Float = amax != 0 ? 127 / amax : 0
                let d = Float(Float16(amax / 127))
                var sum: Float = 0
                for (j, v) in slice.enumerated() {
                    let q = (v * inverse).rounded(.toNearestOrEven)
                    sum += q
                    xq[32 * block + j] = Double(q) * Double(d)
                }
                sCorrection[block] = Double(Float(Float16(amax / 127 * sum))) - Double(d) * Double(sum)
            }
            var y = [Float](repeating: .nan, count: tokens * rows)
            bytes.withUnsafeBytes { w in
                y.withUnsafeMutableBufferPointer { yp in
                    let matrix = WeightMatrix(type: type, rows: rows, columns: columns, base: w.baseAddress!)
                    linear(x, tokens: tokens, matrix, yp.baseAddress!, precision: .fast, pool: pool)
                }
            }
            // Q4_1's four-row kernel uses llama.cpp's s = fp16(d Σq); its panels d Σq itself.
            let llamaSums = type == .q4_1 && tokens <= llamaCppRowsMaxTokens
            let eightBit = true
            for t in 0..<tokens {
                for r in 0..<rows {
                    var exact = 0.0, magnitude = 0.0
                    for c in 0..<columns {
                        let activation = eightBit ? xq[t * columns + c] : Double(x[t * columns + c])
                        let p = activation * Double(weights[r * columns + c])
                        exact += p
                        magnitude += abs(p)
                    }
                    if llamaSums {
                        for b in 0..<(columns / 32) {
                            let bits = UInt16(bytes[r * rowBytes + 20 * b + 2]) | UInt16(bytes[r * rowBytes + 20 * b + 3]) << 8
                            exact += Double(Float(Float16(bitPattern: bits))) * sCorrection[t * columns / 32 + b]
                        }
                    }
                    #expect(abs(Double(y[t * rows + r]) - exact) <= 1e-5 * magnitude + 1e-30,
                            "\(level) \(type) tokens \(tokens) rows \(rows) columns \(columns) t \(t) r \(r)")
                }
            }
        }
    }

    /// K-quant prompts (more than four tokens) on the 8-bit panels at every level, against
    /// the dequantised weights times the activations quantised per 32 (llama.cpp's Q8_0
    /// blocks), in Double.
    @Test(arguments: [WeightType.q4_K, .q5_K, .q6_K], KernelTable.availableLevels)
    mutating func kQuantPanelsMatchReference(_ type: WeightType, _ level: CPULevel) throws {
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        for (tokens, rows, columns) in [(5, 37, 256), (12, 20, 512)] {
            let (bytes, weights) = try randomQuantizedMatrix(type, rows: rows, columns: columns)
            let x = (0..<(tokens * columns)).map { _ in random.float() * 3 }
            var blocks = [UInt8](repeating: 0, count: x.count / 32 * 34), xq = [Float](repeating: 0, count: x.count)
            try x.withUnsafeBufferPointer { xp in try blocks.withUnsafeMutableBytes { try quantizeRow(.q8_0, xp.baseAddress!, $0.baseAddress!, count: x.count) } }
            blocks.withUnsafeBytes { raw in xq.withUnsafeMutableBufferPointer { dequantizeRow(.q8_0, raw.baseAddress!, $0.baseAddress!, count: x.count) } }
            var y = [Float](repeating: .nan, count: tokens * rows)
            bytes.withUnsafeBytes { w in
                y.withUnsafeMutableBufferPointer { yp in
                    linear(x, tokens: tokens, WeightMatrix(type: type, rows: rows, columns: columns, base: w.baseAddress!),
                           yp.baseAddress!, precision: .fast, pool: pool)
                }
            }
            for t in 0..<tokens {
                for r in 0..<rows {
                    var exact = 0.0, magnitude = 0.0
                    for c in 0..<columns {
                        let p = Double(xq[t * columns + c]) * Double(weights[r * columns + c])
                        exact += p
                        magnitude += abs(p)
                    }
                    #expect(abs(Double(y[t * rows + r]) - exact) <= 1e-5 * magnitude + 1e-30,
                            "\(level) \(type) tokens \(tokens) t \(t) r \(r): \(y[t * rows + r]) vs \(exact)")
                }
            }
        }
    }

    /// Q8_K activations at every level, byte for byte against a transcription of llama.cpp's
    /// quantize_row_q8_K_ref (ggml-quants.c): ties, zeros, a block of zeros, a lone extreme.
    @Test(arguments: KernelTable.availableLevels)
    mutating func q8KActivationsEqualLlamaCppReference(_ level: CPULevel) {
        var x = (0..<(4 * 256)).map { _ in random.float() * 5 }
        for i in 256..<512 { x[i] = 0 }                      // a block of zeros: d = 0, q = 0
        x[600] = -9; x[601] = 4.5; x[602] = -4.5             // the extreme is negative; ties at ±63.5
        for i in 768..<1024 { x[i] = Float(i % 7) - 3 }      // many exact ties
        x[1000] = 3
        func nearest(_ v: Float) -> Int32 {
            let shifted = v + 12_582_912
            return Int32(shifted.bitPattern & 0x007F_FFFF) - 0x0040_0000
        }
        var expectedQ = [Int8](repeating: 0, count: x.count), expectedD = [Float](repeating: 0, count: 4)
        for b in 0..<4 {
            var amax: Float = 0, extreme: Float = 0
            for j in 0..<256 where abs(x[256 * b + j]) > amax { amax = abs(x[256 * b + j]); extreme = x[256 * b + j] }
            guard amax > 0 else { continue }
            let iscale = -127 / extreme
            for j in 0..<256 { expectedQ[256 * b + j] = Int8(min(127, nearest(iscale * x[256 * b + j]))) }
            expectedD[b] = 1 / iscale
        }
        var activations = Q8KActivations()
        x.withUnsafeBufferPointer { activations.quantize($0.baseAddress!, count: x.count, kernels: KernelTable(level: level)) }
        #expect(activations.quants == expectedQ, "\(level)")
        #expect(activations.scales.map(\.bitPattern) == expectedD.map(\.bitPattern), "\(level)")
        #expect(activations.sums16 == (0..<64).map { g in expectedQ[16 * g ..< 16 * (g + 1)].reduce(0) { $0 + Int32($1) } })
    }

    /// silu(x) * up with the kernels' vector exp against libm's expf, at every level.
    @Test(arguments: KernelTable.availableLevels)
    func siluMatchesLibm(_ level: CPULevel) {
        let kernels = KernelTable(level: level)
        var values = (-200...160).map { Float($0) * 0.5 }
        values += [-.infinity, .infinity, -87.3, 0, 1e-8, -1e-8, 0.3, 9, 77.7, 79.9, -0.7, -5.5, -100, 100]
        while values.count % 16 != 0 { values.append(1) }
        var gate = values
        let up = [Float](repeating: 1, count: values.count)
        siluMultiply(&gate, up, count: gate.count, kernels: kernels)
        for (x, y) in zip(values, gate) {
            // exp(-x) is 0 below -87.336 and +inf from about 88.4 (its power of two overflows),
            // so silu(x) is x for x > 87.336 and -0 below about -88.4 (true value ~1e-37).
            let expected = x / (1 + expf(-x))
            let close = y == expected || (y.isNaN && expected.isNaN) || abs(y - expected) <= 4 * expected.ulp || (x < -88 && abs(y - expected) < 1e-36)
            #expect(close, "\(level) silu(\(x)) = \(y), libm \(expected)")
        }
        var nan: [Float] = Array(repeating: .nan, count: 16)
        siluMultiply(&nan, up, count: 16, kernels: kernels)
        #expect(nan.allSatisfy { $0.isNaN })
    }

    @Test mutating func batchedJobsEqualSeparateCalls() {
        let pool = ComputePool(threadCount: 2)
        let columns = 48
        let x = (0..<(2 * columns)).map { _ in random.float() }
        let a = weights(.bf16, count: 10 * columns), b = weights(.f32, count: 7 * columns)
        var together = [Float](repeating: 0, count: 2 * 17), separate = together
        a.bytes.withUnsafeBytes { aw in
            b.bytes.withUnsafeBytes { bw in
                x.withUnsafeBufferPointer { xp in
                    let ma = WeightMatrix(type: .bf16, rows: 10, columns: columns, base: aw.baseAddress!)
                    let mb = WeightMatrix(type: .f32, rows: 7, columns: columns, base: bw.baseAddress!)
                    together.withUnsafeMutableBufferPointer { y in
                        linear([LinearJob(xp.baseAddress!, tokens: 2, ma, y.baseAddress!),
                                LinearJob(xp.baseAddress!, tokens: 2, mb, y.baseAddress! + 20)], pool: pool)
                    }
                    separate.withUnsafeMutableBufferPointer { y in
                        linear(xp.baseAddress!, tokens: 2, ma, y.baseAddress!, pool: pool)
                        linear(xp.baseAddress!, tokens: 2, mb, y.baseAddress! + 20, pool: pool)
                    }
                }
            }
        }
        #expect(together == separate)
    }

    /// 1 token (decode), 6 tokens (plain dot products), 40 tokens (transposed key tiles),
    /// with and without a sliding window.
    @Test(arguments: [(1, nil), (6, nil), (40, nil), (1, 5), (6, 5), (40, 70)] as [(Int, Int?)], KernelTable.availableLevels)
    mutating func attentionMatchesNaiveSoftmax(_ case: (tokens: Int, window: Int?), _ level: CPULevel) {
        let (tokens, window) = `case`
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: 8, slidingWindow: window)
        let positions = 150  // more than one 64-key tile
        let first = positions - tokens
        let q = (0..<(tokens * 32)).map { _ in random.float() * 2 }
        let k = (0..<(positions * 16)).map { _ in random.float() * 2 }
        let v = (0..<(positions * 16)).map { _ in random.float() }
        var out = [Float](repeating: .nan, count: tokens * 32)
        var blockedKeys = [Float](repeating: .nan, count: KeyLayout.count(positions: positions, kvHeads: 2, headDim: 8))
        blockedKeys.withUnsafeMutableBufferPointer { KeyLayout.store(k, count: positions, first: 0, kvHeads: 2, headDim: 8, into: $0.baseAddress!) }
        out.withUnsafeMutableBufferPointer { o in
            attention(q, tokens: tokens, firstPosition: first, keys: blockedKeys, values: v, shape: shape, o.baseAddress!, pool: pool)
        }
        for t in 0..<tokens {
            let position = first + t
            let lowest = window.map { max(0, position - $0 + 1) } ?? 0
            for h in 0..<4 {
                let kv = h / 2
                var scores: [Double] = []
                for j in lowest...position {
                    var s = 0.0
                    for d in 0..<8 { s += Double(q[t * 32 + h * 8 + d]) * Double(k[j * 16 + kv * 8 + d]) }
                    scores.append(s / 8.0.squareRoot())
                }
                let m = scores.max()!
                let weights = scores.map { exp($0 - m) }
                let total = weights.reduce(0, +)
                for d in 0..<8 {
                    var expected = 0.0
                    for (i, j) in (lowest...position).enumerated() { expected += weights[i] / total * Double(v[j * 16 + kv * 8 + d]) }
                    #expect(abs(Double(out[t * 32 + h * 8 + d]) - expected) <= 1e-5, "\(level) t \(t) h \(h) d \(d)")
                }
            }
        }
    }

    /// llama.cpp's flash attention over an fp16 cache (LlamaCppKernels): an attention within
    /// fp16 rounding of the double-precision one on the same fp16 inputs. (That it equals
    /// llama.cpp's bit for bit is checked end to end: GGUFSmolLM2Tests and
    /// scripts/quality/compare_greedy_llamacpp.py.) Head dims 64 (ggml's 64-wide steps) and
    /// 80 (leftovers summed in double); 150 keys cross several 16-key blocks.
    @Test(arguments: [(1, 64, nil), (6, 64, nil), (6, 80, 5), (17, 64, 70)] as [(Int, Int, Int?)], KernelTable.availableLevels)
    mutating func llamaCppAttentionMatchesNaiveSoftmax(_ case: (tokens: Int, d: Int, window: Int?), _ level: CPULevel) {
        let (tokens, d, window) = `case`
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: d, slidingWindow: window)
        let positions = 150
        let first = positions - tokens
        let half = { (x: Float) in Float(Float16(x)) }
        let q = (0..<(tokens * 4 * d)).map { _ in random.float() * 0.5 }
        let k = (0..<(positions * 2 * d)).map { _ in half(random.float()) }
        let v = (0..<(positions * 2 * d)).map { _ in half(random.float()) }
        var out = [Float](repeating: .nan, count: tokens * 4 * d)
        var blockedKeys = [Float](repeating: .nan, count: KeyLayout.count(positions: positions, kvHeads: 2, headDim: d))
        blockedKeys.withUnsafeMutableBufferPointer { KeyLayout.store(k, count: positions, first: 0, kvHeads: 2, headDim: d, into: $0.baseAddress!) }
        out.withUnsafeMutableBufferPointer { o in
            LlamaCppKernels.attention(q, tokens: tokens, firstPosition: first, keys: blockedKeys, values: v, shape: shape,
                                      o.baseAddress!, pool: pool)
        }
        for t in 0..<tokens {
            let position = first + t
            let lowest = window.map { max(0, position - $0 + 1) } ?? 0
            for h in 0..<4 {
                let kv = h / 2
                var scores: [Double] = []
                for j in lowest...position {
                    var s = 0.0
                    for i in 0..<d { s += Double(half(q[(t * 4 + h) * d + i])) * Double(k[(j * 2 + kv) * d + i]) }
                    scores.append(s / Double(d).squareRoot())
                }
                let m = scores.max()!
                let weights = scores.map { exp($0 - m) }
                let total = weights.reduce(0, +)
                for i in 0..<d {
                    var expected = 0.0
                    for (n, j) in (lowest...position).enumerated() { expected += weights[n] / total * Double(v[(j * 2 + kv) * d + i]) }
                    #expect(abs(Double(out[(t * 4 + h) * d + i]) - expected) <= 1e-2, "\(level) t \(t) h \(h) i \(i)")
                }
            }
        }
    }

    /// The other llama.cpp steps against transformers' arithmetic: equal up to rounding.
    @Test(arguments: KernelTable.availableLevels)
    mutating func llamaCppStepsMatchReference(_ level: CPULevel) {
        let kernels = KernelTable(level: level)
        let n = 96
        let x = (0..<n).map { _ in random.float() * 3 }, w = (0..<n).map { _ in random.float() }
        var a = [Float](repeating: 0, count: n), b = a
        rmsNorm(x, w, eps: 1e-5, count: n, &a, kernels: kernels)
        LlamaCppKernels.rmsNorm(x, w, eps: 1e-5, count: n, &b, kernels: kernels)
        for i in 0..<n { #expect(abs(a[i] - b[i]) <= 1e-6 * max(1, abs(a[i]))) }

        var gate = x, gate2 = x
        siluMultiply(&gate, w, count: n, kernels: kernels)
        LlamaCppKernels.swiGLU(&gate2, w, count: n, kernels: kernels)
        for i in 0..<n { #expect(abs(gate[i] - gate2[i]) <= 1e-6 * max(1, abs(gate[i]))) }

        var p = Array(x[0..<8]), p2 = p
        softmax(&p, count: 8)
        LlamaCppKernels.softmax(&p2, count: 8, kernels: kernels)
        for i in 0..<8 { #expect(abs(p[i] - p2[i]) <= 1e-6) }

        let dot = zip(x, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(Double(LlamaCppKernels.dot(x, w, count: n, tinyBLAS: false, kernels: kernels)) - dot) <= 1e-5)
        #expect(abs(Double(LlamaCppKernels.dot(x, w, count: n, tinyBLAS: true, kernels: kernels)) - dot) <= 1e-5)

        // RoPE at position 7, base 10000, head dim 16: the recurrence's angles and the
        // rotation against the closed form.
        var cosTable = [Float](repeating: 0, count: 8), sinTable = cosTable
        LlamaCppKernels.ropeTable(position: 7, base: 10000, headDim: 16, cos: &cosTable, sin: &sinTable)
        var rotated = Array(x[0..<32]), reference = rotated
        LlamaCppKernels.rotary(&rotated, heads: 2, headDim: 16, cos: cosTable, sin: sinTable, kernels: kernels)
        var exactCos = [Float](repeating: 0, count: 8), exactSin = exactCos
        for i in 0..<8 {
            let angle = 7 * pow(10000, -Double(2 * i) / 16)
            exactCos[i] = Float(cos(angle))
            exactSin[i] = Float(sin(angle))
            #expect(abs(cosTable[i] - exactCos[i]) <= 1e-6 && abs(sinTable[i] - exactSin[i]) <= 1e-6)
        }
        applyRotary(&reference, heads: 2, headDim: 16, cos: exactCos, sin: exactSin)
        for i in 0..<32 { #expect(abs(rotated[i] - reference[i]) <= 1e-5) }
        #expect(LlamaCppKernels.roundToHalf(1 + 0x1p-11) == 1 && LlamaCppKernels.roundToHalf(1 + 0x1p-10) == 1 + 0x1p-10)
    }

    @Test(arguments: KernelTable.availableLevels)
    mutating func rmsNormMatchesReference(_ level: CPULevel) {
        let x = (0..<100).map { _ in random.float() * 3 }
        let w = (0..<100).map { _ in random.float() }
        var y = [Float](repeating: 0, count: 100)
        rmsNorm(x, w, eps: 1e-5, count: 100, &y, kernels: KernelTable(level: level))
        let meanSquare = x.reduce(0.0) { $0 + Double($1) * Double($1) } / 100
        for i in 0..<100 {
            let expected = Double(x[i]) / (meanSquare + 1e-5).squareRoot() * Double(w[i])
            #expect(abs(Double(y[i]) - expected) <= 1e-5 * max(1, abs(expected)))
        }
    }

    @Test func poolRunsEveryPartOnceUnderRepeatedUse() {
        let pool = ComputePool(threadCount: 4)
        for parts in [1, 2, 3, 7, 64, 1000] {
            for _ in 0..<200 {
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: parts)
                counts.initialize(repeating: 0, count: parts)
                pool.run(parts: parts) { counts[$0] += 1 }
                #expect((0..<parts).allSatisfy { counts[$0] == 1 })
                counts.deallocate()
            }
        }
    }

    @Test func poolsComeAndGo() {
        for threads in 1...4 {
            let pool = ComputePool(threadCount: threads)
            var sum = 0
            let lock = NSLock()
            pool.run(parts: 10) { part in lock.lock(); sum += part; lock.unlock() }
            #expect(sum == 45)
        }
    }

    @Test(arguments: KernelTable.availableLevels)
    func memoryReadFoldsEveryWord(_ level: CPULevel) {
        // Both reading modes add every 64-bit word (the probe must not skip any of them).
        let words = (0..<4104).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 }
        let expected = words.reduce(0, &+)
        let read = KernelTable(level: level).functions.read_memory
        words.withUnsafeBytes { bytes in
            for prefetch: Int32 in [0, 1] {
                #expect(read(bytes.baseAddress!, bytes.count, prefetch) == expected, "\(level) prefetch \(prefetch)")
            }
        }
    }

    @Test func bandwidthProbeReadsEachRegionOnce() {
        // Overlapping regions count once; a pass repeats them up to the minimum size.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        let whole = UnsafeRawBufferPointer(start: buffer, count: 1 << 20)
        let half = UnsafeRawBufferPointer(start: buffer, count: 1 << 19)
        let probe = BandwidthProbe(regions: [half, whole, half], threads: 2, minimumBytes: 3 << 20)
        #expect(probe.bytesPerPass == 3 << 20)
        #expect(probe.measure(pool: ComputePool(threadCount: 2)) > 0)
        #expect(BandwidthProbe(regions: [], threads: 2).measure(pool: ComputePool(threadCount: 2)) == 0)
    }

    @Test func bf16RoundsToNearestEven() {
        #expect(bfloat16Bits(1.0) == 0x3F80)
        #expect(bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie -> even
        #expect(bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie -> even
        #expect(bfloat16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(floatFromHalfBits(0x3C00) == 1 && floatFromHalfBits(0x0001) == 0x1p-24)
        // The kernels' fp16 rounding (integer arithmetic, every CPU) against Float16's.
        var random = SeededRandom(seed: 5)
        var values: [Float] = [0, -0, 1, 65504, 65519.99, 65520, -65520, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-14, 0x1.ff8p-15,
                               6e-8, -6e-8, 1e-10, .infinity, -.infinity, 1 + 0x1p-11, 1 + 0x3p-11]
        for scale: Float in [1e-7, 1e-5, 1e-3, 1, 1e3, 6e4] { values += (0..<500).map { _ in random.float() * scale } }
        for x in values { #expect(LlamaCppKernels.roundToHalf(x).bitPattern == Float(Float16(x)).bitPattern, "\(x)") }
        #expect(LlamaCppKernels.roundToHalf(.nan).isNaN)
    }
}

/// Deterministic random floats in [-1, 1).
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func float() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}
