import Foundation
import Testing
@testable import Mixtral

/// Paths of fixtures that other test targets own (read only).
enum SharedFixtures {
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
    static func parity(_ name: String) -> String { tests + "/MixtralTests/Fixtures/parity/" + name }
    static let v1Tokenizer = tests + "/MixtralTokenizersTests/Fixtures/v1/tokenizer.model"

    static func promptIDs(_ name: String) throws -> [Int] {
        let data = try Data(contentsOf: URL(fileURLWithPath: parity(name) + "/reference.json"))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return object?["prompt_ids"] as? [Int] ?? []
    }
}

/// Continuous batching must not change what a sequence computes: the batched forward pass
/// against one-sequence `forward`, and the scheduler's greedy tokens against `generate`.
@Suite struct BatchedForwardTests {
    static let models = ["mixtral-gqa", "mixtral-sliding", "mistral-dense", "mixtral-bf16"]

    /// Prompts of different lengths from the fixture's prompt.
    static func prompts(_ base: [Int]) -> [[Int]] {
        [base, Array(base.prefix(3)), Array(base.reversed()), [base[0]], Array(base.dropFirst(2))]
    }

    static func closeness(_ a: [Float], _ b: [Float]) -> (worst: Float, scale: Float) {
        (zip(a, b).map { abs($0 - $1) }.max() ?? .infinity, b.map(abs).max() ?? 0)
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    @Test(arguments: models)
    func batchedStepsEqualSingleSequences(_ name: String) throws {
        let model = try LanguageModel(folder: SharedFixtures.parity(name), threads: 2)
        let prompts = Self.prompts(try SharedFixtures.promptIDs(name))
        // Reference: each sequence alone, prompt then three greedy steps.
        var single: [[[Float]]] = []
        for prompt in prompts {
            let cache = model.makeCache()
            var steps = [try model.forward(prompt, cache: cache)]
            for _ in 0..<3 { steps.append(try model.forward([Self.argmax(steps.last!)], cache: cache)) }
            single.append(steps)
        }
        // Batched: all prompts in one step, then all decode steps together.
        let caches = prompts.map { _ in model.makeCache() }
        var current = try model.forward(batch: zip(prompts, caches).map { BatchEntry(tokens: $0, cache: $1) })
        for step in 0...3 {
            for (index, logits) in current.enumerated() {
                let logits = try #require(logits)
                let (worst, scale) = Self.closeness(logits, single[index][step])
                #expect(worst <= 1e-5 * scale, "\(name) sequence \(index) step \(step): max difference \(worst) of \(scale)")
                #expect(Self.argmax(logits) == Self.argmax(single[index][step]))
            }
            guard step < 3 else { break }
            current = try model.forward(batch: current.enumerated().map { index, logits in
                BatchEntry(tokens: [Self.argmax(single[index][step])], cache: caches[index])
            })
        }
    }

    @Test func batchedDecodeKeepsFP32ActivationsUnderFastPrecision() throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-bf16"), threads: 2, precision: .fast)
        let prompts = Self.prompts(try SharedFixtures.promptIDs("mixtral-bf16"))
        let caches = prompts.map { _ in model.makeCache() }
        let singles = prompts.map { _ in model.makeCache() }
        for (prompt, (cache, single)) in zip(prompts, zip(caches, singles)) {
            // The same prompt pass (fast) into both caches, then compare one decode step.
            _ = try model.forward(prompt, cache: cache)
            _ = try model.forward(prompt, cache: single)
        }
        let batched = try model.forward(batch: caches.map { BatchEntry(tokens: [5], cache: $0) })
        for (index, single) in singles.enumerated() {
            let expected = try model.forward([5], cache: single)
            let (worst, scale) = Self.closeness(try #require(batched[index]), expected)
            #expect(worst <= 1e-5 * scale, "sequence \(index): \(worst) of \(scale)")
        }
        #expect(model.precision == .fast)  // the step did not change the model's arithmetic
    }

    @Test func promptChunksJoinDecodingSequences() throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-gqa"), threads: 2)
        let prompt = try SharedFixtures.promptIDs("mixtral-gqa")
        let expected = try model.forward(prompt, cache: model.makeCache())
        // The prompt in chunks of 3, each chunk beside another sequence's decode step.
        let cache = model.makeCache(), other = model.makeCache()
        _ = try model.forward([prompt[0]], cache: other)
        var last: [Float]?
        var start = 0
        while start < prompt.count {
            let chunk = Array(prompt[start..<min(prompt.count, start + 3)])
            start += chunk.count
            let results = try model.forward(batch: [BatchEntry(tokens: [prompt[1]], cache: other),
                                                    BatchEntry(tokens: chunk, cache: cache, wantsLogits: start == prompt.count)])
            #expect(results[0] != nil)
            #expect((results[1] != nil) == (start == prompt.count))
            last = results[1]
        }
        let logits = try #require(last)
        let (worst, scale) = Self.closeness(logits, expected)
        #expect(worst <= 1e-5 * scale)
        #expect(cache.count == prompt.count)
    }

