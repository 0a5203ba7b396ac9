/// Llama and Mistral (transformers' modeling_llama.py / modeling_mistral.py): the dense
/// decoder, with a SwiGLU MLP model.layers.N.mlp.{gate,up,down}_proj. Mistral differs
/// only by its sliding window, which the config carries.
enum LlamaArchitecture {
    static func load(_ c: ModelConfig, _ weights: WeightReader) throws(CheckpointError) -> DecoderWeights {
        var layers: [DecoderWeights.Layer] = []
        for n in 0..<c.numLayers {
            let layer = "model.layers.\(n)"
            let mlp = DecoderWeights.FeedForward(
                gate: try weights.matrix(layer + ".mlp.gate_proj.weight", c.intermediateSize, c.hiddenSize),
                up: try weights.matrix(layer + ".mlp.up_proj.weight", c.intermediateSize, c.hiddenSize),
                down: try weights.matrix(layer + ".mlp.down_proj.weight", c.hiddenSize, c.intermediateSize))
            layers.append(.init(
                inputNorm: try weights.vector(layer + ".input_layernorm.weight", c.hiddenSize),
                attention: try weights.attention(layer + ".self_attn", c),
                postAttentionNorm: try weights.vector(layer + ".post_attention_layernorm.weight", c.hiddenSize),
                mlp: .dense(mlp)))
        }
        return try weights.decoder(c, layers: layers)
    }
}
