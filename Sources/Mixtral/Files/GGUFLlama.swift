import MixtralKernels

/// The hyper-parameters of a `general.architecture = llama` GGUF file: Llama, Mistral and
/// Mixtral as llama.cpp's converter writes them (keys `llama.*`), with llama.cpp's defaults.
public struct GGUFLlamaHyperparameters: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    /// Per expert for MoE models.
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var ropeDimensionCount: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var contextLength: Int
    /// 1 for dense models.
    public var numExperts: Int
    public var numExpertsPerToken: Int
    /// True when the file has no `output.weight` (the output projection is the embedding).
    public var tieWordEmbeddings: Bool
    /// `llama.rope.scaling.type` ("linear", "yarn", ...) and factor, when present.
    public var ropeScalingType: String?
    public var ropeScalingFactor: Float?

    public var isMoE: Bool { numExperts > 1 }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKeyValueHeads: Int, headDim: Int, ropeDimensionCount: Int? = nil, rmsNormEps: Float,
                ropeTheta: Float, contextLength: Int, numExperts: Int = 1, numExpertsPerToken: Int = 1,
                tieWordEmbeddings: Bool = false, ropeScalingType: String? = nil, ropeScalingFactor: Float? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim
        self.ropeDimensionCount = ropeDimensionCount ?? headDim
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.contextLength = contextLength
        self.numExperts = numExperts
        self.numExpertsPerToken = numExpertsPerToken
        self.tieWordEmbeddings = tieWordEmbeddings
        self.ropeScalingType = ropeScalingType
        self.ropeScalingFactor = ropeScalingFactor
    }

    public init(file: GGUFFile) throws(GGUFError) {
        let architecture = try file.string("general.architecture")
        guard architecture == "llama" else {
            throw .invalidMetadata(path: file.path, key: "general.architecture",
                                   reason: "'\(architecture)' is not supported (supported: llama, which includes Mistral and Mixtral)")
        }
        func positive(_ key: String) throws(GGUFError) -> Int {
            let value = try file.int(key)
            guard value > 0 else { throw .invalidMetadata(path: file.path, key: key, reason: "\(value) is not positive") }
            return value
        }
        func optionalPositive(_ key: String) throws(GGUFError) -> Int? {
            file.metadata[key] == nil ? nil : try positive(key)
        }
        /// A per-layer key that may be an array (llama.cpp allows one value per layer);
        /// this engine needs the same value for every layer.
        func uniformPositive(_ key: String) throws(GGUFError) -> Int? {
            guard let value = file.metadata[key] else { return nil }
            if case .array = value {
                let values = try file.intArray(key)
                guard let first = values.first, first > 0, values.allSatisfy({ $0 == first }) else {
                    throw .invalidMetadata(path: file.path, key: key, reason: "per-layer values \(values) differ or are not positive")
                }
                return first
            }
            return try positive(key)
        }

        let prefix = "llama."
        hiddenSize = try positive(prefix + "embedding_length")
        numLayers = try positive(prefix + "block_count")
        // Every block has tensors named blk.<i>.*; a count beyond them is corrupt, and would
        // otherwise size per-layer allocations.
        let blocksWithTensors = Set(file.tensorNames.compactMap { name -> Int? in
            guard name.hasPrefix("blk.") else { return nil }
            return Int(name.dropFirst(4).prefix { $0 != "." })
        })
        guard numLayers <= blocksWithTensors.count, (0..<numLayers).allSatisfy(blocksWithTensors.contains) else {
            throw .invalidMetadata(path: file.path, key: prefix + "block_count",
                                   reason: "\(numLayers) blocks declared, but the file has tensors (blk.<i>.*) for \(blocksWithTensors.count)")
        }
        contextLength = try optionalPositive(prefix + "context_length") ?? 2048
        guard let heads = try uniformPositive(prefix + "attention.head_count") else {
            throw .missingKey(path: file.path, key: prefix + "attention.head_count")
        }
        numHeads = heads
        numKeyValueHeads = try uniformPositive(prefix + "attention.head_count_kv") ?? heads
        guard numHeads % numKeyValueHeads == 0 else {
            throw .invalidMetadata(path: file.path, key: prefix + "attention.head_count_kv",
                                   reason: "\(numHeads) heads are not a multiple of \(numKeyValueHeads) key/value heads")
        }
        if let keyLength = try optionalPositive(prefix + "attention.key_length") {
            headDim = keyLength
        } else {
            guard hiddenSize % numHeads == 0 else {
                throw .invalidMetadata(path: file.path, key: prefix + "attention.head_count",
                                       reason: "embedding length \(hiddenSize) is not a multiple of \(numHeads) heads")
            }
            headDim = hiddenSize / numHeads
        }
        if let valueLength = try optionalPositive(prefix + "attention.value_length"), valueLength != headDim {
            throw .invalidMetadata(path: file.path, key: prefix + "attention.value_length",
                                   reason: "\(valueLength) differs from key_length \(headDim)")
        }
        ropeDimensionCount = try optionalPositive(prefix + "rope.dimension_count") ?? headDim
        /// A float key that must be finite and above zero (NaN or 0 would compute garbage).
        func positiveFloat(_ key: String, default value: Float) throws(GGUFError) -> Float {
            guard file.metadata[key] != nil else { return value }
            let found = try file.float(key)
            guard found.isFinite, found > 0 else { throw .invalidMetadata(path: file.path, key: key, reason: "\(found) is not a positive finite number") }
            return found
        }
        rmsNormEps = try positiveFloat(prefix + "attention.layer_norm_rms_epsilon", default: 1e-5)
        ropeTheta = try positiveFloat(prefix + "rope.freq_base", default: 10_000)

        let experts = file.metadata[prefix + "expert_count"] == nil ? 0 : try file.int(prefix + "expert_count")
        if experts > 1 {
            numExperts = experts
            numExpertsPerToken = try positive(prefix + "expert_used_count")
            guard numExpertsPerToken <= numExperts else {
                throw .invalidMetadata(path: file.path, key: prefix + "expert_used_count",
                                       reason: "\(numExpertsPerToken) exceeds expert_count \(numExperts)")
            }
        } else {
            numExperts = 1
            numExpertsPerToken = 1
        }
        if let expertLength = try optionalPositive(prefix + "expert_feed_forward_length") {
            intermediateSize = expertLength
        } else {
            intermediateSize = try positive(prefix + "feed_forward_length")
        }

        if let vocab = try optionalPositive(prefix + "vocab_size") {
            vocabSize = vocab
        } else if let tokens = file.metadata["tokenizer.ggml.tokens"]?.arrayValue {
            vocabSize = tokens.count
        } else {
            vocabSize = try file.tensorInfo("token_embd.weight").dimensions.last ?? 0
        }
        tieWordEmbeddings = !file.contains("output.weight")
        ropeScalingType = try file.optional(prefix + "rope.scaling.type", file.string)
        ropeScalingFactor = try file.optional(prefix + "rope.scaling.factor", file.float)
    }
}

