import MixtralKernels

/// How to write a llama-architecture GGUF from a Hugging Face Llama/Mistral/Mixtral.
public struct GGUFLlamaExportOptions: Sendable {
    /// Type of the weight matrices (any `WeightType`; K-quants need rows that are
    /// multiples of 256). Norms and the MoE router stay F32, as llama.cpp keeps them.
    public var weightType: WeightType
    /// Type of `token_embd.weight`; `weightType` when nil.
    public var embeddingType: WeightType?
    /// Type of `output.weight`; `weightType` when nil.
    public var outputType: WeightType?
    /// `general.name`.
    public var name: String
    /// Further metadata written after the model's (tokenizer.ggml.*, tokenizer.chat_template, ...).
    public var extraMetadata: [(key: String, value: GGUFValue)]

    public init(weightType: WeightType, embeddingType: WeightType? = nil, outputType: WeightType? = nil,
                name: String, extraMetadata: [(key: String, value: GGUFValue)] = []) {
        self.weightType = weightType
        self.embeddingType = embeddingType
        self.outputType = outputType
        self.name = name
        self.extraMetadata = extraMetadata
    }
}

/// One GGUF tensor of the export and the Hugging Face tensors it is made of.
struct GGUFLlamaExportTensor {
    var description: GGUFTensorDescription
    /// HF tensors, each [rows, columns] row-major; several for stacked experts.
    var sources: [String]
    /// Rows per source and row length.
    var rows: Int
    var columns: Int
    /// Heads of a q/k projection to permute into llama.cpp's interleaved RoPE order.
    var ropeHeads: Int?
}

/// Writes `hyperparameters` and the Hugging Face tensors given by `tensor` (fp32 values,
/// row-major in the HF shape) as a llama-architecture GGUF laid out as llama.cpp's
/// convert_hf_to_gguf.py does: llama.cpp tensor names, q/k rows permuted to the
/// interleaved RoPE order, experts stacked into 3-D tensors, quantised row by row with
/// `quantizeRow` (the same bytes as llama-quantize without an importance matrix, which
/// gives every tensor the one type unless told otherwise: like `--pure`). Tensors are
/// requested one at a time; `progress` is told (tensors done, total).
public func writeLlamaGGUF(path: String, hyperparameters h: GGUFLlamaHyperparameters, options: GGUFLlamaExportOptions,
                           tensor: (String) throws -> [Float], progress: ((Int, Int) -> Void)? = nil) throws {
    for type in [options.weightType, options.embeddingType, options.outputType].compactMap({ $0 }) where type == .nf4 {
        throw GGUFError.unsupportedTensorType(path: path, tensor: "(all)", type: "NF4 is bitsandbytes' format and has no GGUF type")
    }
    let plan = try llamaExportPlan(h, options, path: path)
    let writer = try GGUFFileWriter(path: path, metadata: llamaExportMetadata(h, options),
                                    tensors: plan.map(\.description))
    for (index, item) in plan.enumerated() {
        let type = item.description.type.weightType ?? .f32
        let rowBytes = type.byteCount(elements: item.columns) ?? 0
        var encoded = [UInt8](repeating: 0, count: item.rows * rowBytes)
        for source in item.sources {
            let values = try tensor(source)
            guard values.count == item.rows * item.columns else {
                throw GGUFError.invalidTensorInfo(path: path, tensor: source,
                                                  reason: "\(values.count) values given, expected \(item.rows) x \(item.columns)")
            }
            try values.withUnsafeBufferPointer { (src: UnsafeBufferPointer<Float>) throws in
                try encoded.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) throws in
                    guard let input = src.baseAddress, let output = dst.baseAddress else { return }
                    for hfRow in 0..<item.rows {
                        let row = item.ropeHeads.map { ggufRoPERow(hfRow: hfRow, headDim: item.rows / $0) } ?? hfRow
                        try quantizeRow(type, input + hfRow * item.columns, output + row * rowBytes, count: item.columns)
                    }
                }
            }
            try encoded.withUnsafeBytes { try writer.writeTensorChunk($0) }
        }
        progress?(index + 1, plan.count)
    }
    try writer.finish()
}

