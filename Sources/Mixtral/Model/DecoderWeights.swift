import MixtralKernels

/// The weights of a decoder-only transformer (Mixtral, Mistral, Llama), read in place.
/// Architecture files fill this from a checkpoint's tensor names.
public struct DecoderWeights: Sendable {
    public struct Attention: Sendable {
        public var q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix
    }

    /// SwiGLU feed-forward: down(silu(gate x) * up x). Mixtral calls them w1, w3, w2.
    public struct FeedForward: Sendable {
        public var gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    }

    public enum MLP: Sendable {
        case dense(FeedForward)
        /// Router [experts, hidden] and one SwiGLU feed-forward per expert.
        case sparseMoE(router: WeightMatrix, experts: [FeedForward])
    }

    public struct Layer: Sendable {
        public var inputNorm: [Float]
        public var attention: Attention
        public var postAttentionNorm: [Float]
        public var mlp: MLP
    }

    public var embedTokens: WeightMatrix
    public var layers: [Layer]
    public var finalNorm: [Float]
    public var lmHead: WeightMatrix
}

/// Reads tensors by name and checks their shapes against the config.
struct WeightReader {
    let store: any WeightStore

    func matrix(_ name: String, _ rows: Int, _ columns: Int) throws(CheckpointError) -> WeightMatrix {
        try store.tensor(name).matrix(rows: rows, columns: columns)
    }

    func vector(_ name: String, _ count: Int) throws(CheckpointError) -> [Float] {
        try store.tensor(name).floats(count: count)
    }

    func attention(_ prefix: String, _ c: ModelConfig) throws(CheckpointError) -> DecoderWeights.Attention {
        let qRows = c.numHeads * c.headDim, kvRows = c.numKeyValueHeads * c.headDim
        return .init(q: try matrix(prefix + ".q_proj.weight", qRows, c.hiddenSize),
                     k: try matrix(prefix + ".k_proj.weight", kvRows, c.hiddenSize),
                     v: try matrix(prefix + ".v_proj.weight", kvRows, c.hiddenSize),
                     o: try matrix(prefix + ".o_proj.weight", c.hiddenSize, qRows))
    }

    /// Embeddings, final norm and lm_head (or the tied embedding matrix).
    func decoder(_ c: ModelConfig, layers: [DecoderWeights.Layer]) throws(CheckpointError) -> DecoderWeights {
        let embed = try matrix("model.embed_tokens.weight", c.vocabSize, c.hiddenSize)
        let lmHead = c.tieWordEmbeddings && !store.contains("lm_head.weight")
            ? embed : try matrix("lm_head.weight", c.vocabSize, c.hiddenSize)
        return DecoderWeights(embedTokens: embed, layers: layers,
                              finalNorm: try vector("model.norm.weight", c.hiddenSize), lmHead: lmHead)
    }
}
