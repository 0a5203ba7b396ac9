import MixtralKernels

extension DecoderWeights.Layer {
    /// The feed-forwards expert streaming reads from the file: a MoE layer's experts, or a
    /// dense layer's MLP as its one expert.
    var streamedFeedForwards: [DecoderWeights.FeedForward] {
        switch mlp {
        case .dense(let ffn): return [ffn]
        case .sparseMoE(_, let experts): return experts
        }
    }
}

extension LanguageModel {
    /// Runs the feed-forwards `experts` of layer `layer` (input i to output i). Resident,
    /// all at once. Streamed, as many as the slots hold at a time, each pinned in memory
    /// while it runs, those already read first while the others' reads go on; every
    /// expert's output lands in its own buffer, so the grouping does not change a bit of
    /// the result.
    func runFeedForwards(layer: Int, experts: [Int], resident: [DecoderWeights.FeedForward],
                         inputs: [UnsafePointer<Float>], tokens: [Int], outputs: [UnsafeMutablePointer<Float>],
                         products: ActivationPrecision) throws(ModelError) {
        func calls(_ ffns: [DecoderWeights.FeedForward], at positions: [Int]) -> [FeedForwardCall] {
            zip(positions, ffns).map { position, ffn in
                FeedForwardCall(ffn: ffn, input: inputs[position], tokens: tokens[position], output: outputs[position])
            }
        }
        guard let streamer = expertStreamer else {
            feedForward(calls(resident, at: Array(experts.indices)), products: products)
            return
        }
        var start = 0
        while start < experts.count {
            let count = streamer.pin(layer: layer, experts: experts[start...])
            let group = experts[start..<(start + count)]
            defer { streamer.release(layer: layer, experts: group) }
            let positions = Array(start..<(start + count))
            // Split over ranks, every rank runs the experts in the same order (their exchanges
            // must match); one process runs those already read first.
            let ready = communicator.size > 1 ? positions : positions.filter { streamer.isReady(layer: layer, expert: experts[$0]) }
            let late = positions.filter { !ready.contains($0) }
            for part in [ready, late] where !part.isEmpty {
                let matrices: [DecoderWeights.FeedForward]
                do {
                    matrices = try streamer.wait(layer: layer, experts: part.map { experts[$0] })
                } catch {
                    // Split, the other ranks are past this point in the same pass: a failed
                    // read here cannot be reported to one request, it ends the run.
                    if communicator.size > 1 { communicator.abort(reason: error.description) }
                    throw error
                }
                feedForward(calls(matrices, at: part), products: products)
            }
            start += count
        }
    }

    /// Router-ahead prefetch: layer `layer + 1`'s router applied to layer `layer`'s MoE
    /// input guesses the experts the next layer will pick (the residual stream changes
    /// little from one layer to the next), and their reads start while this layer computes.
    /// The real router still decides; a wrong guess costs only bandwidth.
    func prefetchNextLayerExperts(after layer: Int, input: UnsafePointer<Float>, tokens t: Int) {
        guard let streamer = expertStreamer else { return }
        for ahead in (layer + 1)...(layer + max(1, streamer.options.prefetchDepth)) where ahead < weights.layers.count {
            guard case .sparseMoE(let router, let experts) = weights.layers[ahead].mlp else { return }
            let e = experts.count
            var logits = [Float](repeating: 0, count: t * e)
            logits.withUnsafeMutableBufferPointer { routerLogits(router, input: input, tokens: t, into: $0.baseAddress!) }
            var guess = Set<Int>()
            logits.withUnsafeBufferPointer { values in
                for token in 0..<t {
                    // Softmax keeps the order of the logits: the top k logits are the top k experts.
                    guess.formUnion(topK(values.baseAddress! + token * e, count: e, k: config.numExpertsPerToken))
                }
            }
            streamer.prefetch(layer: ahead, experts: guess)
        }
    }
}