/// The model's metadata, with the keys and types llama.cpp's converter writes.
func llamaExportMetadata(_ h: GGUFLlamaHyperparameters, _ options: GGUFLlamaExportOptions) -> [(key: String, value: GGUFValue)] {
    var m: [(key: String, value: GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("general.name", .string(options.name)),
        ("llama.block_count", .uint32(UInt32(h.numLayers))),
        ("llama.context_length", .uint32(UInt32(h.contextLength))),
        ("llama.embedding_length", .uint32(UInt32(h.hiddenSize))),
        ("llama.feed_forward_length", .uint32(UInt32(h.intermediateSize))),
        ("llama.attention.head_count", .uint32(UInt32(h.numHeads))),
        ("llama.attention.head_count_kv", .uint32(UInt32(h.numKeyValueHeads))),
        ("llama.rope.freq_base", .float32(h.ropeTheta)),
        ("llama.attention.layer_norm_rms_epsilon", .float32(h.rmsNormEps)),
    ]
    if h.isMoE {
        m.append(("llama.expert_count", .uint32(UInt32(h.numExperts))))
        m.append(("llama.expert_used_count", .uint32(UInt32(h.numExpertsPerToken))))
    }
    m.append(("llama.attention.key_length", .uint32(UInt32(h.headDim))))
    m.append(("llama.attention.value_length", .uint32(UInt32(h.headDim))))
    if let type = h.ropeScalingType {
        m.append(("llama.rope.scaling.type", .string(type)))
        if let factor = h.ropeScalingFactor { m.append(("llama.rope.scaling.factor", .float32(factor))) }
    }
    m.append(("general.file_type", .uint32(llamaFileType(options.weightType))))
    m.append(("llama.vocab_size", .uint32(UInt32(h.vocabSize))))
    m.append(("llama.rope.dimension_count", .uint32(UInt32(h.ropeDimensionCount))))
    m.append(("general.quantization_version", .uint32(2)))
    return m + options.extraMetadata
}

/// llama.cpp's `llama_ftype` for a file whose weights are mostly `type`.
func llamaFileType(_ type: WeightType) -> UInt32 {
    switch type {
    case .f32: return 0
    case .f16: return 1
    case .q4_0: return 2
    case .q4_1: return 3
    case .q8_0: return 7
    case .q5_0: return 8
    case .q5_1: return 9
    case .q4_K: return 15  // Q4_K_M
    case .q5_K: return 17  // Q5_K_M
    case .q6_K: return 18
    case .bf16: return 32
    case .nf4: return 0  // never written (writeLlamaGGUF refuses NF4)
    }
}

/// The tensors to write, in llama.cpp's names, with their HF sources.
func llamaExportPlan(_ h: GGUFLlamaHyperparameters, _ options: GGUFLlamaExportOptions, path: String) throws(GGUFError) -> [GGUFLlamaExportTensor] {
    for type in [options.weightType, options.embeddingType, options.outputType].compactMap({ $0 })
    where !quantizableWeightTypes.contains(type) {
        throw .unsupportedTensorType(path: path, tensor: "(export)", type: type.rawValue)
    }
    var plan: [GGUFLlamaExportTensor] = []
    func add(_ name: String, _ type: WeightType, rows: Int, columns: Int, stack: Int? = nil,
             sources: [String], ropeHeads: Int? = nil) throws(GGUFError) {
        let dimensions = [columns, rows] + (stack.map { [$0] } ?? [])
        let description = GGUFTensorDescription(name: name, type: type, dimensions: rows == 1 && stack == nil ? [columns] : dimensions)
        guard description.byteCount != nil else {
            throw .invalidTensorInfo(path: path, tensor: name,
                                     reason: "rows of \(columns) are not whole \(type.rawValue) blocks of \(type.blockSize)")
        }
        plan.append(GGUFLlamaExportTensor(description: description, sources: sources, rows: rows,
                                          columns: columns, ropeHeads: ropeHeads))
    }
    let w = options.weightType
    let hidden = h.hiddenSize, qRows = h.numHeads * h.headDim, kvRows = h.numKeyValueHeads * h.headDim
    try add("token_embd.weight", options.embeddingType ?? w, rows: h.vocabSize, columns: hidden,
            sources: ["model.embed_tokens.weight"])
    for layer in 0..<h.numLayers {
        let hf = "model.layers.\(layer).", blk = "blk.\(layer)."
        try add(blk + "attn_norm.weight", .f32, rows: 1, columns: hidden, sources: [hf + "input_layernorm.weight"])
        try add(blk + "attn_q.weight", w, rows: qRows, columns: hidden, sources: [hf + "self_attn.q_proj.weight"],
                ropeHeads: h.numHeads)
        try add(blk + "attn_k.weight", w, rows: kvRows, columns: hidden, sources: [hf + "self_attn.k_proj.weight"],
                ropeHeads: h.numKeyValueHeads)
        try add(blk + "attn_v.weight", w, rows: kvRows, columns: hidden, sources: [hf + "self_attn.v_proj.weight"])
        try add(blk + "attn_output.weight", w, rows: hidden, columns: qRows, sources: [hf + "self_attn.o_proj.weight"])
        try add(blk + "ffn_norm.weight", .f32, rows: 1, columns: hidden, sources: [hf + "post_attention_layernorm.weight"])
        let i = h.intermediateSize
        if h.isMoE {
            let moe = hf + "block_sparse_moe."
            let experts = 0..<h.numExperts
            try add(blk + "ffn_gate_inp.weight", .f32, rows: h.numExperts, columns: hidden, sources: [moe + "gate.weight"])
            try add(blk + "ffn_gate_exps.weight", w, rows: i, columns: hidden, stack: h.numExperts,
                    sources: experts.map { moe + "experts.\($0).w1.weight" })
            try add(blk + "ffn_up_exps.weight", w, rows: i, columns: hidden, stack: h.numExperts,
                    sources: experts.map { moe + "experts.\($0).w3.weight" })
            try add(blk + "ffn_down_exps.weight", w, rows: hidden, columns: i, stack: h.numExperts,
                    sources: experts.map { moe + "experts.\($0).w2.weight" })
        } else {
            try add(blk + "ffn_gate.weight", w, rows: i, columns: hidden, sources: [hf + "mlp.gate_proj.weight"])
            try add(blk + "ffn_up.weight", w, rows: i, columns: hidden, sources: [hf + "mlp.up_proj.weight"])
            try add(blk + "ffn_down.weight", w, rows: hidden, columns: i, sources: [hf + "mlp.down_proj.weight"])
        }
    }
    try add("output_norm.weight", .f32, rows: 1, columns: hidden, sources: ["model.norm.weight"])
    if !h.tieWordEmbeddings {
        try add("output.weight", options.outputType ?? w, rows: h.vocabSize, columns: hidden, sources: ["lm_head.weight"])
    }
    return plan
}
