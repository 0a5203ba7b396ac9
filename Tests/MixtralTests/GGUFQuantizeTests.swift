import Foundation
import Testing
@testable import Mixtral
@testable import MixtralKernels
import MixtralCKernels

@Suite("Quantisation and quantised matrix-vector products")
struct GGUFQuantizeTests {
    /// quantize.gguf holds F32 rows and their encodings by gguf.quants.quantize.
    @Test(arguments: [WeightType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1])
    func quantizeRowMatchesTheReferenceBytes(_ type: WeightType) throws {
        let file = try GGUFFixtures.open("quantize.gguf")
        let input = try file.floats("input")
        let reference = try file.data("input." + type.rawValue.lowercased())
        let info = try file.tensorInfo("input")
        let columns = info.dimensions[0], rows = info.dimensions[1]
        #expect(reference.count == rows * (type.byteCount(elements: columns) ?? -1))

        let rowBytes = try #require(type.byteCount(elements: columns))
        // One known difference, for blocks of zeros: gguf-py stores Q4_0/Q5_0's d as
        // -0 / -8 with the sign of element 0, and Q4_1/Q5_1's m as +0; ggml's reference
        // (checked by linking its quantize_row_*_ref) stores d = -0 always and m = element 0.
        // We follow ggml, so the expected bytes are patched for those blocks.
        var expected = Array(reference)
        for b in 0 ..< input.count / 32 where input[32 * b ..< 32 * (b + 1)].allSatisfy({ $0 == 0 }) {
            let base = b * type.blockBytes
            switch type {
            case .q4_0, .q5_0:
                expected[base] = 0x00
                expected[base + 1] = 0x80
            case .q4_1, .q5_1:
                expected[base + 2] = 0x00
                expected[base + 3] = input[32 * b].sign == .minus ? 0x80 : 0x00
            default:
                break
            }
        }
        var output = [UInt8](repeating: 0xAA, count: reference.count)
        try input.withUnsafeBufferPointer { src in
            try output.withUnsafeMutableBytes { dst in
                for r in 0..<rows {
                    try quantizeRow(type, src.baseAddress! + r * columns, dst.baseAddress! + r * rowBytes, count: columns)
                }
            }
        }
        for r in 0..<rows {
            let range = r * rowBytes ..< (r + 1) * rowBytes
            if !output[range].elementsEqual(expected[range]) {
                let i = zip(output[range], expected[range]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
                Issue.record("\(type) row \(r): first differing byte \(i) of the row")
            }
        }
    }

    /// Half and bfloat16 encodings give back every non-NaN pattern from its numpy value.
    @Test(arguments: ["f16", "bf16"])
    func halfEncodingsRoundTrip(_ name: String) throws {
        let file = try GGUFFixtures.open("halves.gguf")
        let values = try file.floats(name + ".expected")
        let original = try file.data(name)
        for (i, value) in values.enumerated() where !value.isNaN {
            let bits = name == "f16" ? halfBits(value) : bfloat16Bits(value)
            let expected = UInt16(original[2 * i]) | UInt16(original[2 * i + 1]) << 8
            if bits != expected {
                Issue.record("\(name) 0x\(String(expected, radix: 16)) encoded as 0x\(String(bits, radix: 16))")
                return
            }
        }
        // NaNs stay NaN.
        #expect(Float(Float16(bitPattern: halfBits(.nan))).isNaN)
        #expect(floatFromBFloat16Bits(bfloat16Bits(Float(bitPattern: 0x7F80_0001))).isNaN)
    }

    @Test func partialBlocksAreATypedError() throws {
        let x = [Float](repeating: 1, count: 256)
        var out = [UInt8](repeating: 0, count: 1024)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in
                #expect(throws: QuantizationError.partialBlock(type: .q8_0, count: 48)) {
                    try quantizeRow(.q8_0, src.baseAddress!, dst.baseAddress!, count: 48)
                }
                #expect(throws: QuantizationError.partialBlock(type: .q4_K, count: 128)) {
                    try quantizeRow(.q4_K, src.baseAddress!, dst.baseAddress!, count: 128)
                }
            }
        }
    }

    /// Non-finite inputs must not trap.
    @Test func nonFiniteInputsDoNotTrap() throws {
        var x = [Float](repeating: 0.5, count: 256)
        x[3] = .nan
        x[7] = .infinity
        x[9] = -.infinity
        x[100] = .nan
        x[200] = 1e38
        var out = [UInt8](repeating: 0, count: 1024)
        for type in WeightType.allCases {
            try x.withUnsafeBufferPointer { src in
                try out.withUnsafeMutableBytes { dst in
                    try quantizeRow(type, src.baseAddress!, dst.baseAddress!, count: 256)
                }
            }
        }
    }

    /// matvec (straight from the blocks) against dequantize-then-dot in Double, on every
    /// tensor of the llama-quantize fixture, at every CPU level.
    @Test(arguments: KernelTable.availableLevels)
    func matvecAgreesWithDequantizeThenDot(_ level: CPULevel) throws {
        let kernels = KernelTable(level: level)
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-mixed.expected.gguf")
        var generator = SplitMix64(seed: 7)
        var checkedTypes = Set<WeightType>()
        for name in file.tensorNames {
            let w = try file.matrix(name)
            let weights = try expected.floats(name)
            let x = (0..<w.columns).map { _ in Float(Int64(generator.next() % 2001) - 1000) / 1000 }
            var y = [Float](repeating: .nan, count: w.rows)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in matvec(w, xp.baseAddress!, yp.baseAddress!, kernels: kernels) }
            }
            var ySplit = [Float](repeating: .nan, count: w.rows)
            x.withUnsafeBufferPointer { xp in
                ySplit.withUnsafeMutableBufferPointer { yp in
                    let half = w.rows / 2
                    matvec(w, xp.baseAddress!, yp.baseAddress!, rows: half..<w.rows, kernels: kernels)
                    matvec(w, xp.baseAddress!, yp.baseAddress!, rows: 0..<half, kernels: kernels)
                }
            }
            #expect(ySplit == y, "\(name): row ranges")
            for r in 0..<w.rows {
                var exact = 0.0, magnitude = 0.0
                for c in 0..<w.columns {
                    let p = Double(weights[r * w.columns + c]) * Double(x[c])
                    exact += p
                    magnitude += abs(p)
                }
                let error = abs(Double(y[r]) - exact)
                if !(error <= 1e-5 * magnitude + 1e-30) {
                    Issue.record("\(level) \(name) (\(w.type)) row \(r): \(y[r]) vs \(exact) (sum |w x| = \(magnitude))")
                    break
                }
            }
            checkedTypes.insert(w.type)
        }
        #expect(checkedTypes.isSuperset(of: [.q8_0, .q4_0, .q4_1]))
    }

    /// The 8-bit-activation kernels at every CPU level: the activations are exactly
    /// quantizeRow's Q8_0 blocks, and each row equals Σ dequantised weight x dequantised
    /// activation (in Double) up to fp32 rounding (Q4_1 with llama.cpp's s = fp16(d Σq) in
    /// place of d Σq).
    @Test(arguments: KernelTable.availableLevels)
    func q8ActivationMatvecIsExactOnQuantisedActivations(_ level: CPULevel) throws {
        let kernels = KernelTable(level: level).functions
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-mixed.expected.gguf")
        var generator = SplitMix64(seed: 11)
        var checked = Set<WeightType>()
        for name in file.tensorNames {
            let w = try file.matrix(name)
            guard [.q8_0, .q4_0, .q4_1].contains(w.type) else { continue }
            let weights = try expected.floats(name)
            let x = (0..<w.columns).map { _ in Float(Int64(generator.next() % 2001) - 1000) / 700 }
            let blocks = w.columns / 32
            var q = [Int8](repeating: 0, count: w.columns), d = [Float](repeating: 0, count: blocks), s = d
            kernels.q8_quantize(x, Int32(w.columns), &q, &d, &s)

            // Activations = quantizeRow(.q8_0), dequantised exactly.
            var reference = [UInt8](repeating: 0, count: blocks * 34)
            try x.withUnsafeBufferPointer { xp in
                try reference.withUnsafeMutableBytes { try quantizeRow(.q8_0, xp.baseAddress!, $0.baseAddress!, count: w.columns) }
            }
            var xq = [Float](repeating: 0, count: w.columns)
            reference.withUnsafeBytes { raw in
                xq.withUnsafeMutableBufferPointer { dequantizeRow(.q8_0, raw.baseAddress!, $0.baseAddress!, count: w.columns) }
            }
            for b in 0..<blocks {
                #expect(UInt8(truncatingIfNeeded: Float16(d[b]).bitPattern) == reference[34 * b], "\(level) \(name) block \(b) scale")
                #expect(q[(32 * b)..<(32 * b + 32)].map { UInt8(bitPattern: $0) } == Array(reference[(34 * b + 2)..<(34 * b + 34)]))
            }

            var y = [Float](repeating: .nan, count: w.rows)
            y.withUnsafeMutableBufferPointer {
                kernels.q8_matmul(w.base, w.rowBytes, int8Type(w.type), Int32(w.rows), Int32(w.columns), q, d, s, 1,
                                  $0.baseAddress!, w.rows)
            }
            for r in 0..<w.rows {
                var exact = 0.0, magnitude = 0.0
                for c in 0..<w.columns {
                    let p = Double(weights[r * w.columns + c]) * Double(xq[c])
                    exact += p
                    magnitude += abs(p)
                }
                if w.type == .q4_1 {
                    for b in 0..<blocks {
                        let sum = q[(32 * b)..<(32 * b + 32)].reduce(0) { $0 + Int($1) }
                        let m = w.row(r).load(fromByteOffset: 20 * b + 2, as: Float16.self)
                        exact += Double(Float(m)) * (Double(s[b]) - Double(d[b]) * Double(sum))
                    }
                }
                if !(abs(Double(y[r]) - exact) <= 1e-5 * magnitude + 1e-30) {
                    Issue.record("\(level) \(name) (\(w.type)) row \(r): \(y[r]) vs \(exact)")
                    break
                }
            }
            checked.insert(w.type)
        }
        #expect(checked == [.q8_0, .q4_0, .q4_1])
    }

    /// Q4_K, Q5_K and Q6_K as llama-quantize writes them (no importance matrix): the K-quant
    /// tensors' F32 inputs (kquant-sources.gguf) against llama-quantize's bytes
    /// (tiny-mixtral-mixed.gguf).
    @Test(arguments: [(WeightType.q4_K, 96), (.q5_K, 128), (.q6_K, 128)])
    func kQuantsMatchLlamaQuantize(_ type: WeightType, _ blockCount: Int) throws {
        let sources = try GGUFFixtures.open("kquant-sources.gguf")
        let quantized = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        var checked = 0
        for name in sources.tensorNames where try quantized.tensorInfo(name).type.weightType == type {
            let input = try sources.floats(name)
            let reference = try quantized.data(name)
            var output = [UInt8](repeating: 0, count: reference.count)
            try input.withUnsafeBufferPointer { src in
                try output.withUnsafeMutableBytes { dst in
                    try quantizeRow(type, src.baseAddress!, dst.baseAddress!, count: input.count)
                }
            }
            let size = type.blockBytes
            var differing = 0
            for b in 0 ..< reference.count / size where !output[size * b ..< size * (b + 1)].elementsEqual(reference[size * b ..< size * (b + 1)]) {
                differing += 1
            }
            #expect(differing == 0, "\(name): \(differing) of \(reference.count / size) blocks differ")
            checked += reference.count / size
        }
        #expect(checked == blockCount)
    }

    /// K-quant rows with Q8_K activations: equal to Σ dequantised weight x dequantised
    /// activation (d x q, in Double) up to fp32 rounding, for every Q4_K, Q5_K and Q6_K tensor
    /// of the llama-quantize fixture.
    @Test(arguments: KernelTable.availableLevels)
    func q8KActivationMatvecIsExactOnQuantisedActivations(_ level: CPULevel) throws {
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-mixed.expected.gguf")
        var generator = SplitMix64(seed: 13)
        var checked = Set<WeightType>()
        let pool = ComputePool(threadCount: 2, kernels: KernelTable(level: level))
        for name in file.tensorNames {
            let w = try file.matrix(name)
            guard [.q4_K, .q5_K, .q6_K].contains(w.type) else { continue }
            let weights = try expected.floats(name)
            var x = (0..<w.columns).map { _ in Float(Int64(generator.next() % 2001) - 1000) / 300 }
            x[5] = 0  // zeros and a zero block of 256 on the way
            var activations = Q8KActivations()
            x.withUnsafeBufferPointer { activations.quantize($0.baseAddress!, count: w.columns) }
            #expect(activations.quants.allSatisfy { $0 >= -127 })
            let xq = (0..<w.columns).map { activations.scales[$0 / 256] * Float(activations.quants[$0]) }
            for g in 0 ..< w.columns / 16 {
                #expect(activations.sums16[g] == activations.quants[16 * g ..< 16 * (g + 1)].reduce(0) { $0 + Int32($1) })
            }
            var y = [Float](repeating: .nan, count: w.rows)
            y.withUnsafeMutableBufferPointer { matvec(w, activations, $0.baseAddress!, rows: 0..<w.rows, kernels: pool.kernels) }
            // The decode path of `.fast` quantises x the same way.
            var fast = [Float](repeating: .nan, count: w.rows)
            fast.withUnsafeMutableBufferPointer { linear(x, tokens: 1, w, $0.baseAddress!, precision: .fast, pool: pool) }
            for (kernel, values) in [("matvec", y), ("fast", fast)] {
                for r in 0..<w.rows {
                    var exact = 0.0, magnitude = 0.0
                    for c in 0..<w.columns {
                        let p = Double(weights[r * w.columns + c]) * Double(xq[c])
                        exact += p
                        magnitude += abs(p)
                    }
                    if !(abs(Double(values[r]) - exact) <= 1e-5 * magnitude + 1e-30) {
                        Issue.record("\(level) \(kernel): \(name) (\(w.type)) row \(r): \(values[r]) vs \(exact)")
                        break
                    }
                }
            }
            checked.insert(w.type)
        }
        #expect(checked == [.q4_K, .q5_K, .q6_K])
    }
}
