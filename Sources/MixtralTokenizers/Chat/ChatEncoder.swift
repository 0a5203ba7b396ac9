/// Turns a conversation into prompt token ids, the way the model's own tooling does:
///
/// - With a Jinja chat template (tokenizer_config.json, chat_template.jinja or GGUF
///   `tokenizer.chat_template`): render it like transformers' `apply_chat_template`, then encode
///   the text without adding special tokens (transformers' `tokenize=True`), special-token text
///   in it ("<s>", "[INST]", "<|im_start|>") becoming the special ids.
/// - Without a template, for a SentencePiece Mistral tokenizer: mistral-common's instruct
///   encoding (v3 when the tokenizer has the [INST]/[TOOL_CALLS] control tokens, else v1).
public struct ChatEncoder: Sendable {
    public enum Format: Sendable {
        case template(ChatTemplate)
        case mistral(MistralInstructEncoder)
    }

    public let tokenizer: any Tokenizer
    public let format: Format
    public let bosToken: String?
    public let eosToken: String?

    /// Uses `template` when given, else mistral-common's encoding (SentencePiece tokenizers only).
    public init(tokenizer: any Tokenizer, template: String?, bosToken: String? = nil, eosToken: String? = nil) throws {
        self.tokenizer = tokenizer
        if let template {
            format = .template(try ChatTemplate(template))
        } else if let sentencePiece = tokenizer as? SentencePieceTokenizer {
            let hasV3Controls = (0..<min(sentencePiece.vocabularySize, 64)).contains {
                sentencePiece.isSpecial($0) && sentencePiece.piece(for: $0) == "[TOOL_CALLS]"
            }
            format = .mistral(try MistralInstructEncoder(tokenizer: sentencePiece, version: hasV3Controls ? .v3 : .v1))
        } else {
            throw ChatTemplateError.unsupported(construct: "chat without a chat template (tokenizer.json has none)", line: 0)
        }
        self.bosToken = bosToken ?? tokenizer.bosTokenID.flatMap { Self.text(of: $0, in: tokenizer) }
        self.eosToken = eosToken ?? tokenizer.eosTokenIDs.first.flatMap { Self.text(of: $0, in: tokenizer) }
    }

    /// From a loaded folder or file: its chat template when it has one.
    public init(loaded: LoadedTokenizer) throws {
        try self.init(tokenizer: loaded.tokenizer, template: loaded.configuration.chatTemplate,
                      bosToken: loaded.configuration.bosToken, eosToken: loaded.configuration.eosToken)
    }

    private static func text(of id: Int, in tokenizer: any Tokenizer) -> String? {
        if let sentencePiece = tokenizer as? SentencePieceTokenizer { return sentencePiece.piece(for: id) }
        if let hf = tokenizer as? HFTokenizer { return hf.token(for: id) }
        return nil
    }

    /// The rendered prompt text (template formats only; nil for mistral-common's encoding, which
    /// works on tokens).
    public func render(messages: [ChatMessage], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = true) throws -> String? {
        guard case .template(let template) = format else { return nil }
        return try template.render(messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt,
                                   bosToken: bosToken, eosToken: eosToken)
    }

    /// Prompt token ids for the conversation (with a generation prompt where the template has one).
    public func encode(messages: [ChatMessage], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = true) throws -> [Int] {
        switch format {
        case .mistral(let encoder):
            return try encoder.encode(messages: messages, tools: tools)
        case .template:
            let text = try render(messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt) ?? ""
            if let sentencePiece = tokenizer as? SentencePieceTokenizer {
                return try sentencePiece.encodeParsingControlTokens(text)
            }
            return try tokenizer.encode(text, addSpecialTokens: false)
        }
    }
}

extension SentencePieceTokenizer {
    /// Encodes text in which control-token text ("<s>", "[INST]") stands for the control ids, as a
    /// rendered chat template needs (transformers and llama.cpp split on special tokens the same
    /// way). The text between control tokens is encoded as usual (each part gets the dummy prefix).
    public func encodeParsingControlTokens(_ text: String) throws -> [Int] {
        var ids: [Int] = []
        for segment in controlMatcher.split(text, startsAtOrigin: true) {
            switch segment {
            case .token(let id): ids.append(id)
            case .text(let part, _): ids += try encode(part, addSpecialTokens: false)
            }
        }
        return ids
    }
}
