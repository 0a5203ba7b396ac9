import Foundation

/// What tokenizer_config.json (and chat_template.jinja / chat_template.json) say.
public struct TokenizerConfiguration: Sendable, Equatable {
    public var addBOSToken: Bool?
    public var addEOSToken: Bool?
    public var bosToken: String?
    public var eosToken: String?
    public var unkToken: String?
    public var padToken: String?
    /// The default chat template (Jinja), if any.
    public var chatTemplate: String?
    /// Named templates (tokenizer_config.json's list form, e.g. "tool_use").
    public var namedChatTemplates: [String: String]

    public init(addBOSToken: Bool? = nil, addEOSToken: Bool? = nil, bosToken: String? = nil, eosToken: String? = nil,
                unkToken: String? = nil, padToken: String? = nil, chatTemplate: String? = nil,
                namedChatTemplates: [String: String] = [:]) {
        self.addBOSToken = addBOSToken
        self.addEOSToken = addEOSToken
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.unkToken = unkToken
        self.padToken = padToken
        self.chatTemplate = chatTemplate
        self.namedChatTemplates = namedChatTemplates
    }

    /// Reads tokenizer_config.json from `folder` (missing file = empty configuration), then
    /// chat_template.jinja (transformers 5 writes the template there) or chat_template.json.
    public static func load(folder: String) throws -> TokenizerConfiguration {
        var configuration = TokenizerConfiguration()
        let configPath = folder + "/tokenizer_config.json"
        if let data = try readTokenizerFile(configPath) {
            let json: JSONValue
            do { json = try JSONValue.parse([UInt8](data)) } catch {
                throw TokenizerError.malformed(file: configPath, reason: "invalid JSON: \(error)")
            }
            configuration.addBOSToken = json["add_bos_token"]?.boolValue
            configuration.addEOSToken = json["add_eos_token"]?.boolValue
            configuration.bosToken = tokenText(json["bos_token"])
            configuration.eosToken = tokenText(json["eos_token"])
            configuration.unkToken = tokenText(json["unk_token"])
            configuration.padToken = tokenText(json["pad_token"])
            if let template = json["chat_template"] {
                configuration.absorbChatTemplate(template)
            }
        }
        if let data = try readTokenizerFile(folder + "/chat_template.jinja") {
            configuration.chatTemplate = String(decoding: data, as: UTF8.self)
        } else if let data = try readTokenizerFile(folder + "/chat_template.json"),
                  let json = try? JSONValue.parse([UInt8](data)), let template = json["chat_template"] {
            configuration.absorbChatTemplate(template)
        }
        return configuration
    }

    private mutating func absorbChatTemplate(_ template: JSONValue) {
        if let text = template.stringValue {
            chatTemplate = text
        } else if let list = template.arrayValue {
            for entry in list {
                guard let name = entry["name"]?.stringValue, let text = entry["template"]?.stringValue else { continue }
                namedChatTemplates[name] = text
                if name == "default" { chatTemplate = text }
            }
        }
    }

    /// A special token is either "<s>" or {"content": "<s>", ...}.
    private static func tokenText(_ json: JSONValue?) -> String? {
        json?.stringValue ?? json?["content"]?.stringValue
    }
}

/// A loaded tokenizer and its configuration (chat template, special token names).
public struct LoadedTokenizer: Sendable {
    public let tokenizer: any Tokenizer
    public let configuration: TokenizerConfiguration
    /// The file the tokenizer was read from.
    public let file: String

    public init(tokenizer: any Tokenizer, configuration: TokenizerConfiguration, file: String) {
        self.tokenizer = tokenizer
        self.configuration = configuration
        self.file = file
    }
}

/// Finds and loads tokenizers.
///
/// Folder precedence (the same as transformers' AutoTokenizer): `tokenizer.json` when present
/// (Hugging Face `tokenizers` semantics); otherwise `tokenizer.model` (SentencePiece semantics,
/// identical to the `sentencepiece` library); otherwise a mistral-common file named
/// `tokenizer.model.v*` / `*.model.v*`. tokenizer_config.json next to it supplies bos/eos names,
/// add_bos_token / add_eos_token (applied to tokenizer.model only: for tokenizer.json the
/// post-processor decides, as in `tokenizers` and transformers 5) and the chat template.
///
/// Special tokens for a bare tokenizer.model: `encode(_, addSpecialTokens: true)` adds BOS and no
/// EOS (what sentencepiece users, mistral-common and llama.cpp do for Mixtral), unless
/// tokenizer_config.json says otherwise.
public enum TokenizerLoader {
    public static func load(path: String) throws -> any Tokenizer {
        try loadWithConfiguration(path: path).tokenizer
    }

