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
    ///
    /// Split over several ranks (`communicator`), every rank calls this with the same
    /// prompt; rank 0 decides: its seed is every rank's, and after each step its token and
    /// whether to go on are broadcast, so the ranks feed the same token to the next step
    /// whatever they sampled (their logits are the same bits, so they sample alike anyway).
    /// Only rank 0's `onToken` can cancel, and only rank 0's result is meaningful.
    public func generate(prompt: [Int], options: GenerationOptions, cache: KVCache? = nil,
                         tokenizer: (any Tokenizer)? = nil,
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws(ModelError) -> GenerationResult {
        let cache = cache ?? makeCache()
        let split = communicator.size > 1
        var options = options
        if split {
            var seed = [Int64(bitPattern: options.seed ?? UInt64.random(in: 0...UInt64.max))]
            communicator.broadcast(&seed, root: 0)
            options.seed = UInt64(bitPattern: seed[0])
        }
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
            let goOn = onToken(token)
            var next = token.id
            if split {
                // [token, cancelled, stopped]: rank 0's step, for every rank.
                var decision: [Int64] = [Int64(token.id), goOn ? 0 : 1, stop == nil ? 0 : 1]
                communicator.broadcast(&decision, root: 0)
                next = Int(decision[0])
                if decision[1] != 0 {
                    reason = .cancelled
                    break
                }
                reason = decision[2] != 0 ? (stop ?? .maxNewTokens) : nil
            } else {
                if !goOn {
                    reason = .cancelled
                    break
                }
                reason = stop
            }
            if reason == nil { scores = try forward([next], cache: cache) }
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
