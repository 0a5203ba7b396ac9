import Testing
@testable import Mixtral
import MixtralKernels

/// The forward pass and greedy generation against transformers' own outputs on the same
/// checkpoints (scripts/parity/make_fixtures.py).
@Suite struct ParityTests {
    @Test(arguments: Fixtures.parityNames, KernelTable.availableLevels)
    func logitsMatchTransformers(_ name: String, _ level: CPULevel) throws {
        let model = try LanguageModel(folder: Fixtures.parity(name), threads: 2, kernels: KernelTable(level: level))
        let reference = try Fixtures.reference(name)
        let expected = try NPY.read(path: Fixtures.parity(name) + "/logits.npy")
        let logits = try model.forward(reference.prompt_ids, cache: model.makeCache(), allLogits: true)
        #expect(expected.shape == [reference.prompt_ids.count, model.config.vocabSize])
        #expect(logits.count == expected.values.count)
        let scale = expected.values.map(abs).max() ?? 0
        let worst = zip(logits, expected.values).map { abs($0 - $1) }.max() ?? .infinity
        // The bound: max |logit - transformers| <= 1e-4 x max |logit|.
        #expect(worst <= 1e-4 * scale, "\(level): max difference \(worst), max |logit| \(scale)")
    }

    @Test(arguments: Fixtures.parityNames, KernelTable.availableLevels)
    func greedyMatchesTransformers(_ name: String, _ level: CPULevel) throws {
        let model = try LanguageModel(folder: Fixtures.parity(name), threads: 2, kernels: KernelTable(level: level))
        let reference = try Fixtures.reference(name)
        var options = try GenerationOptions.defaults(folder: Fixtures.parity(name), config: model.config)
        options.maxNewTokens = 64
        let withEOS = try model.generate(prompt: reference.prompt_ids, options: options)
        #expect(withEOS.generatedIDs == reference.greedy_eos_ids, "\(level)")
        options.eosTokenIDs = []
        let withoutEOS = try model.generate(prompt: reference.prompt_ids, options: options)
        #expect(withoutEOS.generatedIDs == reference.greedy_ids, "\(level)")
    }

    /// A prompt longer than the prefill chunk runs in chunks; the logits are those of
    /// feeding it in two halves of under a chunk each.
    @Test func longPromptsRunInChunks() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-sliding"), threads: 2)
        let count = LanguageModel.prefillChunk + 88
        let prompt = (0..<count).map { ($0 * 37 + 11) % model.config.vocabSize }
        let chunked = try model.forward(prompt, cache: model.makeCache(maxPositions: 1024), allLogits: true)
        let cache = model.makeCache(maxPositions: 1024)
        let halves = try model.forward(Array(prompt[..<(count / 2)]), cache: cache, allLogits: true)
            + model.forward(Array(prompt[(count / 2)...]), cache: cache, allLogits: true)
        #expect(chunked.count == count * model.config.vocabSize)
        let scale = halves.map(abs).max() ?? 1
        #expect(zip(chunked, halves).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
        // Only the last position's logits: the same values (lm_head on one row sums in another order).
        let last = try model.forward(prompt, cache: model.makeCache(maxPositions: 1024))
        #expect(zip(last, chunked.suffix(model.config.vocabSize)).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
    }

    @Test func incrementalDecodingEqualsOneBatch() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-sliding"), threads: 2)
        let prompt = try Fixtures.reference("mixtral-sliding").prompt_ids
        let batched = try model.forward(prompt, cache: model.makeCache(), allLogits: true)
        let cache = model.makeCache()
        var stepwise: [Float] = []
        for id in prompt { stepwise += try model.forward([id], cache: cache) }
        let worst = zip(batched, stepwise).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4)
    }
}
