import MixtralTokenizers

extension GGUFFile {
    /// The tokenizer stored in the file's metadata (tokenizer.ggml.*), with its chat
    /// template (tokenizer.chat_template) and special tokens.
    public func loadTokenizer() throws -> LoadedTokenizer {
        func value(_ key: String) -> GGUFValue? { metadata[key] }
        guard let model = value("tokenizer.ggml.model")?.stringValue else {
            throw TokenizerError.malformed(file: path, reason: "no tokenizer.ggml.model in the metadata")
        }
        guard let tokens = value("tokenizer.ggml.tokens")?.stringArray else {
            throw TokenizerError.malformed(file: path, reason: "no tokenizer.ggml.tokens in the metadata")
        }
        let bos = value("tokenizer.ggml.bos_token_id")?.intValue
        let eos = value("tokenizer.ggml.eos_token_id")?.intValue
        let tokenizer = try TokenizerLoader.fromGGUF(
            model: model, pre: value("tokenizer.ggml.pre")?.stringValue, tokens: tokens,
            scores: value("tokenizer.ggml.scores")?.floatArray,
            tokenTypes: value("tokenizer.ggml.token_type")?.intArray.map { $0.map { Int32(truncatingIfNeeded: $0) } },
            merges: value("tokenizer.ggml.merges")?.stringArray,
            bosID: bos, eosID: eos, unkID: value("tokenizer.ggml.unknown_token_id")?.intValue,
            addBOS: value("tokenizer.ggml.add_bos_token")?.boolValue,
            addEOS: value("tokenizer.ggml.add_eos_token")?.boolValue,
            addSpacePrefix: value("tokenizer.ggml.add_space_prefix")?.boolValue)
        let name = { (id: Int?) in id.flatMap { $0 >= 0 && $0 < tokens.count ? tokens[$0] : nil } }
        let configuration = TokenizerConfiguration(
            addBOSToken: value("tokenizer.ggml.add_bos_token")?.boolValue,
            addEOSToken: value("tokenizer.ggml.add_eos_token")?.boolValue,
            bosToken: name(bos), eosToken: name(eos),
            chatTemplate: value("tokenizer.chat_template")?.stringValue)
        return LoadedTokenizer(tokenizer: tokenizer, configuration: configuration, file: path)
    }
}
