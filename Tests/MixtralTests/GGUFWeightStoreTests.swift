import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// The tiny Mixtral through the GGUF path (llama.cpp's converter output) against the same
/// checkpoint through the safetensors path. Set GGUF_HF_FOLDER to that HF folder
/// (scripts/gguf/make_converted_fixture.py --keep-checkpoint DIR writes it).
@Suite("GGUF weight store", .enabled(if: ProcessInfo.processInfo.environment["GGUF_HF_FOLDER"] != nil))
struct GGUFWeightStoreTests {
    @Test func logitsMatchTheSafetensorsCheckpoint() throws {
        let folder = ProcessInfo.processInfo.environment["GGUF_HF_FOLDER"] ?? ""
        let pool = ComputePool(threadCount: 1)
        let hf = try LanguageModel(folder: folder, threads: 1)
        let store = try GGUFWeightStore(path: GGUFFixtures.path("tiny-mixtral-hf.gguf"))
        #expect(store.config == hf.config)
        let gguf = try LanguageModel(config: store.config, store: store, pool: pool)
        let tokens = [1, 5, 9, 3, 20, 41, 7]
        let expected = try hf.forward(tokens, cache: hf.makeCache(), allLogits: true)
        let actual = try gguf.forward(tokens, cache: gguf.makeCache(), allLogits: true)
        #expect(actual.map(\.bitPattern) == expected.map(\.bitPattern))

        for name in ["tiny-mixtral-hf-q8_0.gguf", "tiny-mixtral-hf-q4_0.gguf"] {
            let qstore = try GGUFWeightStore(path: GGUFFixtures.path(name))
            let q = try LanguageModel(config: qstore.config, store: qstore, pool: pool)
            let logits = try q.forward(tokens, cache: q.makeCache(), allLogits: true)
            let maxError = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
            let scale = expected.map { abs($0) }.max() ?? 0
            print("\(name): max |logit error| \(maxError) (max |logit| \(scale))")
            #expect(maxError < (name.contains("q8_0") ? 0.05 : 0.25) * scale)
        }
    }
}
