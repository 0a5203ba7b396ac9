import Foundation
import Testing
@testable import MixtralKernels
import MixtralCKernels

/// The CPU probe, the level cap, and what the levels compute: the AVX2 and AVX-512 kernels
/// fuse every multiply-add and sum in the same order, so they give the same bits (except
/// where the AVX-512 level has its own arithmetic: AVX512-BF16 prefill products and the
/// VBMI Q4_0 decode kernel); the 8-bit products and llama.cpp's steps give the same bits on
/// every level, generic included.
@Suite struct CPULevelTests {
    @Test func levelNamesAndTheEnvironmentVariable() throws {
        #expect(try CPUInfo.requestedLevel(environment: [:]) == nil)
        #expect(try CPUInfo.requestedLevel(environment: ["MIXTRAL_CPU": ""]) == nil)
        #expect(try CPUInfo.requestedLevel(environment: ["MIXTRAL_CPU": "avx2"]) == .avx2)
        #expect(try CPUInfo.requestedLevel(environment: ["MIXTRAL_CPU": "AVX512"]) == .avx512)
        #expect(try CPUInfo.requestedLevel(environment: ["MIXTRAL_CPU": "generic"]) == .generic)
        #expect(throws: CPUError.unknownLevel("avx3")) { try CPUInfo.requestedLevel(environment: ["MIXTRAL_CPU": "avx3"]) }
    }

    @Test func tablesAreCappedAtTheCPU() {
        let cpu = CPUInfo.current
        #expect(KernelTable(level: .avx512).level == cpu.level)
        #expect(KernelTable(level: .generic).level == .generic)
        #expect(KernelTable.availableLevels.first == .generic && KernelTable.availableLevels.last == cpu.level)
        #expect(Int(KernelTable(level: .avx512).functions.level) == cpu.level.rawValue)
        // The level follows from the features.
        let avx2 = ["avx", "avx2", "fma", "f16c"].allSatisfy(cpu.has)
        let avx512 = avx2 && ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(cpu.has)
        #expect(cpu.level == (avx512 ? .avx512 : avx2 ? .avx2 : .generic))
        #expect(KernelTable(level: .generic).functions.bf16_gemm_panel == nil)
    }

    /// Random weights of `type` (rows x columns) and activations.
    static func matrix(_ type: WeightType, rows: Int, columns: Int, seed: UInt64) throws -> [UInt8] {
        var random = SeededRandom(seed: seed)
        let values = (0..<(rows * columns)).map { _ in random.float() }
        switch type {
        case .f32: return values.withUnsafeBytes { Array($0) }
        case .f16: return values.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
        case .bf16: return values.map(bfloat16Bits).withUnsafeBytes { Array($0) }
        default:
            let rowBytes = type.byteCount(elements: columns)!
            var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
            try values.withUnsafeBufferPointer { v in
                try bytes.withUnsafeMutableBytes { b in
                    for r in 0..<rows { try quantizeRow(type, v.baseAddress! + r * columns, b.baseAddress! + r * rowBytes, count: columns) }
                }
            }
            return bytes
        }
    }

    static func product(_ bytes: [UInt8], _ type: WeightType, rows: Int, columns: Int, tokens: Int,
                        precision: ActivationPrecision, level: CPULevel) -> [Float] {
        var random = SeededRandom(seed: 99)
        let x = (0..<(tokens * columns)).map { _ in random.float() * 2 }
        var y = [Float](repeating: .nan, count: tokens * rows)
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        bytes.withUnsafeBytes { w in
            y.withUnsafeMutableBufferPointer { yp in
                linear(x, tokens: tokens, WeightMatrix(type: type, rows: rows, columns: columns, base: w.baseAddress!),
                       yp.baseAddress!, precision: precision, pool: pool)
            }
        }
        return y
    }

