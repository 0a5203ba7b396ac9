import Foundation
import Testing
@testable import Mixtral

@Suite struct SamplingTests {
    /// Renders ids as words between spaces: " 12 7 301 ".
    struct WordTokenizer: Tokenizer {
        var vocabularySize: Int { 1 << 20 }
        var bosTokenID: Int? { nil }
        var eosTokenIDs: [Int] { [] }
        func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { text.split(separator: " ").compactMap { Int($0) } }
        func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { " " + ids.map(String.init).joined(separator: " ") + " " }
        func isSpecial(_ id: Int) -> Bool { false }
    }

    struct ProcessorCase: Decodable {
        let settings: [String: Double]
        let scores: [Float]
        let previous: [Int]
        let expected: [Float?]  // nil = -inf
    }

    /// Each processor chain against transformers' own processors on the same scores.
    @Test func processorsMatchTransformers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.root + "/processors.json"))
        let cases = try JSONDecoder().decode([ProcessorCase].self, from: data)
        #expect(cases.count == 10)
        for item in cases {
            var options = GenerationOptions()
            options.doSample = true
            options.topK = item.settings["top_k"].map { Int($0) } ?? 0
            options.temperature = item.settings["temperature"].map { Float($0) } ?? 1
            options.topP = item.settings["top_p"].map { Float($0) } ?? 1
            options.minP = item.settings["min_p"].map { Float($0) }
            options.repetitionPenalty = item.settings["repetition_penalty"].map { Float($0) } ?? 1
            var scores = item.scores
            for processor in options.processors(promptLength: 0) { processor.process(&scores, previous: item.previous) }
            for (index, (got, expected)) in zip(scores, item.expected).enumerated() {
                if let expected {
                    #expect(abs(got - expected) <= 1e-5 * max(1, abs(expected)), "\(item.settings) index \(index)")
                } else {
                    #expect(got == -.infinity, "\(item.settings) index \(index) should be removed")
                }
            }
        }
    }

    /// OpenAI's definition: score - c * frequency - (c > 0) * presence, with c the number of
    /// times the token was generated; prompt ids do not count.
    @Test func presenceAndFrequencyPenaltiesCountGeneratedTokensOnly() {
        var options = GenerationOptions()
        options.presencePenalty = 0.5
        options.frequencyPenalty = 0.25
        let previous = [3, 4, 4, 5, 5, 5, 2]  // prompt 3, 4, 4; generated 5, 5, 5, 2
        var scores: [Float] = [1, 1, 1, 1, 1, 1]
        for processor in options.processors(promptLength: 3) { processor.process(&scores, previous: previous) }
        #expect(scores == [1, 1, 1 - 0.25 - 0.5, 1, 1, 1 - 3 * 0.25 - 0.5])
        var greedy = options
        greedy.presencePenalty = 0
        greedy.frequencyPenalty = 0
        #expect(greedy.processors(promptLength: 3).isEmpty)
        options.frequencyPenalty = 2.5
        #expect(options.validationError()?.contains("frequency_penalty") == true)
    }

    @Test func sameSeedSameTextDifferentSeedDifferentText() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 2)
        let prompt = try Fixtures.reference("mixtral-gqa").prompt_ids
        var options = GenerationOptions()
        options.doSample = true
        options.temperature = 1.0
        options.maxNewTokens = 24
        options.seed = 1234
        let first = try model.generate(prompt: prompt, options: options).generatedIDs
        let again = try model.generate(prompt: prompt, options: options).generatedIDs
        options.seed = 99
        let other = try model.generate(prompt: prompt, options: options).generatedIDs
        #expect(first == again)
        #expect(first != other)
        #expect(first.count == 24)
    }

    @Test func greedyTakesTheFirstMaximum() {
        var sampler = GreedySampler()
        #expect(sampler.choose(from: [0.5, 2, 2, -1]) == 1)
    }

    @Test func multinomialFollowsTheDistribution() {
        var sampler = MultinomialSampler(seed: 5)
        let scores: [Float] = [log(0.7), log(0.2), log(0.1), -.infinity]
        var counts = [0, 0, 0, 0]
        for _ in 0..<20_000 { counts[sampler.choose(from: scores)] += 1 }
        #expect(counts[3] == 0)
        #expect(abs(Double(counts[0]) / 20_000 - 0.7) < 0.02)
        #expect(abs(Double(counts[2]) / 20_000 - 0.1) < 0.02)
    }

    @Test func stopsAtStopStringsAndEOS() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 2)
        let reference = try Fixtures.reference("mixtral-gqa")
        var options = GenerationOptions()
        options.maxNewTokens = 64
        // Stop when the "text" (ids rendered as words) contains the 5th greedy token.
        options.stopStrings = [" \(reference.greedy_ids[4]) "]
        let stopped = try model.generate(prompt: reference.prompt_ids, options: options, tokenizer: WordTokenizer())
        #expect(stopped.stopReason == .stopString)
        #expect(stopped.generatedIDs == Array(reference.greedy_ids.prefix(5)))
        options.stopStrings = []
        options.eosTokenIDs = [reference.greedy_ids[9]]
        let eos = try model.generate(prompt: reference.prompt_ids, options: options)
        #expect(eos.stopReason == .endOfSequence)
        #expect(eos.generatedIDs.last == reference.greedy_ids[9])
    }
}
