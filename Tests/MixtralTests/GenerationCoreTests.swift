import Foundation
import Synchronization
import Testing
@testable import Mixtral

/// The one generation core (`SequenceState`) and its drivers: `LanguageModel.generate`,
/// the batch scheduler and the async `ModelContainer`.
@Suite struct GenerationCoreTests {
    /// A real SentencePiece tokenizer that counts the ids it is asked to decode.
    final class CountingTokenizer: Tokenizer {
        let base: SentencePieceTokenizer
        let decodedIDs = Mutex(0)
        init(_ base: SentencePieceTokenizer) { self.base = base }
        var vocabularySize: Int { base.vocabularySize }
        var bosTokenID: Int? { base.bosTokenID }
        var eosTokenIDs: [Int] { base.eosTokenIDs }
        func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { try base.encode(text, addSpecialTokens: addSpecialTokens) }
        func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
            decodedIDs.withLock { $0 += ids.count }
            return base.decode(ids, skipSpecialTokens: skipSpecialTokens)
        }
        func isSpecial(_ id: Int) -> Bool { base.isSpecial(id) }
        func isByteFallbackToken(_ id: Int) -> Bool { base.isByteFallbackToken(id) }
        var decodingTreatsOnlyTheStartSpecially: Bool { base.decodingTreatsOnlyTheStartSpecially }
    }

    static let sentencePiecePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../MixtralTokenizersTests/Fixtures/v1/tokenizer.model").standardized.path

    /// Logits whose argmax is `id`.
    static func logits(choosing id: Int, vocabulary: Int) -> [Float] {
        var logits = [Float](repeating: 0, count: vocabulary)
        logits[id] = 1
        return logits
    }

    /// A long output with a stop string that never matches: the text is released
    /// incrementally, so the ids decoded grow linearly with the output (re-decoding the
    /// whole output at every step, as before, decodes n (n + 1) / 2 ids).
    @Test func stopStringsAreMatchedInLinearTime() throws {
        let tokenizer = CountingTokenizer(try SentencePieceTokenizer(contentsOf: Self.sentencePiecePath))
        let words = try tokenizer.encode("the cat sat on the mat and looked at the dog", addSpecialTokens: false)
        let prompt = try tokenizer.encode("Once upon a time", addSpecialTokens: true)
        var options = GenerationOptions()
        options.maxNewTokens = 2000
        options.stopStrings = ["a stop string that never comes"]
        var state = SequenceState(prompt: prompt, options: options, tokenizer: tokenizer)
        var text = ""
        var reason: StopReason?
        var steps = 0
        while reason == nil {
            let next = words[steps % words.count]
            let (token, stop) = state.accept(logits: Self.logits(choosing: next, vocabulary: tokenizer.vocabularySize),
                                             roomForMore: true)
            #expect(token.id == next)
            text += token.text
            reason = stop
            steps += 1
        }
        #expect(reason == .maxNewTokens && steps == 2000)
        let generated = Array(state.ids.dropFirst(prompt.count))
        let decoded = tokenizer.decodedIDs.withLock { $0 }
        #expect(decoded <= 8 * (prompt.count + generated.count), "decoded \(decoded) ids for \(generated.count) tokens")
        // The released text is the continuation of the prompt's decode.
        let full = tokenizer.base.decode(prompt + generated, skipSpecialTokens: true)
        let promptText = tokenizer.base.decode(prompt, skipSpecialTokens: true)
        #expect(promptText + text == full)
    }

    /// A stop string ends the text before it, even when it spans tokens.
    @Test func stopStringEndsTheTextBeforeIt() throws {
        let tokenizer = try SentencePieceTokenizer(contentsOf: Self.sentencePiecePath)
        let ids = try tokenizer.encode("the cat sat on the mat", addSpecialTokens: false)
        var options = GenerationOptions()
        options.maxNewTokens = 100
        options.stopStrings = ["on the"]
        var state = SequenceState(prompt: [tokenizer.bosTokenID ?? 1], options: options, tokenizer: tokenizer)
        var text = ""
        var reason: StopReason?
        for id in ids where reason == nil {
            let (token, stop) = state.accept(logits: Self.logits(choosing: id, vocabulary: tokenizer.vocabularySize),
                                             roomForMore: true)
            text += token.text
            reason = stop
        }
        #expect(reason == .stopString)
        #expect(text == "the cat sat ")
    }

    /// A full cache ends generation with its own reason (not "stop"); the last token needs
    /// no position of its own.
    @Test func fullContextIsItsOwnStopReason() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 2)
        let reference = try Fixtures.reference("mixtral-gqa")
        var options = GenerationOptions()
        options.maxNewTokens = 20
        let cache = model.makeCache(maxPositions: reference.prompt_ids.count + 3)
        let result = try model.generate(prompt: reference.prompt_ids, options: options, cache: cache)
        #expect(result.stopReason == .contextFull)
        #expect(result.generatedIDs == Array(reference.greedy_ids.prefix(4)))
        var seen = 0
        let cancelled = try model.generate(prompt: reference.prompt_ids, options: options) { _ in
            seen += 1
            return seen < 2
        }
        #expect(cancelled.stopReason == .cancelled && cancelled.generatedIDs.count == 2)
    }

    /// The async API: greedy tokens equal `generate`'s (what `mixtral generate` runs), and
    /// cancelling the consuming task ends its stream while the model keeps serving others.
    @Test func asyncStreamGivesGenerateTokensAndStopsOnCancellation() async throws {
        let folder = Fixtures.parity("mixtral-gqa")
        let reference = try Fixtures.reference("mixtral-gqa")
        let container = try await ModelContainer.load(folder, threads: 2, contextLength: 256)
        var options = container.defaults
        options.maxNewTokens = reference.greedy_ids.count
        options.eosTokenIDs = []
        let expected = try container.bundle.model.generate(prompt: reference.prompt_ids, options: options).generatedIDs
        #expect(expected == reference.greedy_ids)

        var streamed: [Int] = []
        var finish: StopReason?
        for try await step in container.generate(ids: reference.prompt_ids, options: options) {
            switch step {
            case .token(let token): streamed.append(token.id)
            case .finished(let reason): finish = reason
            }
        }
        #expect(streamed == expected && finish == .maxNewTokens)

        // A long stream, cancelled after a few tokens.
        var long = options
        long.maxNewTokens = 200
        let received = Mutex(0)
        let consumer = Task {
            for try await step in container.generate(ids: reference.prompt_ids, options: long) {
                if case .token = step { received.withLock { $0 += 1 } }
            }
        }
        while received.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(1)) }
        consumer.cancel()
        _ = await consumer.result
        #expect(received.withLock { $0 } < 200)
        // The model still serves new streams.
        var again: [Int] = []
        for try await step in container.generate(ids: reference.prompt_ids, options: options) {
            if case .token(let token) = step { again.append(token.id) }
        }
        #expect(again == expected)
    }

    /// Token limits that cannot fit are refused with a typed error through the stream, not
    /// an arithmetic trap.
    @Test func hugeOrNegativeTokenLimitsAreRefused() async throws {
        let container = try await ModelContainer.load(Fixtures.parity("mixtral-gqa"), threads: 1, contextLength: 64)
        var options = GenerationOptions()
        options.maxNewTokens = Int.max
        await #expect(throws: SchedulerError.contextOverflow(tokens: Int.max, limit: 64)) {
            for try await _ in container.generate(ids: [1, 2, 3], options: options) {}
        }
        options.maxNewTokens = -1
        await #expect(throws: SchedulerError.invalidOptions("max_new_tokens must be >= 0, got -1")) {
            for try await _ in container.generate(ids: [1, 2, 3], options: options) {}
        }
    }

    /// A config may claim any context length: the cache caps what it can address, and a
    /// forward pass runs instead of trapping on the size arithmetic.
    @Test func hugeContextClaimsAreCapped() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 1)
        let cache = model.makeCache(maxPositions: Int.max)
        #expect(cache.maxPositions > 0 && cache.maxPositions <= Int(Int32.max))
        let logits = try model.forward([1, 2, 3], cache: cache)
        #expect(logits.count == model.config.vocabSize && cache.count == 3)
    }
}
