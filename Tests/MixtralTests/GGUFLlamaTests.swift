import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// tiny-mixtral-hf.gguf was converted by llama.cpp's convert_hf_to_gguf.py from a random
/// transformers Mixtral (scripts/gguf/make_converted_fixture.py); the checkpoint's own
/// tensors are in tiny-mixtral-hf.expected.gguf under their Hugging Face names.
@Suite("GGUF llama/Mixtral layout")
struct GGUFLlamaTests {
    func rows(_ m: WeightMatrix) -> [Float] {
        var out = [Float](repeating: .nan, count: m.rows * m.columns)
        out.withUnsafeMutableBufferPointer { buffer in
            for r in 0..<m.rows {
                dequantizeRow(m.type, m.row(r), buffer.baseAddress! + r * m.columns, count: m.columns)
            }
        }
        return out
    }

    @Test func hyperparametersOfTheConvertedModel() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-hf.gguf")
        let h = try GGUFLlamaHyperparameters(file: file)
        #expect(h.vocabSize == 64)
        #expect(h.hiddenSize == 64)
        #expect(h.intermediateSize == 32)
        #expect(h.numLayers == 2)
        #expect(h.numHeads == 4)
        #expect(h.numKeyValueHeads == 2)
        #expect(h.headDim == 16)
        #expect(h.ropeDimensionCount == 16)
        #expect(h.numExperts == 4)
        #expect(h.numExpertsPerToken == 2)
        #expect(h.isMoE)
        #expect(h.rmsNormEps == Float(1e-5))
        #expect(h.ropeTheta == 1e6)
        #expect(h.contextLength == 128)
        #expect(!h.tieWordEmbeddings)
        #expect(h.ropeScalingType == nil)
    }

    /// Every tensor of the Hugging Face checkpoint, found by its HF name and (q, k) put back
    /// in HF row order, equals the checkpoint's tensor exactly.
    @Test func everyHFTensorIsFoundAndUnpermuted() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-hf.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-hf.expected.gguf")
        let h = try GGUFLlamaHyperparameters(file: file)
        #expect(expected.tensorNames.count == 41)
        var permuted = 0
        for name in expected.tensorNames {
            let reference = try expected.floats(name)
            let location = try file.llamaLocation(hfName: name, h)
            let owned = try file.llamaMatrixUndoingRoPEPermutation(hfName: name, h)
            #expect(firstBitMismatch(rows(owned.matrix), reference) == nil, "\(name) -> \(location.name)")
            if location.ropePermutedHeads != nil {
                permuted += 1
                // The stored rows really are in another order.
                #expect(firstBitMismatch(rows(try file.llamaMatrix(hfName: name, h)), reference) != nil, "\(name)")
            } else {
                #expect(firstBitMismatch(rows(try file.llamaMatrix(hfName: name, h)), reference) == nil, "\(name)")
            }
        }
        #expect(permuted == 4)  // q and k of two layers
    }

    /// Older files name each expert separately (blk.N.ffn_gate.E.weight).
    @Test func perExpertNames() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-hf-per-expert.gguf")
        let expected = try GGUFFixtures.open("tiny-mixtral-hf.expected.gguf")
        let h = try GGUFLlamaHyperparameters(file: file)
        #expect(h.numExperts == 4)
        var checked = 0
        for name in expected.tensorNames where name.contains(".experts.") {
            let location = try file.llamaLocation(hfName: name, h)
            #expect(location.expert == nil)
            #expect(location.name.hasPrefix("blk."))
            #expect(firstBitMismatch(rows(try file.llamaMatrix(hfName: name, h)), try expected.floats(name)) == nil, "\(name)")
            checked += 1
        }
        #expect(checked == 2 * 4 * 3)
        // This file has no output or embedding: tied, and the embedding is missing.
        #expect(h.tieWordEmbeddings)
        #expect(throws: GGUFError.self) { try file.llamaLocation(hfName: "lm_head.weight", h) }
    }

    @Test func unknownNamesAndExpertsAreTypedErrors() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-hf.gguf")
        let h = try GGUFLlamaHyperparameters(file: file)
        for name in ["model.layers.0.self_attn.rotary.weight", "model.layers.9.input_layernorm.weight",
                     "model.layers.0.block_sparse_moe.experts.4.w1.weight", "model.layers.0.block_sparse_moe.experts.0.w9.weight",
                     "transformer.h.0.weight", "lm_head.bias"] {
            #expect(throws: GGUFError.self, "\(name)") { try file.llamaLocation(hfName: name, h) }
        }
        #expect(try file.llamaLocation(hfName: "lm_head.weight", h).name == "output.weight")
        #expect(try file.llamaLocation(hfName: "model.layers.1.block_sparse_moe.experts.3.w2.weight", h)
                == GGUFLlamaTensorLocation(name: "blk.1.ffn_down_exps.weight", expert: 3, ropePermutedHeads: nil))
    }

    @Test func otherArchitecturesAreRejected() throws {
        let file = try GGUFFixtures.open("halves.gguf")  // written with architecture "llama" but no llama.* keys
        #expect(throws: GGUFError.missingKey(path: file.path, key: "llama.embedding_length")) {
            try GGUFLlamaHyperparameters(file: file)
        }
        let expected = try GGUFFixtures.open("tiny-mixtral-hf.expected.gguf")  // architecture "reference"
        #expect(throws: GGUFError.self) { try GGUFLlamaHyperparameters(file: expected) }
    }

    /// A NaN, zero or negative RoPE base or norm epsilon is refused by key (it would compute
    /// garbage): the converted fixture with one float patched.
    @Test(arguments: ["llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"], [Float.nan, 0, -1])
    func nonPositiveFloatsAreRefused(_ key: String, _ value: Float) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.path("tiny-mixtral-hf.gguf"))))
        // A metadata entry is the key (u64 length, bytes), its u32 type (6: float32), the value.
        let name = Array(key.utf8)
        let start = try #require((0...(bytes.count - name.count)).first { bytes[$0..<($0 + name.count)].elementsEqual(name) })
        let type = start + name.count
        #expect(bytes[type] == 6)
        let bits = value.bitPattern
        for i in 0..<4 { bytes[type + 4 + i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i))) }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/patched.gguf"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let file = try GGUFFile(path: path)
        var refusedKey: String?
        do {
            _ = try GGUFLlamaHyperparameters(file: file)
        } catch {
            if case .invalidMetadata(_, let found, _) = error { refusedKey = found }
        }
        #expect(refusedKey == key)
    }

    @Test(arguments: [2, 16, 128])
    func ropeRowMapIsAPermutationWithinEachHead(_ headDim: Int) {
        let rows = 3 * headDim
        let mapped = (0..<rows).map { ggufRoPERow(hfRow: $0, headDim: headDim) }
        #expect(Set(mapped) == Set(0..<rows))
        for r in 0..<rows { #expect(mapped[r] / headDim == r / headDim) }
        // HF row j (first half) is GGUF row 2j; HF row hd/2 + j is GGUF row 2j + 1.
        #expect(mapped[headDim / 2] == 1)
        if headDim >= 4 {
            #expect(mapped[1] == 2)
            #expect(mapped[headDim + headDim / 2 + 1] == headDim + 3)
        }
    }
}
