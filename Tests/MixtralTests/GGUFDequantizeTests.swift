import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// The committed GGUF fixtures (made by scripts/gguf/make_vectors.py).
enum GGUFFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/gguf")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func open(_ name: String) throws -> GGUFFile { try GGUFFile(path: path(name)) }
}

/// Index of the first element whose bit pattern differs, with both patterns.
func firstBitMismatch(_ actual: [Float], _ expected: [Float]) -> (index: Int, actual: UInt32, expected: UInt32)? {
    if actual.count != expected.count { return (min(actual.count, expected.count), 0, 0) }
    for i in actual.indices where actual[i].bitPattern != expected[i].bitPattern {
        return (i, actual[i].bitPattern, expected[i].bitPattern)
    }
    return nil
}

@Suite("GGUF dequantisation against gguf.quants.dequantize")
struct GGUFDequantizeTests {
    /// Every tensor of a file quantised by llama.cpp's llama-quantize, row by row, compared
    /// bit for bit with the reference values.
    @Test func everyTensorOfTheLlamaQuantizeFileMatchesTheReference() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-mixed.expected.gguf")
        #expect(file.tensorNames.count == 23)
        #expect(Set(file.tensorNames) == Set(expected.tensorNames))

        var typesSeen = Set<WeightType>()
        for name in file.tensorNames {
            let info = try file.tensorInfo(name)
            let reference = try expected.floats(name)
            #expect(try expected.tensorInfo(name).dimensions == info.dimensions, "\(name)")

            let matrix = try file.matrix(name)
            typesSeen.insert(matrix.type)
            #expect(matrix.rows * matrix.columns == reference.count, "\(name)")
            var actual = [Float](repeating: .nan, count: reference.count)
            actual.withUnsafeMutableBufferPointer { out in
                for r in 0..<matrix.rows {
                    dequantizeRow(matrix.type, matrix.row(r), out.baseAddress! + r * matrix.columns, count: matrix.columns)
                }
            }
            if let mismatch = firstBitMismatch(actual, reference) {
                Issue.record("\(name) (\(matrix.type)): element \(mismatch.index) is 0x\(String(mismatch.actual, radix: 16)), reference 0x\(String(mismatch.expected, radix: 16))")
            }
            // The whole-tensor path gives the same.
            #expect(firstBitMismatch(try file.floats(name), reference) == nil, "\(name)")
        }
        // Every GGML type the engine reads (NF4 is bitsandbytes' format, made at load only).
        let ggmlTypes = Set(WeightType.allCases).subtracting([.nf4])
        #expect(typesSeen == ggmlTypes, "types missing: \(ggmlTypes.subtracting(typesSeen))")
    }

    /// Expert tensors split into one matrix per expert.
    @Test func expertMatricesAreConsecutiveSlices() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-mixed.expected.gguf")
        for name in ["blk.0.ffn_gate_exps.weight", "blk.0.ffn_down_exps.weight", "blk.1.ffn_up_exps.weight"] {
            let experts = try file.matrices(name)
            let reference = try expected.floats(name)
            #expect(experts.count == 2)
            for (e, matrix) in experts.enumerated() {
                let size = matrix.rows * matrix.columns
                var actual = [Float](repeating: .nan, count: size)
                actual.withUnsafeMutableBufferPointer { out in
                    for r in 0..<matrix.rows {
                        dequantizeRow(matrix.type, matrix.row(r), out.baseAddress! + r * matrix.columns, count: matrix.columns)
                    }
                }
                let slice = Array(reference[e * size ..< (e + 1) * size])
                #expect(firstBitMismatch(actual, slice) == nil, "\(name) expert \(e)")
            }
        }
        #expect(throws: GGUFError.self) { try file.matrices("blk.0.attn_q.weight") }
    }

    /// All 65536 F16 and BF16 bit patterns, NaN payloads and subnormals included.
    @Test(arguments: ["f16", "bf16"])
    func everySixteenBitPattern(_ name: String) throws {
        let file = try GGUFFixtures.open("halves.gguf")
        let reference = try file.floats(name + ".expected")
        let actual = try file.floats(name)
        #expect(actual.count == 65536)
        if let mismatch = firstBitMismatch(actual, reference) {
            Issue.record("\(name) pattern 0x\(String(mismatch.index, radix: 16)): 0x\(String(mismatch.actual, radix: 16)), reference 0x\(String(mismatch.expected, radix: 16))")
        }
    }

    /// A count that is not whole blocks reads only the whole blocks; the rest is NaN.
    @Test func partialBlockCountsDoNotReadPastTheRow() {
        var block = [UInt8](repeating: 1, count: 34)  // Q8_0: d = half 0x0101, q = 1
        var out = [Float](repeating: 0, count: 40)
        block.withUnsafeMutableBytes { raw in
            out.withUnsafeMutableBufferPointer { dequantizeRow(.q8_0, raw.baseAddress!, $0.baseAddress!, count: 40) }
        }
        #expect(out[0..<32].allSatisfy { $0 == floatFromHalfBits(0x0101) })
        #expect(out[32...].allSatisfy { $0.isNaN })
    }

    @Test func halfConversionKeepsSignallingNaNs() {
        #expect(floatFromHalfBits(0x7C01).bitPattern == 0x7F80_2000)
        #expect(floatFromHalfBits(0x0001) == 0x1p-24)
        #expect(floatFromHalfBits(0x8000).bitPattern == 0x8000_0000)
        #expect(floatFromHalfBits(0x3C00) == 1.0)
        #expect(floatFromHalfBits(0xFC00) == -.infinity)
    }
}