/// Where a Hugging Face tensor of a Llama/Mistral/Mixtral checkpoint lies in a llama GGUF file.
public struct GGUFLlamaTensorLocation: Sendable, Equatable {
    /// The GGUF tensor name.
    public var name: String
    /// For one expert of a stacked 3-D expert tensor: which expert (outermost index).
    public var expert: Int?
    /// The GGUF rows are in llama.cpp's interleaved RoPE order for this many heads (q and k
    /// projections); see `ggufRoPERow`.
    public var ropePermutedHeads: Int?
}

extension GGUFFile {
    /// Locates a Hugging Face tensor name (`model.layers.3.self_attn.q_proj.weight`,
    /// `model.layers.0.block_sparse_moe.experts.5.w1.weight`, `lm_head.weight`, ...) in this
    /// llama GGUF: stacked expert tensors (`blk.N.ffn_gate_exps.weight`) or the older
    /// per-expert names (`blk.N.ffn_gate.E.weight`), and the embedding for a tied output.
    public func llamaLocation(hfName: String, _ hyperparameters: GGUFLlamaHyperparameters) throws(GGUFError) -> GGUFLlamaTensorLocation {
        func found(_ name: String, expert: Int? = nil, heads: Int? = nil) throws(GGUFError) -> GGUFLlamaTensorLocation {
            guard contains(name) else { throw .tensorNotFound(path: path, tensor: "\(name) (for \(hfName))") }
            return GGUFLlamaTensorLocation(name: name, expert: expert, ropePermutedHeads: heads)
        }
        switch hfName {
        case "model.embed_tokens.weight": return try found("token_embd.weight")
        case "model.norm.weight": return try found("output_norm.weight")
        case "lm_head.weight": return try found(contains("output.weight") ? "output.weight" : "token_embd.weight")
        default: break
        }
        let parts = hfName.split(separator: ".").map(String.init)
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]),
              parts.last == "weight" else {
            throw .tensorNotFound(path: path, tensor: hfName)
        }
        let block = "blk.\(layer)."
        let rest = parts[3 ..< parts.count - 1].joined(separator: ".")
        switch rest {
        case "input_layernorm": return try found(block + "attn_norm.weight")
        case "post_attention_layernorm": return try found(block + "ffn_norm.weight")
        case "self_attn.q_proj": return try found(block + "attn_q.weight", heads: hyperparameters.numHeads)
        case "self_attn.k_proj": return try found(block + "attn_k.weight", heads: hyperparameters.numKeyValueHeads)
        case "self_attn.v_proj": return try found(block + "attn_v.weight")
        case "self_attn.o_proj": return try found(block + "attn_output.weight")
        case "mlp.gate_proj": return try found(block + "ffn_gate.weight")
        case "mlp.up_proj": return try found(block + "ffn_up.weight")
        case "mlp.down_proj": return try found(block + "ffn_down.weight")
        case "block_sparse_moe.gate": return try found(block + "ffn_gate_inp.weight")
        default: break
        }
        // block_sparse_moe.experts.E.w1 (gate) / w3 (up) / w2 (down)
        if parts.count == 8, parts[3] == "block_sparse_moe", parts[4] == "experts", let expert = Int(parts[5]) {
            let kind: String
            switch parts[6] {
            case "w1": kind = "ffn_gate"
            case "w3": kind = "ffn_up"
            case "w2": kind = "ffn_down"
            default: throw .tensorNotFound(path: path, tensor: hfName)
            }
            let stacked = block + kind + "_exps.weight"
            if let info = tensors[stacked] {
                guard info.dimensions.count == 3, expert >= 0, expert < info.dimensions[2] else {
                    throw .unexpectedShape(path: path, tensor: stacked, dimensions: info.dimensions,
                                           expected: "3 dimensions with more than \(expert) experts")
                }
                return GGUFLlamaTensorLocation(name: stacked, expert: expert, ropePermutedHeads: nil)
            }
            return try found(block + kind + ".\(expert).weight")
        }
        throw .tensorNotFound(path: path, tensor: hfName)
    }

    /// The matrix of a Hugging Face tensor name, read in place (see `llamaLocation`). For q
    /// and k projections the rows are still in llama.cpp's interleaved RoPE order: check
    /// `llamaLocation(...).ropePermutedHeads`, and use `llamaMatrixUndoingRoPEPermutation`
    /// or permute the projection's output with `ggufRoPERow`.
    public func llamaMatrix(hfName: String, _ hyperparameters: GGUFLlamaHyperparameters) throws(GGUFError) -> WeightMatrix {
        let location = try llamaLocation(hfName: hfName, hyperparameters)
        if let expert = location.expert {
            return try matrices(location.name)[expert]
        }
        return try matrix(location.name)
    }

    /// A q or k projection with its rows put back in Hugging Face order (rows are whole
    /// blocks, so quantised rows are copied byte for byte, without requantising).
    public func llamaMatrixUndoingRoPEPermutation(hfName: String, _ hyperparameters: GGUFLlamaHyperparameters) throws(GGUFError) -> GGUFOwnedMatrix {
        let location = try llamaLocation(hfName: hfName, hyperparameters)
        let stored = try llamaMatrix(hfName: hfName, hyperparameters)
        guard let heads = location.ropePermutedHeads else { return GGUFOwnedMatrix(copying: stored) { $0 } }
        guard stored.rows % (2 * heads) == 0 else {
            throw .unexpectedShape(path: path, tensor: location.name, dimensions: try tensorInfo(location.name).dimensions,
                                   expected: "rows a multiple of 2 x \(heads) heads")
        }
        let headDim = stored.rows / heads
        return GGUFOwnedMatrix(copying: stored) { ggufRoPERow(hfRow: $0, headDim: headDim) }
    }
}