    @Test func invalidEntriesLeaveCachesUntouched() throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-gqa"), threads: 2)
        let good = model.makeCache(), small = model.makeCache(maxPositions: 2)
        #expect(throws: ModelError.contextOverflow(tokens: 3, limit: 2)) {
            try model.forward(batch: [BatchEntry(tokens: [1, 2], cache: good), BatchEntry(tokens: [1, 2, 3], cache: small)])
        }
        #expect(throws: ModelError.tokenOutOfRange(id: -1, vocabularySize: model.config.vocabSize)) {
            try model.forward(batch: [BatchEntry(tokens: [-1], cache: good)])
        }
        #expect(throws: ModelError.emptyInput) { try model.forward(batch: []) }
        #expect(good.count == 0 && small.count == 0)
    }
}

@Suite struct SchedulerTests {
    static func collect(_ handle: SequenceHandle) async -> (ids: [Int], text: String, end: SequenceEvent?) {
        var ids: [Int] = [], text = "", end: SequenceEvent?
        for await event in handle.events {
            switch event {
            case .token(let token): ids.append(token.id); text += token.text
            case .finished, .failed: end = event
            }
        }
        return (ids, text, end)
    }

    @Test func greedyTokensEqualGenerate() async throws {
        let name = "mixtral-gqa"
        let model = try LanguageModel(folder: SharedFixtures.parity(name), threads: 2)
        var options = try GenerationOptions.defaults(folder: SharedFixtures.parity(name), config: model.config)
        options.eosTokenIDs = []
        let prompts = BatchedForwardTests.prompts(try SharedFixtures.promptIDs(name))
        // References first: only the scheduler's thread may use the model once it runs.
        var expected: [[Int]] = []
        for (index, prompt) in prompts.enumerated() {
            var sequenceOptions = options
            sequenceOptions.maxNewTokens = 6 + 5 * index
            expected.append(try model.generate(prompt: prompt, options: sequenceOptions).generatedIDs)
        }
        var configuration = BatchScheduler.Configuration()
        configuration.maxSequences = 3      // the others wait, then join between steps
        configuration.maxBatchTokens = 4    // prompts are prefilled in chunks
        configuration.contextLength = 128
        let scheduler = BatchScheduler(model: model, tokenizer: nil, configuration: configuration)
        scheduler.start()
        defer { scheduler.shutdown() }
        var handles: [SequenceHandle] = []
        for (index, prompt) in prompts.enumerated() {
            var sequenceOptions = options
            sequenceOptions.maxNewTokens = 6 + 5 * index
            handles.append(try scheduler.submit(SequenceRequest(prompt: prompt, options: sequenceOptions)))
        }
        for (index, handle) in handles.enumerated() {
            let result = await Self.collect(handle)
            #expect(result.ids == expected[index], "sequence \(index)")
            guard case .finished(.maxNewTokens) = result.end else {
                Issue.record("sequence \(index) ended with \(String(describing: result.end))")
                continue
            }
        }
        await Self.waitUntilIdle(scheduler)
        #expect(scheduler.currentStats.active == 0)
    }

