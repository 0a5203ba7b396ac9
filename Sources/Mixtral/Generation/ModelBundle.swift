import Foundation
import MixtralKernels

/// Everything `mixtral` needs from a model path: the model, its tokenizer (when the folder
/// has one) and its generation defaults.
public struct ModelBundle: Sendable {
    public let path: String
    public let model: LanguageModel
    /// The tokenizer with its configuration (special tokens, chat template), when the
    /// folder has tokenizer files.
    public let loadedTokenizer: LoadedTokenizer?
    public let defaults: GenerationOptions

    public var tokenizer: (any Tokenizer)? { loadedTokenizer?.tokenizer }

    /// Loads a Hugging Face model folder (config.json, safetensors, tokenizer files) or a
    /// GGUF file (weights, hyper-parameters and tokenizer in one file).
    /// `quantize` converts the linear layers at load (see QuantizingWeightStore);
    /// `progress(done, total)` follows it. `residency` says whether weight files are read
    /// into (huge-page) memory or mapped. `precision` is the command line's: by default
    /// llama.cpp's arithmetic for quantised matrices, transformers' fp32 otherwise.
    public static func load(path: String, threads: Int? = nil, quantize: WeightType? = nil,
                            residency: WeightResidency = .automatic, precision: PrecisionChoice = .auto,
                            progress: @escaping (Int, Int) -> Void = { _, _ in }) throws -> ModelBundle {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw CheckpointError.fileNotFound(path)
        }
        let pool = ComputePool(threadCount: threads ?? ComputePool.defaultThreadCount())
        guard isFolder.boolValue else {
            // A FIFO or device would block or stream forever; only regular files are models.
            guard isRegularFile(path) else { throw CheckpointError.unreadable(file: path, reason: "not a regular file or folder") }
            guard isGGUF(path) else {
                throw CheckpointError.unreadable(file: path, reason: "expected a model folder (config.json, *.safetensors) or a GGUF file")
            }
            let gguf = try GGUFWeightStore(path: path, residency: residency)
            let store: any WeightStore = try quantize.map { try QuantizingWeightStore(base: gguf, type: $0, pool: pool, progress: progress) } ?? gguf
            let model = try LanguageModel(config: gguf.config, store: store, pool: pool, precision: precision)
            var defaults = GenerationOptions()
            defaults.eosTokenIDs = model.config.eosTokenIDs
            return ModelBundle(path: path, model: model, loadedTokenizer: try gguf.file.loadTokenizer(), defaults: defaults)
        }
        let checkpoint = try SafeTensorsCheckpoint(folder: path, residency: residency)
        let store: any WeightStore = try quantize.map { try QuantizingWeightStore(base: checkpoint, type: $0, pool: pool, progress: progress) } ?? checkpoint
        let model = try LanguageModel(config: try ModelConfig.load(path: path + "/config.json"), store: store, pool: pool,
                                      precision: precision)
        let hasTokenizer = ["tokenizer.json", "tokenizer.model"].contains {
            FileManager.default.fileExists(atPath: path + "/" + $0)
        }
        let tokenizer = hasTokenizer ? try loadTokenizer(path: path) : nil
        let defaults = try GenerationOptions.defaults(folder: path, config: model.config)
        return ModelBundle(path: path, model: model, loadedTokenizer: tokenizer, defaults: defaults)
    }

    /// The tokenizer of a model folder, a single tokenizer file or a GGUF file.
    public static func loadTokenizer(path: String) throws -> LoadedTokenizer {
        if isGGUF(path) { return try GGUFFile(path: path).loadTokenizer() }
        return try TokenizerLoader.loadWithConfiguration(path: path)
    }

    static func isRegularFile(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular
    }

    /// Whether `path` is a regular file starting with GGUF's magic.
    static func isGGUF(_ path: String) -> Bool {
        guard isRegularFile(path) else { return false }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    /// The chat formatting of the model: its chat template, else mistral-common's
    /// instruct encoding.
    public func chatEncoder() throws -> ChatEncoder {
        guard let loadedTokenizer else {
            throw CheckpointError.unreadable(file: path, reason: "no tokenizer files, so no chat formatting")
        }
        return try ChatEncoder(loaded: loadedTokenizer)
    }
}
