/// Finds and loads the tokenizer of a model folder or a single tokenizer file.
public enum TokenizerLoader {
    public static func load(path: String) throws -> any Tokenizer {
        throw TokenizerError.unsupported(file: path, feature: "tokenizers are not implemented yet; give the prompt as --ids")
    }
}
