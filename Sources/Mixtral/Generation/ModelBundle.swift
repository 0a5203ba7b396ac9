import Foundation

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
        let hasTokenizer = ["tokenizer.json", "tokenizer.model"].contains {
            FileManager.default.fileExists(atPath: path + "/" + $0)
        }
        let tokenizer = hasTokenizer ? try loadTokenizer(path: path) : nil
        let defaults = try GenerationOptions.defaults(folder: path, config: model.config)
        return ModelBundle(path: path, model: model, loadedTokenizer: tokenizer, defaults: defaults)
    }

    /// The tokenizer of a model folder or a single tokenizer file.
    public static func loadTokenizer(path: String) throws -> LoadedTokenizer {
        try TokenizerLoader.loadWithConfiguration(path: path)
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
