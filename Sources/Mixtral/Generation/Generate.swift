import Foundation

/// Why generation ended.
public enum StopReason: String, Sendable, Codable {
    case endOfSequence = "eos", maxNewTokens = "length", stopString = "stop"
}

public struct GenerationResult: Sendable {
    public var promptIDs: [Int]
    public var generatedIDs: [Int]
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
    /// transformers' `generate` for one sequence: the prompt in one batched pass, then one
    /// token per step with the KV cache, until an EOS id (kept in the output),
    /// `maxNewTokens`, or a stop string in `decode(generated ids)`.
    /// `onToken` sees each new id as it is chosen; returning false stops generation.
    public func generate(prompt: [Int], options: GenerationOptions, cache: KVCache? = nil,
                         decode: (([Int]) -> String)? = nil,
                         onToken: (Int) -> Bool = { _ in true }) throws(ModelError) -> GenerationResult {
        let cache = cache ?? makeCache()
        let seed = options.seed ?? UInt64.random(in: 0...UInt64.max)
        var greedy = GreedySampler()
        var sampler = MultinomialSampler(seed: seed)
        let processors = options.processors(promptLength: prompt.count)
        var sequence = prompt
        var generated: [Int] = []
        var reason = StopReason.maxNewTokens
        let clock = ContinuousClock()

        let prefillStart = clock.now
        var scores = try forward(prompt, cache: cache)
        let promptSeconds = (clock.now - prefillStart).seconds
        let decodeStart = clock.now
        while generated.count < options.maxNewTokens {
            for processor in processors { processor.process(&scores, previous: sequence) }
            let next = options.doSample ? sampler.choose(from: scores) : greedy.choose(from: scores)
            generated.append(next)
            sequence.append(next)
            if !onToken(next) { reason = .stopString; break }
            if options.eosTokenIDs.contains(next) { reason = .endOfSequence; break }
            if let decode, !options.stopStrings.isEmpty {
                let text = decode(generated)
                if options.stopStrings.contains(where: { text.contains($0) }) { reason = .stopString; break }
            }
            if generated.count == options.maxNewTokens { break }
            scores = try forward([next], cache: cache)
        }
        return GenerationResult(promptIDs: prompt, generatedIDs: generated, stopReason: reason, seed: seed,
                                promptSeconds: promptSeconds, decodeSeconds: (clock.now - decodeStart).seconds)
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
