import MixtralTokenizers

extension GGUFFile {
    /// The tokenizer stored in the file's metadata (tokenizer.ggml.*), with its chat
    /// template (tokenizer.chat_template) and special tokens.
    public func loadTokenizer() throws -> LoadedTokenizer {
        // A key of the wrong type is an error (as in llama.cpp's gguf_get_val_*), never
        // read as absent.
        guard let model = try optional("tokenizer.ggml.model", string) else {
            throw TokenizerError.malformed(file: path, reason: "no tokenizer.ggml.model in the metadata")
        }
        guard let tokens = try optional("tokenizer.ggml.tokens", stringArray) else {
            throw TokenizerError.malformed(file: path, reason: "no tokenizer.ggml.tokens in the metadata")
        }
        let bos = try optional("tokenizer.ggml.bos_token_id", int)
        let eos = try optional("tokenizer.ggml.eos_token_id", int)
        let addBOS = try optional("tokenizer.ggml.add_bos_token", bool)
        let addEOS = try optional("tokenizer.ggml.add_eos_token", bool)
        let tokenizer = try TokenizerLoader.fromGGUF(
            model: model, pre: try optional("tokenizer.ggml.pre", string), tokens: tokens,
            scores: try optional("tokenizer.ggml.scores", floatArray),
            tokenTypes: try optional("tokenizer.ggml.token_type", intArray).map { $0.map { Int32(truncatingIfNeeded: $0) } },
            merges: try optional("tokenizer.ggml.merges", stringArray),
            bosID: bos, eosID: eos, unkID: try optional("tokenizer.ggml.unknown_token_id", int),
            addBOS: addBOS, addEOS: addEOS,
            addSpacePrefix: try optional("tokenizer.ggml.add_space_prefix", bool))
        let name = { (id: Int?) in id.flatMap { $0 >= 0 && $0 < tokens.count ? tokens[$0] : nil } }
        let configuration = TokenizerConfiguration(
            addBOSToken: addBOS, addEOSToken: addEOS,
            bosToken: name(bos), eosToken: name(eos),
            chatTemplate: try optional("tokenizer.chat_template", string))
        return LoadedTokenizer(tokenizer: tokenizer, configuration: configuration, file: path)
    }
}