/// The GGUF row that holds Hugging Face row `hfRow` of a q or k projection. llama.cpp's
/// converter interleaves each head's two RoPE halves: HF row h*hd + c*hd/2 + j (c = 0, 1;
/// j < hd/2) is stored as row h*hd + 2j + c.
@inline(__always)
public func ggufRoPERow(hfRow: Int, headDim: Int) -> Int {
    let half = headDim / 2
    let head = hfRow / headDim, within = hfRow % headDim
    return head * headDim + 2 * (within % half) + within / half
}

/// A weight matrix in its own memory (for the few matrices that cannot be used in place).
public final class GGUFOwnedMatrix: @unchecked Sendable {
    public let matrix: WeightMatrix
    private let storage: UnsafeMutableRawPointer

    /// Copies `source` so that row r of the copy is row `sourceRow(r)` of `source`.
    init(copying source: WeightMatrix, sourceRow: (Int) -> Int) {
        storage = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(source.rows * source.rowBytes, 1), alignment: 64)
        for r in 0..<source.rows {
            (storage + r * source.rowBytes).copyMemory(from: source.row(sourceRow(r)), byteCount: source.rowBytes)
        }
        matrix = WeightMatrix(type: source.type, rows: source.rows, columns: source.columns, base: UnsafeRawPointer(storage))
    }

    deinit { storage.deallocate() }
}
