/// Text <-> token ids. Every implementation must reproduce its reference library exactly
/// (sentencepiece for tokenizer.model, Hugging Face `tokenizers` for tokenizer.json).
public protocol Tokenizer: Sendable {
    /// Number of ids the tokenizer can produce (pieces plus added tokens).
    var vocabularySize: Int { get }
    var bosTokenID: Int? { get }
    var eosTokenIDs: [Int] { get }

    /// Encodes text. `addSpecialTokens` adds BOS/EOS as the tokenizer's configuration asks
    /// (transformers' `add_special_tokens=True`).
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]

    /// Decodes ids to text, like transformers' `decode(ids, skip_special_tokens:)`.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String

    /// Whether an id is a special (control) token, dropped by `skipSpecialTokens`.
    func isSpecial(_ id: Int) -> Bool

    /// Whether an id is a byte-fallback token (`<0xXX>`), whose text depends on the tokens next
    /// to it. The streaming detokenizer holds text back while the last token is one.
    func isByteFallbackToken(_ id: Int) -> Bool

    /// Whether decoding treats only the start of the text specially (a leading space
    /// dropped, a Strip at the start): then the text of ids after others is the text of
    /// the same ids after any one token, less that token's text, and the streaming
    /// detokenizer decodes each new id from a checkpoint instead of from the start.
    var decodingTreatsOnlyTheStartSpecially: Bool { get }

    /// The bytes a token adds to the text when it follows other tokens: what decoding
    /// gives, before grouping bytes into characters, so a token holding part of a UTF-8
    /// character gives that part (a byte token its byte). nil for special tokens, which
    /// have no text of their own. Grammar constraints match these bytes.
    func tokenBytes(_ id: Int) -> [UInt8]?
}

extension Tokenizer {
    /// Without the tokenizer's own pieces: the decoded text, when it is whole characters.
    public func tokenBytes(_ id: Int) -> [UInt8]? {
        guard !isSpecial(id) else { return nil }
        let text = decode([id], skipSpecialTokens: false)
        return text.contains("\u{FFFD}") ? nil : Array(text.utf8)
    }

    public func isByteFallbackToken(_ id: Int) -> Bool { false }
    public var decodingTreatsOnlyTheStartSpecially: Bool { false }

    /// Throws `idOutOfRange` for the first id outside the vocabulary (`decode` skips such ids;
    /// callers that take ids from users, like a detokenize command, check them first).
    public func validate(ids: [Int]) throws {
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw TokenizerError.idOutOfRange(id: bad, vocabularySize: vocabularySize)
        }
    }
}

/// Inputs must be shorter than this many UTF-8 bytes.
let maximumInputBytes = 1 << 30

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case malformed(file: String, reason: String)
    case unsupported(file: String, feature: String)
    case idOutOfRange(id: Int, vocabularySize: Int)
    /// Inputs of 1 GiB or more are refused (positions are 32-bit inside the BPE loops).
    case inputTooLong(bytes: Int)
    /// A regular expression of the tokenizer backtracked past its step budget on this input
    /// (tokenizers stops at Oniguruma's retry limit the same way).
    case patternTooComplex(pattern: String, inputLength: Int)

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "tokenizer file not found: \(messageText(path, limit: 1000))"
        case .malformed(let file, let reason):
            return "malformed tokenizer file \(messageText(file, limit: 1000)): \(messageText(reason, limit: 1000))"
        case .unsupported(let file, let feature):
            return "unsupported tokenizer feature in \(messageText(file, limit: 1000)): \(messageText(feature, limit: 1000))"
        case .idOutOfRange(let id, let size): return "token id \(id) is out of range for a vocabulary of \(size)"
        case .inputTooLong(let bytes): return "input of \(bytes) bytes is too long to tokenize at once (limit: 1 GiB)"
        case .patternTooComplex(let pattern, let length):
            return "the tokenizer's regular expression \(messageText(pattern.debugDescription)) needs too many steps "
                + "on an input of \(length) bytes (catastrophic backtracking)"
        }
    }
}
