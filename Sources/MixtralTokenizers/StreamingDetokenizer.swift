/// Turns a stream of token ids into text deltas.
///
/// Guarantees, for the tokenizers of this module: the concatenation of all deltas (including
/// `finish()`) equals `tokenizer.decode(allIDs, skipSpecialTokens:)`; a delta never ends in the
/// middle of a UTF-8 character; and no delta starts with a space that the full decode does not
/// have (sentencepiece drops the first piece's leading "▁" only at the very start of the text).
///
/// How: after each id the whole sequence is decoded and the new suffix is emitted, except text
/// that may still change: a trailing run of U+FFFD (possibly an incomplete character), and all
/// new text while the last decoded token is a byte-fallback token (tokenizers' ByteFallback
/// decodes a `<0xXX>` group as a whole: one invalid byte turns the whole group into U+FFFDs). Each step
/// costs one decode of the sequence so far (linear in its length).
public struct StreamingDetokenizer {
    public let tokenizer: any Tokenizer
    public let skipSpecialTokens: Bool
    public private(set) var ids: [Int] = []
    /// UTF-8 bytes emitted so far.
    private var emitted: [UInt8] = []

    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text emitted so far.
    public var emittedText: String { String(decoding: emitted, as: UTF8.self) }

    /// Adds one id; returns the text that became final (possibly empty).
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        return endsInByteGroup ? "" : emitStable(final: false)
    }

    /// Adds several ids; returns the text that became final.
    public mutating func append(contentsOf newIDs: [Int]) -> String {
        ids.append(contentsOf: newIDs)
        return endsInByteGroup ? "" : emitStable(final: false)
    }

    /// Ends the stream: returns whatever was held back.
    public mutating func finish() -> String {
        emitStable(final: true)
    }

    /// Whether the last token that reaches the decoder is a byte-fallback token (skipped special
    /// tokens do not end a byte group: the decoder never sees them).
    private var endsInByteGroup: Bool {
        let last = ids.last { !(skipSpecialTokens && tokenizer.isSpecial($0)) }
        return last.map(tokenizer.isByteFallbackToken) ?? false
    }

    private mutating func emitStable(final: Bool) -> String {
        var decoded = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
        if !final {
            // Hold back a trailing run of U+FFFD (EF BF BD): more bytes may complete the character.
            while decoded.count >= 3 && decoded[decoded.count - 3] == 0xEF && decoded[decoded.count - 2] == 0xBF
                && decoded[decoded.count - 1] == 0xBD {
                decoded.removeLast(3)
            }
        }
        guard decoded.count > emitted.count, decoded.starts(with: emitted) else { return "" }
        let delta = decoded[emitted.count...]
        emitted.append(contentsOf: delta)
        return String(decoding: delta, as: UTF8.self)
    }
}