    /// The model thread updates its counts just after the step that ended the last sequence.
    static func waitUntilIdle(_ scheduler: BatchScheduler) async {
        for _ in 0..<100 where scheduler.currentStats.active > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func cancelledSequenceLeavesTheBatch() async throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-gqa"), threads: 2)
        // The model thread runs ahead of this consumer; a limit far beyond what it can reach
        // before the cancel is seen (the tiny model decodes thousands of tokens a second).
        var options = GenerationOptions()
        options.maxNewTokens = 65_000
        var configuration = BatchScheduler.Configuration()
        configuration.contextLength = 65_536
        let scheduler = BatchScheduler(model: model, tokenizer: nil, configuration: configuration)
        scheduler.start()
        defer { scheduler.shutdown() }
        let handle = try scheduler.submit(SequenceRequest(prompt: [1, 2, 3], options: options))
        var received = 0
        var ended: SequenceEvent?
        for await event in handle.events {
            if case .token = event {
                received += 1
                if received == 2 { handle.cancel() }
            } else {
                ended = event
            }
        }
        #expect(received < 65_000)
        #expect(ended == nil, "a cancelled sequence has no finish event")
        // The next step removes it (the model thread updates the counts after each step).
        let other = try scheduler.submit(SequenceRequest(prompt: [1], options: GenerationOptions()))
        _ = await Self.collect(other)
        await Self.waitUntilIdle(scheduler)
        #expect(scheduler.currentStats.active == 0)
        #expect(scheduler.currentStats.cachedPositions == 0)
    }

    @Test func sharedPromptPrefixIsReused() async throws {
        let name = "mixtral-gqa"
        let model = try LanguageModel(folder: SharedFixtures.parity(name), threads: 2)
        var options = GenerationOptions()
        options.maxNewTokens = 4
        let first = try SharedFixtures.promptIDs(name)
        let second = first + [7, 8, 9]
        let unrelated = [first[1], first[0]]
        let expected = try [second, unrelated].map { try model.generate(prompt: $0, options: options).generatedIDs }
        var configuration = BatchScheduler.Configuration()
        configuration.contextLength = 128
        configuration.prefixCacheEntries = 2
        let scheduler = BatchScheduler(model: model, tokenizer: nil, configuration: configuration)
        scheduler.start()
        defer { scheduler.shutdown() }
        _ = await Self.collect(try scheduler.submit(SequenceRequest(prompt: first, options: options)))
        await Self.waitUntilIdle(scheduler)
        #expect(scheduler.currentStats.reusedPromptTokens == 0)
        #expect(scheduler.currentStats.keptCaches == 1)
        let reused = await Self.collect(try scheduler.submit(SequenceRequest(prompt: second, options: options)))
        await Self.waitUntilIdle(scheduler)
        #expect(reused.ids == expected[0])
        #expect(scheduler.currentStats.reusedPromptTokens >= first.count)
        let before = scheduler.currentStats.reusedPromptTokens
        let other = await Self.collect(try scheduler.submit(SequenceRequest(prompt: unrelated, options: options)))
        await Self.waitUntilIdle(scheduler)
        #expect(other.ids == expected[1])
        #expect(scheduler.currentStats.reusedPromptTokens == before, "no shared prefix, nothing reused")
        #expect(scheduler.currentStats.keptCaches == 2, "at most prefixCacheEntries caches are kept")
    }

