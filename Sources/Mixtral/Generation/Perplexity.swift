import Foundation

/// Perplexity as llama.cpp's llama-perplexity computes it: the text's tokens are cut into
/// chunks of `context` tokens, each chunk starts with BOS (when the model has one) in place
/// of its first token, and the negative log-likelihood is averaged over the second half of
/// every chunk (the first half is context only).
public struct PerplexityResult: Sendable {
    public var chunks: Int
    public var scoredTokens: Int
    /// exp(mean negative log-likelihood).
    public var perplexity: Double
    /// Standard error of the perplexity (from the standard error of the mean NLL).
    public var perplexityError: Double
    /// Mean KL divergence from the reference distribution, and the share of positions
    /// whose most likely token agrees, when a reference was given.
    public var meanKL: Double?
    public var top1Agreement: Double?
}

extension LanguageModel {
    /// `onChunk(chunkIndex, logits of its scored positions [count, vocab])` sees each chunk,
    /// e.g. to save the logits as a reference; `reference(chunkIndex)` supplies a reference
    /// run's logits for the same positions to compute KL divergence.
    public func perplexity(tokens: [Int], context: Int, bos: Int?,
                           reference: ((Int) throws -> [Float])? = nil,
                           onChunk: (Int, [Float]) throws -> Void = { _, _ in },
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        guard context >= 4 else { throw ModelError.contextOverflow(tokens: 4, limit: context) }
        let chunkCount = tokens.count / context
        guard chunkCount > 0 else { throw ModelError.contextOverflow(tokens: context, limit: tokens.count) }
        let vocab = config.vocabSize
        let first = context / 2
        var nll: [Double] = []
        var klSum = 0.0, agreements = 0, compared = 0
        for chunk in 0..<chunkCount {
            var ids = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            if let bos { ids[0] = bos }
            let logits = try forward(ids, cache: makeCache(maxPositions: context), allLogits: true)
            // Position p predicts token p+1; score p in first ..< context-1.
            let scored = Array(logits[(first * vocab)..<((context - 1) * vocab)])
            try onChunk(chunk, scored)
            let referenceLogits = try reference?(chunk)
            for (row, position) in (first..<(context - 1)).enumerated() {
                let row = scored[(row * vocab)..<((row + 1) * vocab)]
                let logProbabilities = logSoftmax(Array(row))
                nll.append(-Double(logProbabilities[ids[position + 1]]))
                if let referenceLogits {
                    let start = (position - first) * vocab
                    let referenceLog = logSoftmax(Array(referenceLogits[start..<(start + vocab)]))
                    var kl = 0.0
                    for v in 0..<vocab {
                        let p = Double(referenceLog[v])
                        kl += exp(p) * (p - Double(logProbabilities[v]))
                    }
                    klSum += kl
                    compared += 1
                    if argmax(referenceLog) == argmax(logProbabilities) { agreements += 1 }
                }
            }
            progress(chunk + 1, chunkCount)
        }
        let mean = nll.reduce(0, +) / Double(nll.count)
        let variance = nll.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(1, nll.count - 1))
        let meanError = (variance / Double(nll.count)).squareRoot()
        let ppl = exp(mean)
        return PerplexityResult(chunks: chunkCount, scoredTokens: nll.count, perplexity: ppl, perplexityError: ppl * meanError,
                                meanKL: compared > 0 ? klSum / Double(compared) : nil,
                                top1Agreement: compared > 0 ? Double(agreements) / Double(compared) : nil)
    }
}

func logSoftmax(_ logits: [Float]) -> [Float] {
    let maximum = logits.max() ?? 0
    let logSum = Float(log(logits.reduce(0.0) { $0 + exp(Double($1 - maximum)) }))
    return logits.map { $0 - maximum - logSum }
}

func argmax(_ values: [Float]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
}
