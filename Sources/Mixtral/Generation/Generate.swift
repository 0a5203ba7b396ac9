import Foundation

public struct GenerationResult: Sendable {
    public var promptIDs: [Int]
    public var generatedIDs: [Int]
    /// The generated text as it was released (see `GeneratedToken.text`): up to a stop
    /// string, without it. Empty without a tokenizer.
    public var text: String
    public var stopReason: StopReason
    public var seed: UInt64
    /// Seconds of the prompt's batched forward pass (prefill).
    public var promptSeconds: Double
    /// Seconds of the one-token forward passes after the prefill.
    public var decodeSeconds: Double

    public var promptTokensPerSecond: Double {
        promptSeconds > 0 ? Double(promptIDs.count) / promptSeconds : 0
    }

    /// Tokens from decode steps per second (the first token comes from the prefill).
    public var generatedTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(0, generatedIDs.count - 1)) / decodeSeconds : 0
    }
}

extension LanguageModel {
    /// transformers' `generate` for one sequence, on the calling thread: the prompt in one
    /// batched pass, then one token per step with the KV cache, until an EOS id (kept in
    /// the output), `maxNewTokens`, a stop string in the text (with a tokenizer), a full
    /// cache, or `onToken` returning false (`.cancelled`). `onToken` sees each token with
    /// its released text as it is chosen. The steps are `SequenceState`'s, as in the batch
    /// scheduler and `ModelContainer`.
    public func generate(prompt: [Int], options: GenerationOptions, cache: KVCache? = nil,
                         tokenizer: (any Tokenizer)? = nil,
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws(ModelError) -> GenerationResult {
        let cache = cache ?? makeCache()
        var state = SequenceState(prompt: prompt, options: options, tokenizer: tokenizer)
        var text = ""
        var reason: StopReason? = options.maxNewTokens > 0 ? nil : .maxNewTokens
        let clock = ContinuousClock()

        let prefillStart = clock.now
        var scores = try forward(prompt, cache: cache)
        let promptSeconds = (clock.now - prefillStart).seconds
        let decodeStart = clock.now
        while reason == nil {
            let (token, stop) = state.accept(logits: scores, roomForMore: cache.count < cache.maxPositions)
            text += token.text
            if !onToken(token) {
                reason = .cancelled
                break
            }
            reason = stop
            if reason == nil { scores = try forward([token.id], cache: cache) }
        }
        return GenerationResult(promptIDs: prompt, generatedIDs: Array(state.ids.dropFirst(prompt.count)), text: text,
                                stopReason: reason ?? .maxNewTokens, seed: state.seed, promptSeconds: promptSeconds,
                                decodeSeconds: (clock.now - decodeStart).seconds)
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
