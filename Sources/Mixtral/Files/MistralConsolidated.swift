import Foundation

/// Mistral's original checkpoint layout (params.json + consolidated*.safetensors) to a
/// Hugging Face folder, as the model card's convert.py does: tensors renamed to HF names,
/// and q/k rows permuted from Mistral's interleaved-pair RoPE layout to HF's half-split
/// layout (within a head, row 2j+c becomes row c*(head_dim/2)+j; v is not permuted).
public enum MistralConsolidatedConverter {
    public static func convert(from source: String, to destination: String,
                               progress: (String) -> Void = { _ in }) throws {
        let paramsPath = source + "/params.json"
        let fields = JSONFields(try readJSONObject(paramsPath), file: paramsPath)
        let dim = try fields.positiveInt("dim")
        let layers = try fields.positiveInt("n_layers")
        let heads = try fields.positiveInt("n_heads")
        let kvHeads = try fields.optionalPositiveInt("n_kv_heads") ?? heads
        let headDim = try fields.optionalPositiveInt("head_dim") ?? dim / heads
        let hidden = try fields.positiveInt("hidden_dim")
        let vocab = try fields.positiveInt("vocab_size")
        let moe = try fields.optionalObject("moe").map { JSONFields($0, file: paramsPath) }
        let experts = try moe?.positiveInt("num_experts")
        let expertsPerToken = try moe?.positiveInt("num_experts_per_tok")

        // Refuse to write into a folder that already holds a model: nothing the user has is
        // overwritten.
        for file in ["config.json", "model.safetensors"] where FileManager.default.fileExists(atPath: destination + "/" + file) {
            throw CheckpointError.unreadable(file: destination + "/" + file, reason: "already exists; choose an empty output folder")
        }
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)

        let shardNames = try FileManager.default.contentsOfDirectory(atPath: source)
            .filter { $0.hasPrefix("consolidated") && $0.hasSuffix(".safetensors") }.sorted()
        guard !shardNames.isEmpty else { throw CheckpointError.fileNotFound(source + "/consolidated*.safetensors") }
        var files: [String: SafeTensorsFile] = [:]
        for name in shardNames {
            let file = try SafeTensorsFile(path: source + "/" + name)
            for tensor in file.tensorNames { files[tensor] = file }
        }
        func tensor(_ name: String) throws -> TensorView {
            guard let file = files[name] else { throw CheckpointError.missingTensor(file: source, tensor: name) }
            return try file.tensor(name)
        }

        var plan: [(hf: String, mistral: String, permuteHeads: Int?)] = [
            ("model.embed_tokens.weight", "tok_embeddings.weight", nil),
            ("model.norm.weight", "norm.weight", nil),
            ("lm_head.weight", "output.weight", nil),
        ]
        for n in 0..<layers {
            let (hf, mistral) = ("model.layers.\(n)", "layers.\(n)")
            plan += [
                ("\(hf).input_layernorm.weight", "\(mistral).attention_norm.weight", nil),
                ("\(hf).post_attention_layernorm.weight", "\(mistral).ffn_norm.weight", nil),
                ("\(hf).self_attn.q_proj.weight", "\(mistral).attention.wq.weight", heads),
                ("\(hf).self_attn.k_proj.weight", "\(mistral).attention.wk.weight", kvHeads),
                ("\(hf).self_attn.v_proj.weight", "\(mistral).attention.wv.weight", nil),
                ("\(hf).self_attn.o_proj.weight", "\(mistral).attention.wo.weight", nil),
            ]
            if let experts {
                plan.append(("\(hf).block_sparse_moe.gate.weight", "\(mistral).feed_forward.gate.weight", nil))
                for e in 0..<experts {
                    for w in ["w1", "w2", "w3"] {
                        plan.append(("\(hf).block_sparse_moe.experts.\(e).\(w).weight", "\(mistral).feed_forward.experts.\(e).\(w).weight", nil))
                    }
                }
            } else {
                for (hfName, mistralName) in [("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3")] {
                    plan.append(("\(hf).mlp.\(hfName).weight", "\(mistral).feed_forward.\(mistralName).weight", nil))
                }
            }
        }
        var entries: [SafeTensorsWriter.Entry] = []
        var dtype = "BF16"
        for item in plan {
            let view = try tensor(item.mistral)
            dtype = view.type.rawValue
            let byteCount = view.type.byteCount(elements: view.elementCount) ?? 0
            let rowBytes = view.shape.count == 2 ? byteCount / max(1, view.shape[0]) : byteCount
            if let permuteHeads = item.permuteHeads {
                guard view.shape.count == 2, view.shape[0] == permuteHeads * headDim else {
                    throw CheckpointError.shapeMismatch(file: view.file, tensor: item.mistral, expected: [permuteHeads * headDim, dim], found: view.shape)
                }
            }
            entries.append(.init(name: item.hf, dtype: view.type.rawValue, shape: view.shape, byteCount: byteCount) { sink in
                guard let permuteHeads = item.permuteHeads else {
                    try sink(UnsafeRawBufferPointer(start: view.data, count: byteCount))
                    return
                }
                let half = headDim / 2
                for head in 0..<permuteHeads {
                    for c in 0..<2 {
                        for j in 0..<half {
                            let source = head * headDim + 2 * j + c
                            try sink(UnsafeRawBufferPointer(start: view.data + source * rowBytes, count: rowBytes))
                        }
                    }
                }
            })
        }
        progress("writing \(destination)/model.safetensors (\(entries.count) tensors)")
        try SafeTensorsWriter.write(entries, to: destination + "/model.safetensors")

        var config: [String: Any] = [
            "architectures": [experts == nil ? "MistralForCausalLM" : "MixtralForCausalLM"],
            "model_type": experts == nil ? "mistral" : "mixtral",
            "hidden_size": dim, "intermediate_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kvHeads, "head_dim": headDim,
            "vocab_size": vocab, "rms_norm_eps": try fields.optionalNumber("norm_eps") ?? 1e-5,
            "rope_theta": try fields.optionalNumber("rope_theta") ?? 1e6,
            "max_position_embeddings": try fields.optionalPositiveInt("max_position_embeddings") ?? 65536,
            "sliding_window": try fields.optionalPositiveInt("sliding_window") as Any? ?? NSNull(),
            "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
            "torch_dtype": dtype == "BF16" ? "bfloat16" : (dtype == "F16" ? "float16" : "float32"),
        ]
        if let experts, let expertsPerToken {
            config["num_local_experts"] = experts
            config["num_experts_per_tok"] = expertsPerToken
        }
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: destination + "/config.json"), options: .atomic)
        for tokenizer in ["tokenizer.model", "tokenizer.json", "tokenizer_config.json"]
        where FileManager.default.fileExists(atPath: source + "/" + tokenizer) {
            try FileManager.default.copyItem(atPath: source + "/" + tokenizer, toPath: destination + "/" + tokenizer)
        }
    }
}