    public static func loadWithConfiguration(path: String) throws -> LoadedTokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.fileNotFound(path)
        }
        let folder: String
        let file: String
        if isDirectory.boolValue {
            folder = path
            file = try tokenizerFile(inFolder: path)
        } else {
            folder = (path as NSString).deletingLastPathComponent
            file = path
        }
        let configuration = try TokenizerConfiguration.load(folder: folder.isEmpty ? "." : folder)
        return LoadedTokenizer(tokenizer: try loadFile(file, configuration: configuration),
                               configuration: configuration, file: file)
    }

    static func tokenizerFile(inFolder folder: String) throws -> String {
        let manager = FileManager.default
        for name in ["tokenizer.json", "tokenizer.model"] where manager.fileExists(atPath: folder + "/" + name) {
            return folder + "/" + name
        }
        let names = (try? manager.contentsOfDirectory(atPath: folder)) ?? []
        if let name = names.sorted().last(where: { isSentencePieceFileName($0) }) {
            return folder + "/" + name
        }
        throw TokenizerError.fileNotFound(folder + "/tokenizer.json (or tokenizer.model)")
    }

    static func isSentencePieceFileName(_ name: String) -> Bool {
        if name.hasSuffix(".model") { return true }
        // mistral-common: tokenizer.model.v1, mistral_instruct_tokenizer_240323.model.v3, ...
        guard let range = name.range(of: ".model.v", options: .backwards) else { return false }
        return !name[range.upperBound...].isEmpty && name[range.upperBound...].allSatisfy { $0.isNumber || $0.isLetter }
    }

    static func loadFile(_ file: String, configuration: TokenizerConfiguration) throws -> any Tokenizer {
        let name = (file as NSString).lastPathComponent
        if name.hasSuffix(".gguf") {
            throw TokenizerError.unsupported(file: file, feature: "GGUF files (their tokenizer is metadata: read tokenizer.ggml.* and call TokenizerLoader.fromGGUF)")
        }
        if name.hasSuffix(".json") {
            if name.hasPrefix("tekken") {
                throw TokenizerError.unsupported(file: file, feature: "mistral-common Tekken (tiktoken) tokenizers")
            }
            var tokenizer = try HFTokenizer(contentsOf: file)
            if let bos = configuration.bosToken, let id = tokenizer.tokenID(bos) { tokenizer.bosTokenID = id }
            if let eos = configuration.eosToken, let id = tokenizer.tokenID(eos) { tokenizer.eosTokenIDs = [id] }
            return tokenizer
        }
        if isSentencePieceFileName(name) || name.hasPrefix("tokenizer.model") {
            var tokenizer = try SentencePieceTokenizer(contentsOf: file)
            if let add = configuration.addBOSToken { tokenizer.addBOS = add }
            if let add = configuration.addEOSToken { tokenizer.addEOS = add }
            return tokenizer
        }
        throw TokenizerError.unsupported(file: file, feature: "tokenizer file type (expected tokenizer.json or a SentencePiece .model)")
    }

    // MARK: GGUF

    /// Builds a tokenizer from GGUF metadata (`tokenizer.ggml.*`), as llama.cpp interprets it.
    ///
    /// - `model` "llama": SentencePiece BPE from `tokens`/`scores`/`tokenTypes` (types as in GGUF and
    ///   sentencepiece: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; 0 counts
    ///   as normal); byte
    ///   fallback when byte tokens exist; `addSpacePrefix` (tokenizer.ggml.add_space_prefix,
    ///   default true) is sentencepiece's add_dummy_prefix.
    /// - `model` "gpt2": byte-level BPE from `tokens` and `merges` ("a b"), pre-tokenized with the
    ///   regex llama.cpp associates with `pre` (tokenizer.ggml.pre): "gpt2"/"default"/nil (GPT-2),
    ///   "llama3"/"llama-bpe"/"llama-v3" (Llama 3), "smollm"/"starcoder"/"refact"/"codeshell"
    ///   (individual digits, then GPT-2). Control and user-defined tokens are matched whole in
    ///   text; control tokens are special.
    /// `addBOS` defaults to true for "llama" and false for "gpt2"; `addEOS` to false.
    public static func fromGGUF(
        model: String, pre: String?, tokens: [String], scores: [Float]?, tokenTypes: [Int32]?,
        merges: [String]?, bosID: Int?, eosID: Int?, unkID: Int?, addBOS: Bool?, addEOS: Bool?,
        addSpacePrefix: Bool? = nil
    ) throws -> any Tokenizer {
        let file = "GGUF metadata"
        if let scores, scores.count != tokens.count {
            throw TokenizerError.malformed(file: file, reason: "\(scores.count) scores for \(tokens.count) tokens")
        }
        if let tokenTypes, tokenTypes.count != tokens.count {
            throw TokenizerError.malformed(file: file, reason: "\(tokenTypes.count) token types for \(tokens.count) tokens")
        }
        for (name, id) in [("bos", bosID), ("eos", eosID), ("unknown", unkID)] {
            if let id, id < 0 || id >= tokens.count {
                throw TokenizerError.malformed(file: file, reason: "\(name) token id \(id) is outside the vocabulary of \(tokens.count)")
            }
        }
        switch model {
        case "llama":
            var spModel = SentencePieceModel()
            spModel.modelType = .bpe
            spModel.normalizerName = "identity"
            spModel.addDummyPrefix = addSpacePrefix ?? true
            spModel.removeExtraWhitespaces = false
            spModel.pieces = try tokens.enumerated().map { index, text in
                // 0 is llama.cpp's LLAMA_TOKEN_TYPE_UNDEFINED, treated as normal.
                let rawType = max(tokenTypes?[index] ?? 1, 1)
                guard let type = SentencePieceModel.PieceType(rawValue: rawType) else {
                    throw TokenizerError.malformed(file: file, reason: "token \(index) has unknown type \(rawType)")
                }
                return SentencePieceModel.Piece(text: text, score: scores?[index] ?? 0, type: type)
            }
            spModel.byteFallback = spModel.pieces.contains { $0.type == .byte }
            if let unkID { spModel.unkPiece = tokens[unkID]; spModel.pieces[unkID].type = .unknown }
            if let bosID { spModel.bosPiece = tokens[bosID]; if spModel.pieces[bosID].type == .normal { spModel.pieces[bosID].type = .control } }
            if let eosID { spModel.eosPiece = tokens[eosID]; if spModel.pieces[eosID].type == .normal { spModel.pieces[eosID].type = .control } }
            var tokenizer = try SentencePieceTokenizer(model: spModel, file: file)
            tokenizer.addBOS = addBOS ?? true
            tokenizer.addEOS = addEOS ?? false
            return tokenizer
        case "gpt2":
            guard let merges else { throw TokenizerError.malformed(file: file, reason: "gpt2 vocabulary without merges") }
            let mergePairs: [(String, String)] = try merges.map { merge in
                guard let space = merge.firstIndex(of: " ") else {
                    throw TokenizerError.malformed(file: file, reason: "merge \(merge.debugDescription) has no space")
                }
                return (String(merge[..<space]), String(merge[merge.index(after: space)...]))
            }
            let bpe = try BPEModel(
                vocabulary: tokens.enumerated().map { ($1, $0) }, merges: mergePairs, unknownToken: nil,
                fuseUnknown: false, byteFallback: false, ignoreMerges: pre.map(isLlama3Style) ?? false,
                continuingSubwordPrefix: nil, endOfWordSuffix: nil, file: file)
            var added: [AddedToken] = []
            for (index, type) in (tokenTypes ?? []).enumerated() where type == 3 || type == 4 {
                added.append(AddedToken(id: index, content: tokens[index], special: type == 3))
            }
            let preTokenizer = try gpt2PreTokenizer(named: pre, file: file)
            var template: [[Int]?] = [nil]
            if addBOS ?? false, let bosID { template.insert([bosID], at: 0) }
            if addEOS ?? false, let eosID { template.append([eosID]) }
            return HFTokenizer(model: bpe, addedTokens: added, normalizer: nil, preTokenizer: preTokenizer,
                               decoder: .byteLevel, template: template, bosTokenID: bosID,
                               eosTokenIDs: eosID.map { [$0] } ?? [])
        default:
            throw TokenizerError.unsupported(file: file, feature: "tokenizer.ggml.model \(model.debugDescription)")
        }
    }

    static let llama3Pattern = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    private static func isLlama3Style(_ pre: String) -> Bool {
        ["llama3", "llama-bpe", "llama-v3"].contains(pre)
    }

    static func gpt2PreTokenizer(named pre: String?, file: String) throws -> HFPreTokenizer {
        switch pre {
        case nil, "default", "gpt2", "gpt-2":
            return .byteLevel(addPrefixSpace: false, useRegex: true)
        case let name? where isLlama3Style(name):
            return .sequence([
                .split(try TextPattern(regex: llama3Pattern, file: file), .isolated, invert: false),
                .byteLevel(addPrefixSpace: false, useRegex: false),
            ])
        case "smollm", "starcoder", "refact", "codeshell", "command-r":
            return .sequence([.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        case let name?:
            throw TokenizerError.unsupported(file: file, feature: "tokenizer.ggml.pre \(name.debugDescription)")
        }
    }
}
