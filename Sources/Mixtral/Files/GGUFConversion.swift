import Foundation
import MixtralKernels
import MixtralTokenizers

/// Writes a model (a Hugging Face folder or a GGUF file) as a llama.cpp-compatible GGUF
/// file with its weights in `type`: `mixtral quantize` and `mixtral convert` to GGUF.
public enum GGUFConversion {
    /// Types a GGUF can be written with (the exporter's quantizers are llama.cpp's).
    public static let writableTypes: [WeightType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_K, .q5_K, .q6_K]

    public static func write(input: String, output: String, type: WeightType,
                             progress: @escaping (Int, Int) -> Void = { _, _ in }) throws {
        guard writableTypes.contains(type) else {
            throw CheckpointError.invalidConfig(file: output, reason: "\(type.rawValue) cannot be written to GGUF (choose one of \(writableTypes.map(\.rawValue).joined(separator: ", ")))")
        }
        guard !FileManager.default.fileExists(atPath: output) else {
            throw CheckpointError.unreadable(file: output, reason: "already exists; choose a new output file")
        }
        let store: any WeightStore
        let hyperparameters: GGUFLlamaHyperparameters
        var metadata: [(key: String, value: GGUFValue)]
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else { throw CheckpointError.fileNotFound(input) }
        if isFolder.boolValue {
            let config = try ModelConfig.load(path: input + "/config.json")
            if config.slidingWindow != nil {
                throw CheckpointError.invalidConfig(file: input + "/config.json",
                                                    reason: "a sliding window has no llama.cpp llama-architecture equivalent")
            }
            store = try SafeTensorsCheckpoint(folder: input)
            hyperparameters = GGUFLlamaHyperparameters(
                vocabSize: config.vocabSize, hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize,
                numLayers: config.numLayers, numHeads: config.numHeads, numKeyValueHeads: config.numKeyValueHeads,
                headDim: config.headDim, rmsNormEps: config.rmsNormEps, ropeTheta: config.ropeTheta,
                contextLength: config.maxPositionEmbeddings, numExperts: config.numExperts,
                numExpertsPerToken: config.numExpertsPerToken,
                tieWordEmbeddings: config.tieWordEmbeddings && !store.contains("lm_head.weight"))
            metadata = try sentencePieceVocabulary(folder: input, config: config)
        } else {
            let gguf = try GGUFWeightStore(path: input)
            store = gguf
            hyperparameters = gguf.hyperparameters
            metadata = gguf.file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.compactMap { key in
                gguf.file.metadata[key].map { (key: key, value: $0) }
            }
        }
        let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
        let partial = output + ".partial"
        do {
            try writeLlamaGGUF(path: partial, hyperparameters: hyperparameters,
                               options: GGUFLlamaExportOptions(weightType: type, name: name, extraMetadata: metadata),
                               tensor: { try floats(store.tensor($0)) }, progress: progress)
            try FileManager.default.moveItem(atPath: partial, toPath: output)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    static func floats(_ view: TensorView) -> [Float] {
        let count = view.elementCount
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { dequantizeRow(view.type, view.data, base, count: count) }
            initialized = count
        }
    }

    /// llama.cpp's "llama" vocabulary keys from the folder's tokenizer.model (SentencePiece):
    /// pieces, scores and piece types (the same numbering), special ids.
    static func sentencePieceVocabulary(folder: String, config: ModelConfig) throws -> [(key: String, value: GGUFValue)] {
        let path = folder + "/tokenizer.model"
        guard let data = try readRegularFile(path) else {
            throw CheckpointError.fileNotFound(path + " (a GGUF file needs the SentencePiece vocabulary)")
        }
        let model = try SentencePieceModel(data: data, file: path)
        func index(_ piece: String) -> Int? { model.pieces.firstIndex { $0.text == piece } }
        var keys: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(elementType: .string, values: model.pieces.map { .string($0.text) })),
            ("tokenizer.ggml.scores", .array(elementType: .float32, values: model.pieces.map { .float32($0.score) })),
            ("tokenizer.ggml.token_type", .array(elementType: .int32, values: model.pieces.map { .int32($0.type.rawValue) })),
            ("tokenizer.ggml.add_bos_token", .bool(true)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
        ]
        if let bos = config.bosTokenID ?? index(model.bosPiece) { keys.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = config.eosTokenIDs.first ?? index(model.eosPiece) { keys.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let unk = index(model.unkPiece) { keys.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unk)))) }
        return keys
    }
}
