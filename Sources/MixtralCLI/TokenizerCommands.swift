import ArgumentParser
import Foundation
import Mixtral

/// A tokenizer from a model folder or a single tokenizer file.
struct TokenizerOptions: ParsableArguments {
    @Option(name: .long, help: "Model folder, or a tokenizer file (tokenizer.json, tokenizer.model, *.model.v3).")
    var model: String

    func load() throws -> LoadedTokenizer {
        try ModelBundle.loadTokenizer(path: model)
    }
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text as a JSON array (like tokenizer(text).input_ids).")

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(name: .long, help: "Text to tokenize.")
    var text: String?
    @Option(name: .long, help: "File whose UTF-8 contents to tokenize.")
    var file: String?
    @Flag(name: .long, help: "Add no special tokens (no BOS/EOS).")
    var noSpecial = false

    func run() throws {
        let input: String
        switch (text, file) {
        case (let text?, nil):
            input = text
        case (nil, let file?):
            guard let data = try readRegularFile(file) else { throw CLIError("no such file: \(file)") }
            guard let decoded = String(data: data, encoding: .utf8) else { throw CLIError("\(file) is not valid UTF-8") }
            input = decoded
        default:
            throw CLIError("give exactly one of --text TEXT or --file FILE")
        }
        let tokenizer = try tokenizerOptions.load().tokenizer
        let ids = try tokenizer.encode(input, addSpecialTokens: !noSpecial)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
        // The ids are the tokenizer's, as tokenizer(text).input_ids prints them; a tokenizer
        // may know more tokens than the model's embedding has rows, so say which the model
        // would refuse.
        if let vocabulary = try modelVocabularySize(), let first = ids.first(where: { $0 >= vocabulary }) {
            let count = ids.filter { $0 >= vocabulary }.count
            log("warning: \(count) id(s), the first \(first), are outside the model's vocabulary "
                + "(vocab_size \(vocabulary) in config.json); generate and score refuse them")
        }
    }

    /// The model's vocabulary size, when --model is a folder with a config.json (a GGUF
    /// file's vocabulary is its tokenizer's).
    func modelVocabularySize() throws -> Int? {
        let config = tokenizerOptions.model + "/config.json"
        guard FileManager.default.fileExists(atPath: config) else { return nil }
        return try ModelConfig.load(path: config).vocabSize
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Print the text of comma-separated token ids (like tokenizer.decode(ids)).")

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(name: .long, help: "Token ids, e.g. 1,2,3.")
    var ids: String
    @Flag(name: .long, help: "Drop special tokens (skip_special_tokens=True).")
    var skipSpecial = false

    func run() throws {
        let tokenizer = try tokenizerOptions.load().tokenizer
        let list = try parseIDs(ids)
        try tokenizer.validate(ids: list)
        print(tokenizer.decode(list, skipSpecialTokens: skipSpecial))
    }
}