    @Test func memoryBudgetLimitsTheBatch() async throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-gqa"), threads: 2)
        var options = GenerationOptions()
        options.maxNewTokens = 10
        var configuration = BatchScheduler.Configuration()
        configuration.contextLength = 32
        configuration.kvBudgetPositions = 20  // room for one sequence of 2 + 10 positions at a time
        let scheduler = BatchScheduler(model: model, tokenizer: nil, configuration: configuration)
        var large = options
        large.maxNewTokens = 20
        #expect(throws: SchedulerError.exceedsMemoryBudget(positions: 22, budget: 20)) {
            try scheduler.submit(SequenceRequest(prompt: [1, 2], options: large))
        }
        let expected = try model.generate(prompt: [1, 2], options: options).generatedIDs
        scheduler.start()
        defer { scheduler.shutdown() }
        let first = try scheduler.submit(SequenceRequest(prompt: [1, 2], options: options))
        let second = try scheduler.submit(SequenceRequest(prompt: [1, 2], options: options))
        #expect(await Self.collect(first).ids == expected)
        #expect(await Self.collect(second).ids == expected)
        await Self.waitUntilIdle(scheduler)
        // The first cache was kept, then dropped to make room for the second sequence.
        #expect(scheduler.currentStats.keptCaches == 1)
    }

    @Test func refusals() throws {
        let model = try LanguageModel(folder: SharedFixtures.parity("mixtral-gqa"), threads: 2)
        var configuration = BatchScheduler.Configuration()
        configuration.maxSequences = 1
        configuration.maxWaiting = 1
        configuration.contextLength = 16
        let scheduler = BatchScheduler(model: model, tokenizer: nil, configuration: configuration)  // not started
        var options = GenerationOptions()
        options.maxNewTokens = 10
        #expect(throws: SchedulerError.contextOverflow(tokens: 17, limit: 16)) {
            try scheduler.submit(SequenceRequest(prompt: Array(repeating: 1, count: 7), options: options))
        }
        #expect(throws: SchedulerError.emptyPrompt) { try scheduler.submit(SequenceRequest(prompt: [], options: options)) }
        // One free place in the batch plus one waiting place.
        _ = try scheduler.submit(SequenceRequest(prompt: [1], options: options))
        _ = try scheduler.submit(SequenceRequest(prompt: [1], options: options))
        #expect(throws: SchedulerError.queueFull(limit: 1)) { try scheduler.submit(SequenceRequest(prompt: [1], options: options)) }
        #expect(scheduler.currentStats.waiting == 2)
    }
}

/// The text a sequence sends: decode(prompt + generated) minus the prompt, never a stop
/// string or what follows it, and nothing that may still become one.
@Suite struct StopStringFilterTests {
    let tokenizer: any Tokenizer

    init() throws { tokenizer = try TokenizerLoader.load(path: SharedFixtures.v1Tokenizer) }

    func run(_ prompt: String, _ continuation: String, stops: [String]) throws -> (pieces: [String], stopped: Bool) {
        let promptIDs = try tokenizer.encode(prompt, addSpecialTokens: true)
        let all = try tokenizer.encode(prompt + continuation, addSpecialTokens: true)
        #expect(Array(all.prefix(promptIDs.count)) == promptIDs, "the test needs a clean token boundary")
        var filter = StopStringFilter(tokenizer: tokenizer, prompt: promptIDs, stops: stops)
        var pieces: [String] = []
        for id in all.dropFirst(promptIDs.count) {
            pieces.append(filter.append(id))
            if filter.matchedStop { break }
        }
        pieces.append(filter.finish())
        return (pieces, filter.matchedStop)
    }

    @Test func withoutStopsTheTextIsTheContinuation() throws {
        let (pieces, stopped) = try run("Hello", " world, how are you? Grüße", stops: [])
        #expect(pieces.joined() == " world, how are you? Grüße")
        #expect(!stopped)
    }

    @Test func textEndsBeforeTheStopString() throws {
        let (pieces, stopped) = try run("Hello", " world, how are you today?", stops: ["are you", "xyz"])
        #expect(pieces.joined() == " world, how ")
        #expect(stopped)
    }

    @Test func aPossibleStartOfAStopIsHeldBack() throws {
        // " how a" could begin "how are"; once "re" fails to follow, it is released.
        let (pieces, stopped) = try run("Hello", " how about this", stops: ["how are"])
        #expect(pieces.joined() == " how about this")
        #expect(!stopped)
        #expect(!pieces.contains { $0.hasSuffix(" how") }, "text that may start the stop string is held back: \(pieces)")
    }
}
