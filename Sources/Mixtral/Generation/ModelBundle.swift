import Foundation

/// Everything `mixtral` needs from a model path: the model, its tokenizer (when the folder
/// has one) and its generation defaults.
public struct ModelBundle: Sendable {
    public let path: String
    public let model: LanguageModel
    public let tokenizer: (any Tokenizer)?
    public let defaults: GenerationOptions

    /// Loads a Hugging Face model folder (config.json, safetensors, tokenizer files).
    public static func load(path: String, threads: Int? = nil) throws -> ModelBundle {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw CheckpointError.fileNotFound(path)
        }
        guard isFolder.boolValue else {
            throw CheckpointError.unreadable(file: path, reason: "expected a model folder with config.json and *.safetensors")
        }
        let model = try LanguageModel(folder: path, threads: threads)
        let tokenizer = try loadTokenizer(folder: path)
        let defaults = try GenerationOptions.defaults(folder: path, config: model.config)
        return ModelBundle(path: path, model: model, tokenizer: tokenizer, defaults: defaults)
    }

    /// The folder's tokenizer, or nil when it has no tokenizer files.
    static func loadTokenizer(folder: String) throws -> (any Tokenizer)? {
        let candidates = ["tokenizer.json", "tokenizer.model"]
        guard candidates.contains(where: { FileManager.default.fileExists(atPath: folder + "/" + $0) }) else { return nil }
        return try TokenizerLoader.load(path: folder)
    }
}
