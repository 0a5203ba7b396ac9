import Foundation
import MixtralKernels

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    case contextOverflow(tokens: Int, limit: Int)
    case emptyInput
    /// Expert streaming could not read an expert from the model file.
    case weightReadFailed(String)

    public var description: String {
        switch self {
        case .tokenOutOfRange(let id, let size):
            return "token id \(id) is out of range: the vocabulary has \(size) ids (0...\(size - 1))"
        case .contextOverflow(let tokens, let limit):
            return "the sequence needs \(tokens) positions but the context holds \(limit)"
        case .emptyInput:
            return "the prompt is empty: at least one token is needed"
        case .weightReadFailed(let reason):
            return "cannot read an expert's weights: \(reason)"
        }
    }
}

/// A decoder-only transformer as transformers computes it (eager attention, fp32):
/// h = x + o_proj(attn(rmsnorm(x))); y = h + mlp(rmsnorm(h)); logits = lm_head(norm(y)).
/// Weights are read in place in their stored type; activations and the KV cache are fp32
/// (under `.fast` the cache holds fp16 values and the steps between products follow
/// llama.cpp: LlamaCpp/LlamaCppArithmetic.swift).
public final class LanguageModel: @unchecked Sendable {
    /// The shape this process computes. Split over several ranks (`communicator.size > 1`),
    /// it is the rank's share: numHeads, numKeyValueHeads and intermediateSize divided by
    /// the number of ranks (`fullConfig` is the model's).
    public let config: ModelConfig
    /// The model's hyper-parameters, whole.
    public let fullConfig: ModelConfig
    /// The processes the model is split over (tensor parallelism, `TensorParallel`); one
    /// process by default, where nothing is split or exchanged.
    public let communicator: any Communicator
    /// The memory of a split model's slices, kept while the model lives.
    let slices: TensorParallelSlices?
    /// Split over several ranks: what each rank computes, in rank order (empty on one
    /// process).
    let shares: [TensorParallel.Share]
    public let weights: DecoderWeights
    public let pool: ComputePool
    /// The arithmetic, fixed when the model is made: exact fp32 activations, or llama.cpp's
    /// faster arithmetic (see `ActivationPrecision` and `PrecisionChoice`).
    public let precision: ActivationPrecision
    /// Keeps the weight files mapped while the model lives.
    let store: any WeightStore
    let inverseFrequencies: [Float]
    /// Reads the experts (a dense model's MLPs) from the file on demand when the model runs
    /// within a RAM budget; nil when all weights are resident.
    let expertStreamer: ExpertStreamer?

    /// `precision` is resolved here, once: `.auto` becomes `.fast` for GGML-quantised
    /// matrices and `.exact` otherwise. With `streaming`, the experts are read from the
    /// store's mapped files into a pool of slots within its RAM budget (`ExpertStreamer`);
    /// the store must map its files, not read them into memory.
    ///
    /// With a `communicator` of several ranks, this process keeps only its rank's slices of
    /// the weights (`TensorParallel`) and the forward passes exchange partial sums with the
    /// other ranks; every rank must make the model with the same arguments.
    public init(config: ModelConfig, store: any WeightStore, pool: ComputePool,
                precision: PrecisionChoice = .exact, streaming: ExpertStreamingOptions? = nil,
                communicator: any Communicator = SingleProcessCommunicator()) throws(CheckpointError) {
        self.fullConfig = config
        self.store = store
        self.pool = pool
        self.communicator = communicator
        let reader = WeightReader(store: store)
        var weights: DecoderWeights
        switch config.architecture {
        case .mixtral: weights = try MixtralArchitecture.load(config, reader)
        case .mistral, .llama: weights = try LlamaArchitecture.load(config, reader)
        }
        if communicator.size > 1 {
            // Streamed, each rank streams its own slices of the experts.
            let (local, localConfig, slices) = try TensorParallel.slice(weights, config: config, rank: communicator.rank,
                                                                        size: communicator.size, feedForwardsInFile: streaming != nil,
                                                                        dropSourcePages: { store.dropMappedPages() })
            weights = local
            self.config = localConfig
            self.slices = slices
            shares = TensorParallel.shares(config, size: communicator.size)
        } else {
            self.config = config
            self.slices = nil
            shares = []
        }
        self.weights = weights
        self.precision = precision.resolved(quantizedMatrices: Self.hasQuantizedMatrices(weights))
        inverseFrequencies = Self.ropeInverseFrequencies(config)
        if let streaming {
            expertStreamer = try ExpertStreamer(experts: weights.layers.map(\.streamedFeedForwards),
                                                routedPerToken: config.isMoE ? config.numExpertsPerToken : 1, store: store,
                                                denseBytes: Self.residentBytes(weights), options: streaming)
        } else {
            expertStreamer = nil
        }
    }

