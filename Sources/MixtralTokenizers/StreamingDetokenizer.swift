/// Turns a stream of token ids into text deltas.
///
/// Guarantees, for the tokenizers of this module: the concatenation of all deltas (including
/// `finish()`) equals `tokenizer.decode(allIDs, skipSpecialTokens:)`; a delta never ends in the
/// middle of a UTF-8 character; and no delta starts with a space that the full decode does not
/// have (sentencepiece drops the first piece's leading "▁" only at the very start of the text).
///
/// How: after each id, the text is decoded and the new suffix is emitted, except text that may
/// still change: a trailing run of U+FFFD (possibly an incomplete character), and all new text
/// while the last decoded token is a byte-fallback token (tokenizers' ByteFallback decodes a
/// `<0xXX>` group as a whole: one invalid byte turns the whole group into U+FFFDs).
///
/// Cost: decoding restarts from a checkpoint, not from the first id. Once some text is out and
/// nothing is held back, the ids so far are committed; later ids are decoded behind an "anchor"
/// token (the id of "a"), which absorbs the start-of-text rules (sentencepiece's leading space,
/// the Strip and Metaspace decoders), and the anchor's text is cut off again. This holds for
/// decoders that only treat the start of the text specially, which is checked (SentencePiece,
/// and tokenizer.json decoders without a trailing Strip); other tokenizers decode from the start.
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: any Tokenizer
    public let skipSpecialTokens: Bool
    public private(set) var ids: [Int] = []
    /// UTF-8 bytes emitted so far.
    private var emitted: [UInt8] = []
    /// ids[..<committedCount] decode to emitted[..<committedBytes].
    private var committedCount = 0
    private var committedBytes = 0
    /// A token decoding to `anchorBytes`, used to decode ids after the checkpoint.
    private let anchor: (id: Int, bytes: [UInt8])?

    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        anchor = Self.findAnchor(tokenizer)
    }

    private static func findAnchor(_ tokenizer: any Tokenizer) -> (id: Int, bytes: [UInt8])? {
        guard tokenizer.decodingTreatsOnlyTheStartSpecially, let ids = try? tokenizer.encode("a", addSpecialTokens: false), ids.count == 1, let id = ids.first,
              !tokenizer.isSpecial(id), !tokenizer.isByteFallbackToken(id) else { return nil }
        let text = tokenizer.decode([id], skipSpecialTokens: true)
        guard !text.isEmpty, !text.unicodeScalars.contains("\u{FFFD}") else { return nil }
        return (id, Array(text.utf8))
    }

    /// Whether decoding currently starts from a checkpoint (for tests).
    var hasCheckpoint: Bool { committedCount > 0 }

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

    /// The UTF-8 of decode(ids), computed from the checkpoint when there is one.
    private func decodedBytes() -> [UInt8] {
        if committedCount > 0, let anchor {
            let tail = Array(tokenizer.decode([anchor.id] + ids[committedCount...], skipSpecialTokens: skipSpecialTokens).utf8)
            if tail.starts(with: anchor.bytes) {
                return Array(emitted[..<committedBytes]) + tail[anchor.bytes.count...]
            }
        }
        return Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
    }

    private mutating func emitStable(final: Bool) -> String {
        var decoded = decodedBytes()
        let complete = decoded.count
        if !final {
            // Hold back a trailing run of U+FFFD (EF BF BD): more bytes may complete the character.
            while decoded.count >= 3 && decoded[decoded.count - 3] == 0xEF && decoded[decoded.count - 2] == 0xBF
                && decoded[decoded.count - 1] == 0xBD {
                decoded.removeLast(3)
            }
        }
        guard decoded.count >= emitted.count, decoded.starts(with: emitted) else { return "" }
        let delta = decoded[emitted.count...]
        emitted.append(contentsOf: delta)
        // Commit when everything decoded is out, some text exists and no byte group is open.
        if anchor != nil, decoded.count == complete, !emitted.isEmpty, !endsInByteGroup {
            committedCount = ids.count
            committedBytes = emitted.count
        }
        return String(decoding: delta, as: UTF8.self)
    }
}

extension SentencePieceTokenizer {
    /// sentencepiece drops the first piece's leading "▁" only at the very start.
    public var decodingTreatsOnlyTheStartSpecially: Bool { true }
}

extension HFTokenizer {
    public var decodingTreatsOnlyTheStartSpecially: Bool { decoder?.onlyStartIsSpecial ?? true }
}

extension HFDecoder {
    /// Whether the decoder treats only the start of the text specially (so text decoded after an
    /// anchor token equals the continuation of the full decode). A Strip with `stop > 0` also
    /// changes the end of the text.
    var onlyStartIsSpecial: Bool {
        switch self {
        case .sequence(let items): return items.allSatisfy(\.onlyStartIsSpecial)
        case .strip(_, _, let stop): return stop == 0
        case .replace, .byteFallback, .fuse, .metaspace, .byteLevel: return true
        }
    }
}