    @Test(arguments: [WeightType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K])
    func fusedLevelsGiveTheSameBits(_ type: WeightType) throws {
        let fused = KernelTable.availableLevels.filter { $0 >= .avx2 }
        guard fused.count > 1 else { return }  // one fused level on this CPU: nothing to compare
        let (rows, columns) = (37, 512)
        let bytes = try Self.matrix(type, rows: rows, columns: columns, seed: 3)
        for tokens in [1, 3, 7, 20] {
            for precision in ActivationPrecision.allCases {
                // AVX-512's own arithmetic: bf16 activations on AVX512-BF16, Q4_0 decode on VBMI.
                if precision == .fast && type == .bf16 && tokens > bf16RowsMaxTokens { continue }
                if precision == .fast && type == .q4_0 && tokens <= int8RowsMaxTokens && CPUInfo.current.has("avx512vbmi") { continue }
                let results = fused.map { Self.product(bytes, type, rows: rows, columns: columns, tokens: tokens,
                                                       precision: precision, level: $0) }
                let same = zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }
                #expect(same, "\(type) \(precision) tokens \(tokens): \(fused[0]) and \(fused[1]) differ")
            }
        }
    }

    /// The 8-bit products (`.fast` on quantised weights) on every level, generic included.
    @Test(arguments: [WeightType.q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K])
    func eightBitProductsGiveTheSameBitsOnEveryLevel(_ type: WeightType) throws {
        let levels = KernelTable.availableLevels
        let bytes = try Self.matrix(type, rows: 21, columns: 512, seed: 4)
        // The token counts that take 8-bit kernels: rows and panels (Q4_0's rows at the
        // AVX-512 level run VBMI's own arithmetic, where the CPU has it).
        let counts = [WeightType.q4_1: [1, 4, 16, 20]][type] ?? [1, 4, 20]
        for tokens in counts {
            let vbmiRows = type == .q4_0 && tokens <= int8RowsMaxTokens && CPUInfo.current.has("avx512vbmi")
            let levels = vbmiRows ? levels.filter { $0 < .avx512 } : levels
            let results = levels.map { Self.product(bytes, type, rows: 21, columns: 512, tokens: tokens, precision: .fast, level: $0) }
            for (level, result) in zip(levels, results).dropFirst() {
                #expect(zip(results[0], result).allSatisfy { $0.bitPattern == $1.bitPattern },
                        "\(type) tokens \(tokens): generic and \(level) differ")
            }
        }
    }

    /// The Q8_0/Q8_1 activation quantisers and the panels' activation rows (with their sums
    /// per 16) give the generic level's bytes on every level: ties at .5 after scaling,
    /// a block of zeros, an infinity, padding rows.
    @Test func activationQuantisersGiveTheSameBytesOnEveryLevel() {
        var random = SeededRandom(seed: 21)
        let k = 256, tokens = 3, padded = 8
        var x = (0..<(tokens * k)).map { _ in random.float() * 6 }
        for i in 32..<64 { x[i] = 0 }
        x[70] = 127; x[71] = 0.5; x[72] = -1.5; x[73] = 2.5                 // 127 / 127: ties at ±.5
        x[300] = .infinity
        x[400] = -1e30
        struct Result: Equatable { var q: [Int8]; var d: [UInt32]; var s: [UInt32]; var xq: [UInt8]; var dx: [UInt32]; var sums: [Int32] }
        var results: [Result] = []
        for level in KernelTable.availableLevels {
            let t = KernelTable(level: level).functions
            var q = [Int8](repeating: 0, count: x.count), d = [Float](repeating: 0, count: x.count / 32), s = d
            t.q8_quantize(x, Int32(x.count), &q, &d, &s)
            var xq = [UInt8](repeating: 0, count: padded * k), dx = [Float](repeating: 0, count: padded * k / 32)
            var sums = [Int32](repeating: 0, count: padded * k / 16)
            t.int8_quantize_activations(x, Int32(tokens), Int32(padded), Int32(k), &xq, &dx, &sums)
            // The AVX-512 VNNI rows are q + 128 (vpdpbusd's unsigned operand): compare q.
            if level == .avx512 && CPUInfo.current.has("avx512vnni") { xq = xq.map { $0 &- 128 } }
            results.append(Result(q: q, d: d.map(\.bitPattern), s: s.map(\.bitPattern), xq: xq, dx: dx.map(\.bitPattern), sums: sums))
        }
        for (level, result) in zip(KernelTable.availableLevels, results).dropFirst() {
            #expect(result == results[0], "generic and \(level) differ")
        }
        // The sums are the quantised rows' own.
        let sums = results[0].sums, xq = results[0].xq
        #expect((0..<(padded * k / 16)).allSatisfy { c in sums[c] == xq[16 * c ..< 16 * (c + 1)].reduce(0) { $0 + Int32(Int8(bitPattern: $1)) } })
    }

    /// llama.cpp's steps between the products on every level, generic included.
    @Test func llamaCppStepsGiveTheSameBitsOnEveryLevel() {
        var random = SeededRandom(seed: 8)
        let n = 2816
        let x = (0..<n).map { i in i % 97 == 0 ? Float(i) * 0.05 - 100 : random.float() * 8 }
        let up = (0..<n).map { _ in random.float() }
        let weight = (0..<n).map { _ in random.float() }
        // Attention over an fp16 cache: 150 keys, head dims 64 and 80.
        let attentionInputs = [64, 80].map { d in
            (d: d, q: (0..<(3 * 4 * d)).map { _ in random.float() },
             k: (0..<(150 * 2 * d)).map { _ in Float(Float16(random.float())) },
             v: (0..<(150 * 2 * d)).map { _ in Float(Float16(random.float())) })
        }
        var outputs: [[Float]] = []
        for level in KernelTable.availableLevels {
            let kernels = KernelTable(level: level)
            var gate = x
            LlamaCppKernels.swiGLU(&gate, up, count: n, kernels: kernels)
            var probabilities = Array(x[0..<40])
            LlamaCppKernels.softmax(&probabilities, count: 40, kernels: kernels)
            var normed = [Float](repeating: 0, count: n)
            LlamaCppKernels.rmsNorm(x, weight, eps: 1e-5, count: n, &normed, kernels: kernels)
            let dots = [LlamaCppKernels.dot(x, up, count: n, tinyBLAS: false, kernels: kernels),
                        LlamaCppKernels.dot(x, up, count: n, tinyBLAS: true, kernels: kernels)]
            var attended: [Float] = []
            for (d, q, k, v) in attentionInputs {
                let shape = AttentionShape(heads: 4, kvHeads: 2, headDim: d, slidingWindow: nil)
                var blocked = [Float](repeating: 0, count: KeyLayout.count(positions: 150, kvHeads: 2, headDim: d))
                blocked.withUnsafeMutableBufferPointer { KeyLayout.store(k, count: 150, first: 0, kvHeads: 2, headDim: d, into: $0.baseAddress!) }
                var out = [Float](repeating: 0, count: 3 * 4 * d)
                out.withUnsafeMutableBufferPointer { o in
                    LlamaCppKernels.attention(q, tokens: 3, firstPosition: 147, keys: blocked, values: v, shape: shape,
                                              o.baseAddress!, pool: ComputePool(threadCount: 2, kernels: kernels))
                }
                attended += out
            }
            outputs.append(gate + probabilities + normed + dots + attended)
        }
        for (level, output) in zip(KernelTable.availableLevels, outputs).dropFirst() {
            #expect(zip(outputs[0], output).allSatisfy { $0.bitPattern == $1.bitPattern }, "generic and \(level) differ")
        }
    }
}
