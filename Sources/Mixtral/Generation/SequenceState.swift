import Foundation

/// Why generation ended.
public enum StopReason: String, Sendable, Codable {
    case endOfSequence = "eos"
    case maxNewTokens = "length"
    case stopString = "stop"
    /// The KV cache has no room for another position.
    case contextFull = "context_full"
    /// The caller stopped it (task cancellation, a dropped stream, `onToken` returning false).
    case cancelled
}

/// Log-probabilities under the model's distribution (log-softmax of the raw logits).
public struct TokenLogprobs: Sendable {
    public var logprob: Float
    /// The most likely tokens, most likely first.
    public var top: [(id: Int, logprob: Float)]
}

public struct GeneratedToken: Sendable {
    public var id: Int
    /// Text that became final with this token: decode(prompt + generated) grows by it,
    /// minus anything held back because it may start a stop string (and the stop string
    /// itself, which is never sent). Empty without a tokenizer.
    public var text: String
    public var logprobs: TokenLogprobs?
}

/// One sequence's generation state, the same for every driver (`LanguageModel.generate`,
/// the batch scheduler and `ModelContainer`): from the logits of its last position it
/// applies the logits processors, chooses the next id (greedy or sampled, as
/// transformers' generate), releases its text with stop strings matched incrementally
/// (each step looks at the new text only: linear in the output), and says when to stop.
struct SequenceState {
    let options: GenerationOptions
    let topLogprobs: Int?
    let seed: UInt64
    private let processors: [any LogitsProcessor]
    private var sampler: MultinomialSampler
    private var greedy = GreedySampler()
    private var text: StopStringFilter
    /// Prompt and generated ids (the processors see both).
    private(set) var ids: [Int]
    private(set) var generated = 0

    init(prompt: [Int], options: GenerationOptions, tokenizer: (any Tokenizer)?, topLogprobs: Int? = nil) {
        self.options = options
        self.topLogprobs = topLogprobs
        seed = options.seed ?? UInt64.random(in: 0...UInt64.max)
        processors = options.processors(promptLength: prompt.count)
        sampler = MultinomialSampler(seed: seed)
        text = StopStringFilter(tokenizer: tokenizer, prompt: prompt, stops: options.stopStrings)
        ids = prompt
    }

    var lastToken: Int { ids[ids.count - 1] }

    /// Chooses the next id from `logits`; `roomForMore` says whether the cache can take
    /// another position. Returns the token and, when the sequence ends with it, why.
    mutating func accept(logits: [Float], roomForMore: Bool) -> (token: GeneratedToken, stop: StopReason?) {
        var scores = logits
        for processor in processors { processor.process(&scores, previous: ids) }
        let next = options.doSample ? sampler.choose(from: scores) : greedy.choose(from: scores)
        ids.append(next)
        generated += 1
        var delta = text.append(next)
        var reason: StopReason?
        if text.matchedStop {
            reason = .stopString
        } else if options.eosTokenIDs.contains(next) {
            reason = .endOfSequence
        } else if generated >= options.maxNewTokens {
            reason = .maxNewTokens
        } else if !roomForMore {
            reason = .contextFull
        }
        if reason != nil { delta += text.finish() }
        let logprobs = topLogprobs.map { Self.logprobs(logits, chosen: next, top: $0) }
        return (GeneratedToken(id: next, text: delta, logprobs: logprobs), reason)
    }

    /// log_softmax of the raw logits at `chosen` and the `top` largest.
    static func logprobs(_ logits: [Float], chosen: Int, top: Int) -> TokenLogprobs {
        let maximum = logits.max() ?? 0
        var sum = 0.0
        for value in logits { sum += exp(Double(value - maximum)) }
        let logNormalizer = Double(maximum) + log(sum)
        func logprob(_ id: Int) -> Float { Float(Double(logits[id]) - logNormalizer) }
        var best: [Int] = []
        if top > 0 {
            for id in logits.indices {
                if best.count == top, let last = best.last, logits[id] <= logits[last] { continue }
                let position = best.firstIndex { logits[id] > logits[$0] } ?? best.count
                best.insert(id, at: position)
                if best.count > top { best.removeLast() }
            }
        }
        return TokenLogprobs(logprob: logprob(chosen), top: best.map { ($0, logprob($0)) })
    }
}
