import Foundation
import Testing
import MixtralKernels

/// NF4 quantisation and dequantisation bit for bit against bitsandbytes
/// (scripts/quantize/make_nf4_vectors.py).
@Suite struct NF4Tests {
    struct Case: Decodable {
        let input_bits: [UInt32]
        let codes: [UInt8]
        let absmax_bits: [UInt32]
        let dequantized_bits: [UInt32]
    }

    @Test func matchesBitsandbytes() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.root + "/nf4.json"))
        let cases = try JSONDecoder().decode([Case].self, from: data)
        #expect(cases.count == 5)
        for (index, item) in cases.enumerated() {
            let x = item.input_bits.map { Float(bitPattern: $0) }
            let blocks = x.count / 64
            var bytes = [UInt8](repeating: 0, count: blocks * 36)
            try x.withUnsafeBufferPointer { src in
                try bytes.withUnsafeMutableBytes { try quantizeRow(.nf4, src.baseAddress!, $0.baseAddress!, count: x.count) }
            }
            for b in 0..<blocks {
                let absmax = bytes[(36 * b)..<(36 * b + 4)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                #expect(absmax == item.absmax_bits[b], "row \(index) block \(b) absmax")
                #expect(Array(bytes[(36 * b + 4)..<(36 * b + 36)]) == Array(item.codes[(32 * b)..<(32 * b + 32)]),
                        "row \(index) block \(b) codes")
            }
            var restored = [Float](repeating: .nan, count: x.count)
            bytes.withUnsafeBytes { raw in
                restored.withUnsafeMutableBufferPointer { dequantizeRow(.nf4, raw.baseAddress!, $0.baseAddress!, count: x.count) }
            }
            #expect(restored.map(\.bitPattern) == item.dequantized_bits, "row \(index) dequantised")
        }
    }
}