    /// What expert streaming did so far; nil when all weights are resident.
    public var expertStreamingStats: ExpertStreamingStats? { expertStreamer?.statistics }

    /// Bytes of the weights that stay in memory when the experts stream: embeddings,
    /// attention, norms, routers and lm_head.
    static func residentBytes(_ weights: DecoderWeights) -> Int {
        var bytes = weights.embedTokens.byteCount + weights.finalNorm.count * 4
        if weights.lmHead.base != weights.embedTokens.base { bytes += weights.lmHead.byteCount }
        for layer in weights.layers {
            let a = layer.attention
            bytes += a.q.byteCount + a.k.byteCount + a.v.byteCount + a.o.byteCount
            bytes += (layer.inputNorm.count + layer.postAttentionNorm.count) * 4
            if case .sparseMoE(let router, _) = layer.mlp { bytes += router.byteCount }
        }
        return bytes
    }

    /// Whether the decoder's matrices are stored in a GGML block format (a quantised GGUF
    /// file or `--quantize`), where `.fast` computes what llama.cpp computes.
    public var hasQuantizedMatrices: Bool { Self.hasQuantizedMatrices(weights) }

    static func hasQuantizedMatrices(_ weights: DecoderWeights) -> Bool {
        guard let q = weights.layers.first?.attention.q.type else { return false }
        return ![.f32, .f16, .bf16].contains(q)
    }

    /// Loads a Hugging Face model folder (config.json + safetensors). The kernels are this
    /// CPU's (`KernelTable.default`) unless given.
    public convenience init(folder: String, threads: Int? = nil, kernels: KernelTable = .default,
                            precision: PrecisionChoice = .exact) throws(CheckpointError) {
        let config = try ModelConfig.load(path: folder + "/config.json")
        let store = try SafeTensorsCheckpoint(folder: folder)
        try self.init(config: config, store: store,
                      pool: ComputePool(threadCount: threads ?? ComputePool.defaultThreadCount(), kernels: kernels),
                      precision: precision)
    }

