import Foundation
import MixtralKernels

/// One sequence's share of a batched forward step: the new tokens to run after what its
/// cache holds (one token while decoding, a chunk of the prompt while prefilling).
public struct BatchEntry {
    public var tokens: [Int]
    public var cache: KVCache
    /// Whether the logits of the entry's last token are wanted (false for a prompt chunk
    /// that is not the prompt's last).
    public var wantsLogits: Bool

    public init(tokens: [Int], cache: KVCache, wantsLogits: Bool = true) {
        self.tokens = tokens
        self.cache = cache
        self.wantsLogits = wantsLogits
    }
}

extension LanguageModel {
    /// Runs several sequences in one pass (continuous batching). The rows of all entries are
    /// stacked, so every matrix product (q/k/v/o, router, experts, lm_head) reads its weights
    /// once for the whole batch; RoPE uses each row's own position and attention runs per
    /// sequence against its own cache. Per row this is the same computation as `forward`;
    /// only the grouping of rows in the kernels' tiles differs, which can change results in
    /// the last bits (see BatchedForwardTests for the numeric check).
    ///
    /// Returns, per entry, the logits of its last token when it wants them, else nil.
    /// Nothing is written to any cache unless every entry is valid.
    public func forward(batch: [BatchEntry]) throws(ModelError) -> [[Float]?] {
        guard !batch.isEmpty else { throw .emptyInput }
        for (index, entry) in batch.enumerated() {
            guard !entry.tokens.isEmpty else { throw .emptyInput }
            for id in entry.tokens where id < 0 || id >= config.vocabSize {
                throw .tokenOutOfRange(id: id, vocabularySize: config.vocabSize)
            }
            guard entry.cache.count + entry.tokens.count <= entry.cache.maxPositions else {
                throw .contextOverflow(tokens: entry.cache.count + entry.tokens.count, limit: entry.cache.maxPositions)
            }
            // Two entries writing one cache would overwrite each other's positions.
            precondition(!batch[..<index].contains { $0.cache === entry.cache }, "a cache appears twice in one batch")
        }
        // With float weights, one-token rows (decode steps) keep fp32 activations under
        // every precision, as one-token `forward` calls do; a step that has any runs its
        // matrix products exact throughout (the steps between them follow `precision`).
        // Quantised weights keep their 8-bit products: one-token calls use them too.
        let products = !hasQuantizedMatrices && batch.contains(where: { $0.tokens.count == 1 }) ? .exact : precision
        let c = config
        let h = c.hiddenSize
        // Row layout: entry i owns rows spans[i].
        var spans: [Range<Int>] = []
        var total = 0
        for entry in batch {
            spans.append(total..<(total + entry.tokens.count))
            total += entry.tokens.count
        }
        let firstPositions = batch.map(\.cache.count)
        for entry in batch { entry.cache.reserve(entry.tokens.count) }

        let x = FloatBuffer(capacity: total * h)
        embed(batch.flatMap(\.tokens), into: x.pointer)  // the spans follow the batch's order
        // RoPE tables for every row, each at its own sequence's position.
        var cosTable: [Float] = [], sinTable: [Float] = []
        for (entry, first) in zip(batch, firstPositions) {
            let (cosRows, sinRows) = ropeTables(positions: first..<(first + entry.tokens.count))
            cosTable += cosRows
            sinTable += sinRows
        }
        let scratch = Scratch(config: c, tokens: total, products: products)
        for (index, layer) in weights.layers.enumerated() {
            batchedAttentionBlock(layer, x: x, scratch: scratch, batch: batch, spans: spans, firstPositions: firstPositions,
                                  layerIndex: index, rows: total, cos: cosTable, sin: sinTable)
            try mlpBlock(layer, index: index, x: x, scratch: scratch, tokens: total)
        }
        for entry in batch { entry.cache.advance(by: entry.tokens.count) }

        // lm_head only for the last rows of the entries that want logits.
        let wanted = batch.indices.filter { batch[$0].wantsLogits }
        var results = [[Float]?](repeating: nil, count: batch.count)
        guard !wanted.isEmpty else { return results }
        let normed = FloatBuffer(capacity: wanted.count * h)
        weights.finalNorm.withUnsafeBufferPointer { norm in
            for (slot, entryIndex) in wanted.enumerated() {
                let row = spans[entryIndex].upperBound - 1
                normalizeRow(x.pointer + row * h, norm.baseAddress!, normed.pointer + slot * h)
            }
        }
        let logits = projectLogits(normed.pointer, rows: wanted.count, products: products)
        for (slot, entryIndex) in wanted.enumerated() {
            results[entryIndex] = Array(logits[(slot * c.vocabSize)..<((slot + 1) * c.vocabSize)])
        }
        withExtendedLifetime((x, scratch, normed)) {}
        return results
    }

    /// The attention half of a layer for stacked rows: projections and RoPE over all rows,
    /// then each sequence's rows attend over its own cache.
    private func batchedAttentionBlock(_ layer: DecoderWeights.Layer, x: FloatBuffer, scratch s: Scratch, batch: [BatchEntry],
                                       spans: [Range<Int>], firstPositions: [Int], layerIndex: Int, rows t: Int,
                                       cos: [Float], sin: [Float]) {
        let c = config
        let h = c.hiddenSize
        let kvWidth = c.numKeyValueHeads * c.headDim
        let qWidth = c.numHeads * c.headDim
        projectQueriesKeysValues(layer, x: x, scratch: s, tokens: t, cos: cos, sin: sin)
        for (entry, (span, first)) in zip(batch, zip(spans, firstPositions)) {
            storeKeysValues(s.k.pointer + span.lowerBound * kvWidth, s.v.pointer + span.lowerBound * kvWidth, count: span.count,
                            first: first, cache: entry.cache, layer: layerIndex)
            attend(s.q.pointer + span.lowerBound * qWidth, tokens: span.count, firstPosition: first, cache: entry.cache,
                   layer: layerIndex, s.attended.pointer + span.lowerBound * qWidth)
        }
        projectAttention(s.attended.pointer, tokens: t, layer.attention.o, into: s.projected.pointer, products: s.products)
        for i in 0..<(t * h) { x[i] += s.projected[i] }
    }
}
