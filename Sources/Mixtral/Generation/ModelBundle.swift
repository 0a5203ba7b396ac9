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
    /// `streaming` keeps the weights within a RAM budget by reading experts from the file
    /// on demand (`ExpertStreamer`); the files are then mapped, whatever `residency` says.
    /// With a `communicator` of several ranks the model keeps only this rank's slices
    /// (`TensorParallel`); the files are then mapped too, so that the other ranks' parts
    /// never take this process's memory.
    public static func load(path: String, threads: Int? = nil, quantize: WeightType? = nil,
                            residency: WeightResidency = .automatic, precision: PrecisionChoice = .auto,
                            streaming: ExpertStreamingOptions? = nil,
                            communicator: any Communicator = SingleProcessCommunicator(),
                            progress: @escaping (Int, Int) -> Void = { _, _ in }) throws -> ModelBundle {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw CheckpointError.fileNotFound(path)
        }
        if streaming != nil, quantize != nil {
            throw CheckpointError.streamingUnavailable(
                reason: "--quantize converts every expert in memory; stream a file stored in the wanted type instead")
        }
        let residency = streaming == nil && communicator.size == 1 ? residency : .mapped
        let pool = ComputePool(threadCount: threads ?? ComputePool.defaultThreadCount())
        guard isFolder.boolValue else {
            // A FIFO or device would block or stream forever; only regular files are models.
            guard isRegularFile(path) else { throw CheckpointError.unreadable(file: path, reason: "not a regular file or folder") }
            guard isGGUF(path) else {
                throw CheckpointError.unreadable(file: path, reason: "expected a model folder (config.json, *.safetensors) or a GGUF file")
            }
            let gguf = try GGUFWeightStore(path: path, residency: residency)
            let store: any WeightStore = try quantize.map { try QuantizingWeightStore(base: gguf, type: $0, pool: pool, progress: progress) } ?? gguf
            let model = try LanguageModel(config: gguf.config, store: store, pool: pool, precision: precision, streaming: streaming,
                                          communicator: communicator)
            var defaults = GenerationOptions()
            defaults.eosTokenIDs = model.config.eosTokenIDs
            return ModelBundle(path: path, model: model, loadedTokenizer: try gguf.file.loadTokenizer(), defaults: defaults)
        }
        let checkpoint = try SafeTensorsCheckpoint(folder: path, residency: residency)
        let store: any WeightStore = try quantize.map { try QuantizingWeightStore(base: checkpoint, type: $0, pool: pool, progress: progress) } ?? checkpoint
        let model = try LanguageModel(config: try ModelConfig.load(path: path + "/config.json"), store: store, pool: pool,
                                      precision: precision, streaming: streaming, communicator: communicator)
        let hasTokenizer = ["tokenizer.json", "tokenizer.model"].contains {
            FileManager.default.fileExists(atPath: path + "/" + $0)
        }
        let tokenizer = hasTokenizer ? try loadTokenizer(path: path) : nil
        let defaults = try GenerationOptions.defaults(folder: path, config: model.config)
        return ModelBundle(path: path, model: model, loadedTokenizer: tokenizer, defaults: defaults)
    }

    /// Bytes of a model's weight files: a GGUF file (with its split parts) or a folder's
    /// safetensors files.
    public static func weightFileBytes(path: String) -> Int {
        let manager = FileManager.default
        func size(_ file: String) -> Int { (try? manager.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isFolder) else { return 0 }
        if !isFolder.boolValue {
            // A split GGUF model (NAME-00001-of-0000N.gguf): the parts beside the first.
            guard let match = path.firstMatch(of: /-00001-of-(\d{5})\.gguf$/), let count = Int(match.1), count > 1 else {
                return size(path)
            }
            return GGUFFile.partPaths(prefix: String(path[..<match.range.lowerBound]), count: count).reduce(0) { $0 + size($1) }
        }
        let files = (try? manager.contentsOfDirectory(atPath: path)) ?? []
        return files.filter { $0.hasSuffix(".safetensors") }.reduce(0) { $0 + size(path + "/" + $1) }
    }

    /// Expert streaming for a model whose weights do not fit in the memory available now
    /// (more than 90% of it): a budget of 75% of that memory, the rest left for the KV
    /// cache, activations and the system. nil when the weights fit (or where available
    /// memory cannot be read).
    public static func automaticStreaming(path: String) -> ExpertStreamingOptions? {
        let available = availableMemory()
        guard available > 0, Double(weightFileBytes(path: path)) > 0.9 * Double(available) else { return nil }
        return ExpertStreamingOptions(ramBudget: available / 4 * 3)
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