    /// inv_freq[i] = 1 / theta^(2i/d), in fp32 as transformers' default RoPE, with the
    /// config's scaling applied (linear: / factor; llama3: frequency-dependent).
    static func ropeInverseFrequencies(_ c: ModelConfig) -> [Float] {
        let d = c.headDim
        var inv = (0..<(d / 2)).map { i in 1 / powf(c.ropeTheta, Float(2 * i) / Float(d)) }
        switch c.ropeScaling {
        case .none:
            break
        case .linear(let factor):
            inv = inv.map { $0 / factor }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Float(original) / low
            let highWavelength = Float(original) / high
            inv = inv.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (Float(original) / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
        return inv
    }

    public func makeCache(maxPositions: Int? = nil) -> KVCache {
        KVCache(layers: config.numLayers, rowWidth: config.numKeyValueHeads * config.headDim,
                maxPositions: maxPositions ?? config.maxPositionEmbeddings)
    }

    /// Tokens per forward pass in a long prompt: activation memory stays bounded (as
    /// llama.cpp's ubatch), and each chunk still reads the weights once for all its tokens.
    public static let prefillChunk = 512

    /// Runs `tokens` after what the cache holds and appends their keys and values.
    /// Returns logits [rows, vocab] for every token (`allLogits`) or only the last one.
    /// Long prompts run in chunks of `prefillChunk` tokens (the same result: attention is
    /// causal, and each chunk sees the cache of the ones before).
    public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false) throws(ModelError) -> [Float] {
        guard !tokens.isEmpty else { throw .emptyInput }
        for id in tokens where id < 0 || id >= config.vocabSize {
            throw .tokenOutOfRange(id: id, vocabularySize: config.vocabSize)
        }
        guard cache.count + tokens.count <= cache.maxPositions else {
            throw .contextOverflow(tokens: cache.count + tokens.count, limit: cache.maxPositions)
        }
        guard tokens.count > Self.prefillChunk else { return try forwardChunk(tokens, cache: cache, allLogits: allLogits) }
        var logits: [Float] = []
        var start = 0
        while start < tokens.count {
            let chunk = Array(tokens[start..<min(tokens.count, start + Self.prefillChunk)])
            let isLast = start + chunk.count == tokens.count
            if allLogits || isLast {
                logits += try forwardChunk(chunk, cache: cache, allLogits: allLogits)
            } else {
                _ = try forwardChunk(chunk, cache: cache, allLogits: false)
            }
            start += chunk.count
        }
        return logits
    }

    private func forwardChunk(_ tokens: [Int], cache: KVCache, allLogits: Bool) throws(ModelError) -> [Float] {
        let c = config
        let t = tokens.count
        let h = c.hiddenSize
        let first = cache.count
        cache.reserve(t)

        let x = FloatBuffer(capacity: t * h)
        embed(tokens, into: x.pointer)
        let scratch = Scratch(config: c, tokens: t, products: precision)
        let (cosTable, sinTable) = ropeTables(positions: first..<(first + t))
        for (index, layer) in weights.layers.enumerated() {
            attentionBlock(layer, x: x, scratch: scratch, cache: cache, layerIndex: index,
                           firstPosition: first, tokens: t, cos: cosTable, sin: sinTable)
            try mlpBlock(layer, index: index, x: x, scratch: scratch, tokens: t)
        }
        cache.advance(by: t)

        let rows = allLogits ? t : 1
        let firstRow = t - rows
        let normed = FloatBuffer(capacity: rows * h)
        weights.finalNorm.withUnsafeBufferPointer { norm in
            for r in 0..<rows { normalizeRow(x.pointer + (firstRow + r) * h, norm.baseAddress!, normed.pointer + r * h) }
        }
        let logits = projectLogits(normed.pointer, rows: rows, products: scratch.products)
        // Kernels read buffers through raw pointers: keep their owners alive until here.
        withExtendedLifetime((x, scratch, normed)) {}
        return logits
    }

    /// Activations of one forward call, and how its matrix products take them.
    final class Scratch {
        let normed, q, k, v, attended, projected: FloatBuffer
        /// `precision`, except in batched steps with float weights and one-token rows (see
        /// `forward(batch:)`).
        let products: ActivationPrecision
        init(config c: ModelConfig, tokens t: Int, products: ActivationPrecision) {
            self.products = products
            normed = FloatBuffer(capacity: t * c.hiddenSize)
            q = FloatBuffer(capacity: t * c.numHeads * c.headDim)
            k = FloatBuffer(capacity: t * c.numKeyValueHeads * c.headDim)
            v = FloatBuffer(capacity: t * c.numKeyValueHeads * c.headDim)
            attended = FloatBuffer(capacity: t * c.numHeads * c.headDim)
            projected = FloatBuffer(capacity: t * c.hiddenSize)
        }
    }

    func normalize(_ x: FloatBuffer, _ weight: [Float], into out: FloatBuffer, tokens: Int) {
        let h = config.hiddenSize
        weight.withUnsafeBufferPointer { w in
            for r in 0..<tokens { normalizeRow(x.pointer + r * h, w.baseAddress!, out.pointer + r * h) }
        }
    }

    /// q, k, v of `tokens` rows from rmsnorm(x), with RoPE applied to q and k (the rows'
    /// cos/sin tables given).
    func projectQueriesKeysValues(_ layer: DecoderWeights.Layer, x: FloatBuffer, scratch s: Scratch, tokens t: Int,
                                  cos: [Float], sin: [Float]) {
        let c = config
        normalize(x, layer.inputNorm, into: s.normed, tokens: t)
        linear([LinearJob(s.normed.pointer, tokens: t, layer.attention.q, s.q.pointer),
                LinearJob(s.normed.pointer, tokens: t, layer.attention.k, s.k.pointer),
                LinearJob(s.normed.pointer, tokens: t, layer.attention.v, s.v.pointer)], precision: s.products, pool: pool)
        let half = c.headDim / 2
        cos.withUnsafeBufferPointer { cosTable in
            sin.withUnsafeBufferPointer { sinTable in
                for r in 0..<t {
                    let cosRow = cosTable.baseAddress! + r * half, sinRow = sinTable.baseAddress! + r * half
                    rotate(s.q.pointer + r * c.numHeads * c.headDim, heads: c.numHeads, cos: cosRow, sin: sinRow)
                    rotate(s.k.pointer + r * c.numKeyValueHeads * c.headDim, heads: c.numKeyValueHeads, cos: cosRow, sin: sinRow)
                }
            }
        }
    }

    private func attentionBlock(_ layer: DecoderWeights.Layer, x: FloatBuffer, scratch s: Scratch, cache: KVCache,
                                layerIndex: Int, firstPosition: Int, tokens t: Int, cos: [Float], sin: [Float]) {
        let h = config.hiddenSize
        projectQueriesKeysValues(layer, x: x, scratch: s, tokens: t, cos: cos, sin: sin)
        storeKeysValues(s.k.pointer, s.v.pointer, count: t, first: firstPosition, cache: cache, layer: layerIndex)
        attend(s.q.pointer, tokens: t, firstPosition: firstPosition, cache: cache, layer: layerIndex, s.attended.pointer)
        projectAttention(s.attended.pointer, tokens: t, layer.attention.o, into: s.projected.pointer, products: s.products)
        for i in 0..<(t * h) { x[i] += s.projected[i] }
    }

    /// The embedding rows of `ids`, one after another. Split over several ranks each holds
    /// the rows of its share of the vocabulary and writes
    /// -0.0 for the others; the all-reduce then yields the owner's row bit for bit, since
    /// x + (-0.0) = x for every x, zeros of either sign included.
    func embed(_ ids: [Int], into x: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize
        let table = weights.embedTokens
        guard communicator.size > 1 else {
            for (row, id) in ids.enumerated() { dequantizeRow(table.type, table.row(id), x + row * h, count: h) }
            return
        }
        let owned = shares[communicator.rank].vocabulary
        for (row, id) in ids.enumerated() {
            if owned.contains(id) {
                dequantizeRow(table.type, table.row(id - owned.lowerBound), x + row * h, count: h)
            } else {
                (x + row * h).update(repeating: -0.0, count: h)
            }
        }
        communicator.allReduceSum(x, count: ids.count * h)
    }

    /// lm_head over `rows` final-normed rows: logits [rows, vocab]. Split over several ranks
    /// each computes its rows of the vocabulary, and an all-gather sets the shares side by
    /// side.
    func projectLogits(_ normed: UnsafePointer<Float>, rows: Int, products: ActivationPrecision) -> [Float] {
        let vocabulary = config.vocabSize
        var logits = [Float](repeating: 0, count: rows * vocabulary)
        guard communicator.size > 1 else {
            logits.withUnsafeMutableBufferPointer { out in
                linear(normed, tokens: rows, weights.lmHead, out.baseAddress!, precision: products, pool: pool)
            }
            return logits
        }
        let mine = weights.lmHead.rows
        let local = [Float](unsafeUninitializedCapacity: rows * mine) { buffer, count in
            linear(normed, tokens: rows, weights.lmHead, buffer.baseAddress!, precision: products, pool: pool)
            count = rows * mine
        }
        local.withUnsafeBufferPointer { mine in
            logits.withUnsafeMutableBufferPointer { whole in
                gatherColumns([mine.baseAddress!], rows: [rows], columns: shares.map(\.vocabulary), width: vocabulary, into: [whole.baseAddress!])
            }
        }
        return logits
    }

    func mlpBlock(_ layer: DecoderWeights.Layer, index: Int, x: FloatBuffer, scratch s: Scratch, tokens t: Int) throws(ModelError) {
        let h = config.hiddenSize
        normalize(x, layer.postAttentionNorm, into: s.normed, tokens: t)
        switch layer.mlp {
        case .dense(let ffn):
            let out = FloatBuffer(capacity: t * h)
            // Split, this rank computes its rows of the hidden size.
            let mine = communicator.size > 1 ? FloatBuffer(capacity: t * ffn.down.rows) : out
            // Streamed, the next layer's MLP is always needed: its read starts now.
            expertStreamer?.recordRouting(layer: index, experts: [0])
            if index + 1 < weights.layers.count, case .dense = weights.layers[index + 1].mlp {
                expertStreamer?.prefetch(layer: index + 1, experts: [0])
            }
            try runFeedForwards(layer: index, experts: [0], resident: [ffn], inputs: [s.normed.pointer], tokens: [t],
                                outputs: [mine.pointer], products: s.products)
            if communicator.size > 1 { gatherHidden(mine.pointer, tokens: t, into: out.pointer) }
            for i in 0..<(t * h) { x[i] += out[i] }
            withExtendedLifetime((out, mine)) {}
        case .sparseMoE(let router, let experts):
            try sparseMoE(layer: index, router: router, experts: experts, input: s.normed.pointer, tokens: t, residual: x,
                          products: s.products)
        }
    }

    /// One feed-forward's input and output rows.
    struct FeedForwardCall {
        let ffn: DecoderWeights.FeedForward
        let input: UnsafePointer<Float>
        let tokens: Int
        let output: UnsafeMutablePointer<Float>
    }

    /// down(silu(gate x) * up x) for several feed-forwards (the experts of a layer) at
    /// once: all gate and up products in one parallel operation, all down products in a
    /// second one.
    func feedForward(_ calls: [FeedForwardCall], products: ActivationPrecision) {
        guard communicator.size == 1 else {
            splitFeedForward(calls, products: products)
            return
        }
        let hidden = gateAndUp(calls, products: products)
        var down: [LinearJob] = []
        for (call, buffer) in zip(calls, hidden) {
            let count = call.tokens * call.ffn.gate.rows
            swiGLU(buffer.pointer, buffer.pointer + count, count: count)
            down.append(LinearJob(buffer.pointer, tokens: call.tokens, call.ffn.down, call.output))
        }
        linear(down, precision: products, pool: pool)
        withExtendedLifetime(hidden) {}
    }

    /// Each call's gate and up products in one parallel operation, into a buffer per call:
    /// gate [tokens, gate rows], then up.
    func gateAndUp(_ calls: [FeedForwardCall], products: ActivationPrecision) -> [FloatBuffer] {
        let buffers = calls.map { FloatBuffer(capacity: max(1, 2 * $0.tokens * $0.ffn.gate.rows)) }
        var jobs: [LinearJob] = []
        for (call, buffer) in zip(calls, buffers) {
            jobs.append(LinearJob(call.input, tokens: call.tokens, call.ffn.gate, buffer.pointer))
            jobs.append(LinearJob(call.input, tokens: call.tokens, call.ffn.up, buffer.pointer + call.tokens * call.ffn.gate.rows))
        }
        linear(jobs, precision: products, pool: pool)
        return buffers
    }

    /// Mixtral's sparse MoE block: router softmax over all experts in fp32, top-k,
    /// renormalise the k weights to sum 1, then each expert runs once on the tokens routed
    /// to it and its weighted output is added in expert order (as transformers' index_add_).
    func sparseMoE(layer: Int, router: WeightMatrix, experts: [DecoderWeights.FeedForward], input: UnsafePointer<Float>,
                   tokens t: Int, residual x: FloatBuffer, products: ActivationPrecision) throws(ModelError) {
        let h = config.hiddenSize
        let e = experts.count
        let k = config.numExpertsPerToken
        var routerLogits = [Float](repeating: 0, count: t * e)
        routerLogits.withUnsafeMutableBufferPointer { self.routerLogits(router, input: input, tokens: t, into: $0.baseAddress!) }
        // routed[expert] = [(token, weight)]
        var routed = [[(token: Int, weight: Float)]](repeating: [], count: e)
        routerLogits.withUnsafeMutableBufferPointer { logits in
            for token in 0..<t {
                let probabilities = logits.baseAddress! + token * e
                routerSoftmax(probabilities, count: e)
                let chosen = topK(probabilities, count: e, k: k)
                let total = chosen.reduce(Float(0)) { $0 + probabilities[$1] }
                for expert in chosen { routed[expert].append((token, probabilities[expert] / total)) }
            }
        }
        // Gather each used expert's tokens, run the experts together, scatter back in expert
        // order. Split, the experts compute this rank's rows of the hidden size, a group
        // of them at a time (`activationGroups`), so a long prompt's buffers stay small.
        let used = routed.indices.filter { !routed[$0].isEmpty }
        let rows = experts.first?.down.rows ?? h
        if let streamer = expertStreamer {
            streamer.recordRouting(layer: layer, experts: used)
            if streamer.options.prefetch { prefetchNextLayerExperts(after: layer, input: input, tokens: t) }
        }
        let mine = FloatBuffer(capacity: t * rows)
        mine.pointer.initialize(repeating: 0, count: t * rows)
        let groups = communicator.size > 1 ? activationGroups(used.map { routed[$0].count }) : [used.indices]
        for group in groups {
            let members = Array(used[group])
            let gathered = members.map { FloatBuffer(capacity: routed[$0].count * h) }
            let outputs = members.map { FloatBuffer(capacity: routed[$0].count * rows) }
            for (slot, expert) in members.enumerated() {
                for (row, item) in routed[expert].enumerated() {
                    (gathered[slot].pointer + row * h).update(from: input + item.token * h, count: h)
                }
            }
            try runFeedForwards(layer: layer, experts: members, resident: members.map { experts[$0] },
                                inputs: gathered.map { UnsafePointer($0.pointer) }, tokens: members.map { routed[$0].count },
                                outputs: outputs.map(\.pointer), products: products)
            for (slot, expert) in members.enumerated() {
                for (row, item) in routed[expert].enumerated() {
                    for i in 0..<rows { mine[item.token * rows + i] += outputs[slot][row * rows + i] * item.weight }
                }
            }
            withExtendedLifetime((gathered, outputs)) {}
        }
        let moeOut = communicator.size > 1 ? FloatBuffer(capacity: t * h) : mine
        if communicator.size > 1 { gatherHidden(mine.pointer, tokens: t, into: moeOut.pointer) }
        for i in 0..<(t * h) { x[i] += moeOut[i] }
        withExtendedLifetime((mine, moeOut)) {}
    }

    /// Indices of the k largest values, largest first; ties go to the lower index.
    func topK(_ values: UnsafePointer<Float>, count: Int, k: Int) -> [Int] {
        var chosen: [Int] = []
        for _ in 0..<k {
            var best = -1
            for i in 0..<count where !chosen.contains(i) {
                if best < 0 || values[i] > values[best] { best = i }
            }
            chosen.append(best)
        }
        return chosen
    }
}

extension LanguageModel {
    /// The memory of every resident weight matrix (embedding, attention, router, all
    /// experts unless they stream, lm_head), for `BandwidthProbe`.
    public var weightMemory: [UnsafeRawBufferPointer] {
        var matrices = [weights.embedTokens, weights.lmHead]
        for layer in weights.layers {
            let a = layer.attention
            matrices += [a.q, a.k, a.v, a.o]
            if expertStreamer != nil {
                if case .sparseMoE(let router, _) = layer.mlp { matrices.append(router) }
                continue
            }
            switch layer.mlp {
            case .dense(let ffn):
                matrices += [ffn.gate, ffn.up, ffn.down]
            case .sparseMoE(let router, let experts):
                matrices.append(router)
                for expert in experts { matrices += [expert.gate, expert.up, expert.down] }
            }
        }
        return matrices.map { UnsafeRawBufferPointer(start: $0.base, count: $0.byteCount) }
    }

    /// Weight bytes one decode step reads: attention, router and the k routed experts of
    /// every layer, the final norm and lm_head (one embedding row is negligible).
    public var weightBytesPerGeneratedToken: Int {
        var bytes = weights.lmHead.byteCount + weights.embedTokens.rowBytes
        for layer in weights.layers {
            let a = layer.attention
            bytes += a.q.byteCount + a.k.byteCount + a.v.byteCount + a.o.byteCount
            bytes += (layer.inputNorm.count + layer.postAttentionNorm.count) * 4
            switch layer.mlp {
            case .dense(let ffn):
                bytes += ffn.gate.byteCount + ffn.up.byteCount + ffn.down.byteCount
            case .sparseMoE(let router, let experts):
                let expert = experts[0]
                bytes += router.byteCount + config.numExpertsPerToken * (expert.gate.byteCount + expert.up.byteCount + expert.down.byteCount)
            }
        }
        return bytes
    }
}
