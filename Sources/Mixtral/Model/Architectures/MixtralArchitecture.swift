/// Mixtral (transformers' modeling_mixtral.py): Mistral attention with a sparse
/// mixture-of-experts block. Tensor names as in the checkpoint:
/// model.layers.N.block_sparse_moe.gate (router) and .experts.E.{w1 gate, w3 up, w2 down}.
enum MixtralArchitecture {
    static func load(_ c: ModelConfig, _ weights: WeightReader) throws(CheckpointError) -> DecoderWeights {
        var layers: [DecoderWeights.Layer] = []
        for n in 0..<c.numLayers {
            let layer = "model.layers.\(n)"
            let moe = layer + ".block_sparse_moe"
            var experts: [DecoderWeights.FeedForward] = []
            for e in 0..<c.numExperts {
                let expert = moe + ".experts.\(e)"
                experts.append(.init(gate: try weights.matrix(expert + ".w1.weight", c.intermediateSize, c.hiddenSize),
                                     up: try weights.matrix(expert + ".w3.weight", c.intermediateSize, c.hiddenSize),
                                     down: try weights.matrix(expert + ".w2.weight", c.hiddenSize, c.intermediateSize)))
            }
            layers.append(.init(
                inputNorm: try weights.vector(layer + ".input_layernorm.weight", c.hiddenSize),
                attention: try weights.attention(layer + ".self_attn", c),
                postAttentionNorm: try weights.vector(layer + ".post_attention_layernorm.weight", c.hiddenSize),
                mlp: .sparseMoE(router: try weights.matrix(moe + ".gate.weight", c.numExperts, c.hiddenSize), experts: experts)))
        }
        return try weights.decoder(c, layers: layers)
    }
}
