import Foundation

/// Changes next-token scores before a token is chosen (transformers' LogitsProcessor).
/// `previous` holds every id so far, prompt included.
public protocol LogitsProcessor: Sendable {
    func process(_ scores: inout [Float], previous: [Int])
}

/// OpenAI's `logit_bias`: a value added to the scores of the listed ids before every other
/// processor, as vLLM applies it to the raw logits. Ids outside the scores are skipped
/// (callers check them against the vocabulary).
public struct LogitBias: LogitsProcessor {
    public let bias: [Int: Float]
    public init(_ bias: [Int: Float]) { self.bias = bias }

    public func process(_ scores: inout [Float], previous: [Int]) {
        for (id, value) in bias where id >= 0 && id < scores.count { scores[id] += value }
    }
}

/// transformers' RepetitionPenaltyLogitsProcessor: each id already present (prompt
/// included) has its score divided by the penalty when positive, multiplied when negative.
public struct RepetitionPenalty: LogitsProcessor {
    public let penalty: Float
    public init(_ penalty: Float) { self.penalty = penalty }

    public func process(_ scores: inout [Float], previous: [Int]) {
        for id in Set(previous) where id >= 0 && id < scores.count {
            let s = scores[id]
            scores[id] = s < 0 ? s * penalty : s / penalty
        }
    }
}

/// OpenAI's presence and frequency penalties, as its API reference defines them and vLLM
/// applies them: with c the number of times a token was generated so far (the prompt does
/// not count), its score becomes score - c * frequency - (c > 0 ? presence : 0).
/// transformers has no counterpart.
public struct PresenceFrequencyPenalty: LogitsProcessor {
    public let presence: Float
    public let frequency: Float
    /// Ids before this index in `previous` are the prompt.
    public let promptLength: Int

    public init(presence: Float, frequency: Float, promptLength: Int) {
        self.presence = presence
        self.frequency = frequency
        self.promptLength = promptLength
    }

    public func process(_ scores: inout [Float], previous: [Int]) {
        var counts: [Int: Int] = [:]
        for id in previous.dropFirst(promptLength) where id >= 0 && id < scores.count { counts[id, default: 0] += 1 }
        for (id, count) in counts { scores[id] -= Float(count) * frequency + presence }
    }
}

/// transformers' TemperatureLogitsWarper: scores / temperature.
public struct Temperature: LogitsProcessor {
    public let temperature: Float
    public init(_ temperature: Float) { self.temperature = temperature }

    public func process(_ scores: inout [Float], previous: [Int]) {
        for i in scores.indices { scores[i] /= temperature }
    }
}

/// transformers' TopKLogitsWarper: keeps every score >= the k-th largest (ties kept).
public struct TopK: LogitsProcessor {
    public let k: Int
    public init(_ k: Int) { self.k = k }

    public func process(_ scores: inout [Float], previous: [Int]) {
        let k = min(max(k, 1), scores.count)
        let threshold = scores.sorted(by: >)[k - 1]
        for i in scores.indices where scores[i] < threshold { scores[i] = -.infinity }
    }
}

/// transformers' TopPLogitsWarper: sorts ascending, removes tokens whose cumulative
/// probability is <= 1 - p, always keeping the most probable token.
public struct TopP: LogitsProcessor {
    public let p: Float
    public init(_ p: Float) { self.p = p }

    public func process(_ scores: inout [Float], previous: [Int]) {
        let probabilities = softmaxed(scores)
        // Stable ascending sort, as torch.sort(descending=False) on distinct values.
        let order = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
        var cumulative: Float = 0
        for (rank, index) in order.enumerated() {
            cumulative += probabilities[index]
            if cumulative <= 1 - p, rank < order.count - 1 { scores[index] = -.infinity }
        }
    }
}

/// transformers' MinPLogitsWarper: removes tokens with probability < minP * max probability,
/// always keeping the most probable token.
public struct MinP: LogitsProcessor {
    public let minP: Float
    public init(_ minP: Float) { self.minP = minP }

    public func process(_ scores: inout [Float], previous: [Int]) {
        let probabilities = softmaxed(scores)
        guard let top = probabilities.max(), let best = probabilities.firstIndex(of: top) else { return }
        let threshold = minP * top
        for i in scores.indices where probabilities[i] < threshold && i != best { scores[i] = -.infinity }
    }
}

/// softmax in fp32 with the maximum subtracted; -inf scores get probability 0.
func softmaxed(_ scores: [Float]) -> [Float] {
    let maximum = scores.max() ?? 0
    guard maximum.isFinite else { return scores.map { $0 == maximum ? 1 : 0 } }
    var result = scores.map { expf($0 - maximum) }
    let sum = result.reduce(0, +)
    for i in result.indices { result[i] /= sum }
    return result
}
