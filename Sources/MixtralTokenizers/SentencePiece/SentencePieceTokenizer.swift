import Foundation

/// A SentencePiece BPE tokenizer (tokenizer.model), encoding and decoding as the `sentencepiece`
/// library does:
///
/// - Normalisation: identity character map only (Mixtral's models); `add_dummy_prefix` puts "▁"
///   first, `escape_whitespaces` turns " " into "▁", `remove_extra_whitespaces` drops leading and
///   trailing spaces and collapses runs.
/// - Segmentation: the normalised text is split into characters, except that user-defined pieces
///   are matched whole (longest first) and never merged. Adjacent symbols whose concatenation is a
///   piece are merged, highest score first, leftmost first on ties, until no pair is a piece.
/// - A symbol that is not a piece becomes its UTF-8 bytes (`<0xXX>` pieces) when the model has
///   `byte_fallback`, otherwise the unknown id (runs of unknowns fused into one).
/// - Control pieces (`<s>`, `</s>`, `[INST]`...) are never produced from text: "</s>" in the input
///   is encoded as ordinary characters, as sentencepiece does.
public struct SentencePieceTokenizer: Tokenizer {
    public let model: SentencePieceModel
    public let vocabularySize: Int
    public let bosTokenID: Int?
    public let eosTokenIDs: [Int]
    public let unknownTokenID: Int?
    /// Whether `encode(_:addSpecialTokens: true)` adds BOS / EOS (default: BOS only, as
    /// transformers' LlamaTokenizer, mistral-common and llama.cpp do for these models).
    public var addBOS: Bool
    public var addEOS: Bool

    private let pieceBytes: [[UInt8]]
    private let types: [SentencePieceModel.PieceType]
    private let scores: [Float]
    /// normal, user-defined and unused pieces (the ones text can become).
    private let normalPieces: ByteStringTable
    /// Byte value -> id of its `<0xXX>` piece (-1 when absent).
    private let byteIDs: [Int32]
    /// User-defined pieces by first byte, longest first.
    private let userDefined: [UInt8: [(bytes: [UInt8], id: Int32)]]
    /// Whether some user-defined piece starts with the byte (avoids a dictionary lookup per character).
    private let startsUserDefined: [Bool]
    private let hasUnusedPieces: Bool
    /// Control pieces by text, for `encodeParsingControlTokens`.
    let controlMatcher: AddedTokenMatcher
    /// Computed from the vocabulary; tests switch it off to compare both paths.
    var spaceRunsAreBoundaries: Bool

    public init(model: SentencePieceModel, file: String = "tokenizer.model") throws {
        guard model.modelType == .bpe else {
            throw TokenizerError.unsupported(file: file, feature: "SentencePiece model type \(model.modelType) (only BPE is supported)")
        }
        guard model.precompiledCharsmapSize == 0 else {
            throw TokenizerError.unsupported(file: file, feature: "SentencePiece normaliser '\(model.normalizerName)' with a precompiled character map")
        }
        guard !model.hasDenormalizerCharsmap else {
            throw TokenizerError.unsupported(file: file, feature: "SentencePiece denormaliser character map")
        }
        guard !model.treatWhitespaceAsSuffix else {
            throw TokenizerError.unsupported(file: file, feature: "treat_whitespace_as_suffix")
        }
        self.model = model
        vocabularySize = model.pieces.count
        pieceBytes = model.pieces.map { Array($0.text.utf8) }
        types = model.pieces.map(\.type)
        scores = model.pieces.map(\.score)

        var normal: [(key: [UInt8], value: Int32)] = []
        var reserved: [String: Int] = [:]
        var bytes = [Int32](repeating: -1, count: 256)
        var user: [UInt8: [(bytes: [UInt8], id: Int32)]] = [:]
        for (i, piece) in model.pieces.enumerated() {
            switch piece.type {
            case .normal, .userDefined, .unused:
                normal.append((pieceBytes[i], Int32(i)))
                if piece.type == .userDefined, let first = pieceBytes[i].first {
                    user[first, default: []].append((pieceBytes[i], Int32(i)))
                }
            case .control, .unknown, .byte:
                if reserved[piece.text] == nil { reserved[piece.text] = i }
                if piece.type == .byte {
                    guard let value = Self.byteValue(ofPiece: piece.text) else {
                        throw TokenizerError.malformed(file: file, reason: "byte piece '\(piece.text)' is not of the form <0xXX>")
                    }
                    bytes[value] = Int32(i)
                }
            }
        }
        if model.byteFallback && bytes.contains(-1) {
            throw TokenizerError.malformed(file: file, reason: "byte_fallback is set but not all 256 <0xXX> pieces exist")
        }
        normalPieces = ByteStringTable(normal)
        byteIDs = bytes
        userDefined = user.mapValues { $0.sorted { $0.bytes.count > $1.bytes.count } }
        startsUserDefined = (0..<256).map { user[UInt8($0)] != nil }
        hasUnusedPieces = model.pieces.contains { $0.type == .unused }
        spaceRunsAreBoundaries = model.escapeWhitespaces && Self.spaceRunsAreBoundaries(pieceBytes, types)
        controlMatcher = AddedTokenMatcher(model.pieces.enumerated().compactMap { id, piece in
            piece.type == .control && !piece.text.isEmpty ? AddedToken(id: id, content: piece.text, special: true) : nil
        })

        func reservedID(_ text: String, _ type: SentencePieceModel.PieceType) -> Int? {
            guard let id = reserved[text], model.pieces[id].type == type else { return nil }
            return id
        }
        // sentencepiece requires an unknown piece; vocabularies from GGUF files may lack one.
        unknownTokenID = reservedID(model.unkPiece, .unknown) ?? model.pieces.firstIndex { $0.type == .unknown }
        bosTokenID = reservedID(model.bosPiece, .control)
        eosTokenIDs = reservedID(model.eosPiece, .control).map { [$0] } ?? []
        addBOS = true
        addEOS = false
    }

    /// Loads a tokenizer.model file.
    public init(contentsOf path: String) throws {
        guard let data = try readTokenizerFile(path) else {
            throw TokenizerError.fileNotFound(path)
        }
        try self.init(model: SentencePieceModel(data: data, file: path), file: path)
    }

    static func byteValue(ofPiece text: String) -> Int? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"),
              utf8[2] == UInt8(ascii: "x"), utf8[5] == UInt8(ascii: ">"),
              let value = Int(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16) else { return nil }
        return value
    }

    public func isSpecial(_ id: Int) -> Bool {
        id >= 0 && id < vocabularySize && types[id] == .control
    }

    public func isByteFallbackToken(_ id: Int) -> Bool {
        id >= 0 && id < vocabularySize && types[id] == .byte
    }

    /// The text of a piece ("▁Hello", "<0x0A>", "</s>"), or nil for an id out of range.
    public func piece(for id: Int) -> String? {
        id >= 0 && id < vocabularySize ? model.pieces[id].text : nil
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        guard text.utf8.count < maximumInputBytes else { throw TokenizerError.inputTooLong(bytes: text.utf8.count) }
        var ids: [Int] = []
        if addSpecialTokens && addBOS, let bos = bosTokenID { ids.append(bos) }
        let normalized = normalize(text)
        encodeNormalized(normalized, into: &ids)
        if addSpecialTokens && addEOS, let eos = eosTokenIDs.first { ids.append(eos) }
        return ids
    }

    private static let spaceSymbol: [UInt8] = Array("\u{2581}".utf8)

    /// sentencepiece's Normalizer::Normalize with an identity character map.
    func normalize(_ text: String) -> [UInt8] {
        var input = Array(text.utf8)[...]
        if model.removeExtraWhitespaces {
            while input.first == UInt8(ascii: " ") { input = input.dropFirst() }
        }
        if input.isEmpty { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(input.count + input.count / 2 + 3)
        let space: [UInt8] = model.escapeWhitespaces ? Self.spaceSymbol : [UInt8(ascii: " ")]
        if model.addDummyPrefix { out.append(contentsOf: space) }
        var previousWasSpace = model.removeExtraWhitespaces
        for byte in input {
            if byte == UInt8(ascii: " ") {
                if model.removeExtraWhitespaces && previousWasSpace { continue }
                out.append(contentsOf: space)
                previousWasSpace = true
            } else {
                out.append(byte)
                previousWasSpace = false
            }
        }
        if model.removeExtraWhitespaces {
            while out.count >= space.count && out.suffix(space.count).elementsEqual(space) {
                out.removeLast(space.count)
            }
        }
        return out
    }

    private struct Symbol {
        var start: Int32
        var end: Int32
        var prev: Int32
        var next: Int32
        /// The piece id once merged (-1: not looked up yet).
        var id: Int32
        var frozen: Bool
    }

    private struct Candidate: Comparable {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32
        var id: Int32
        /// Higher score first; on equal scores the leftmost pair first.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.score < b.score || (a.score == b.score && a.left > b.left)
        }
    }

    /// Buffers reused across the segments of one encode call.
    private struct Scratch {
        var symbols: [Symbol] = []
        var agenda = BinaryHeap<Candidate>()
        var reverseMerges: [[UInt8]: ([UInt8], [UInt8])] = [:]
        var previousWasUnknown = false
    }

    /// Whether no piece has "▁" after another character (other than "▁"). Then no merge can
    /// cross the start of a "▁" run, and the text can be encoded segment by segment ("▁word")
    /// with exactly the result of encoding it whole, but with small heaps (much faster on long
    /// inputs). True for Mistral's vocabularies.
    private static func spaceRunsAreBoundaries(_ pieces: [[UInt8]], _ types: [SentencePieceModel.PieceType]) -> Bool {
        let space = spaceSymbol
        for (piece, type) in zip(pieces, types) where type == .normal || type == .userDefined || type == .unused {
            var i = 1
            while i + space.count <= piece.count {
                if piece[i] == space[0] && piece[i..<(i + space.count)].elementsEqual(space)
                    && !(i >= space.count && piece[(i - space.count)..<i].elementsEqual(space)) {
                    return false
                }
                i += 1
            }
        }
        return true
    }

    private func encodeNormalized(_ normalized: [UInt8], into ids: inout [Int]) {
        if normalized.isEmpty { return }
        var scratch = Scratch()
        normalized.withUnsafeBufferPointer { text in
            guard spaceRunsAreBoundaries else {
                encodeSegment(text, &scratch, into: &ids)
                return
            }
            // Segments start where a run of "▁" starts.
            let space = Self.spaceSymbol
            var segmentStart = 0
            var position = 0
            var previousWasSpace = false
            while position < text.count {
                let isSpace = position + 3 <= text.count && text[position] == space[0]
                    && text[position + 1] == space[1] && text[position + 2] == space[2]
                if isSpace && !previousWasSpace && position > segmentStart {
                    encodeSegment(UnsafeBufferPointer(rebasing: text[segmentStart..<position]), &scratch, into: &ids)
                    segmentStart = position
                }
                previousWasSpace = isSpace
                position += isSpace ? 3 : 1
            }
            encodeSegment(UnsafeBufferPointer(rebasing: text[segmentStart..<text.count]), &scratch, into: &ids)
        }
    }

    /// sentencepiece's BPE on one stretch of normalized text.
    private func encodeSegment(_ text: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch, into ids: inout [Int]) {
        if text.isEmpty { return }
        scratch.symbols.removeAll(keepingCapacity: true)
        scratch.agenda.removeAll()
        // Split into characters and user-defined pieces (matched whole, never merged).
        var position = 0
        while position < text.count {
            var length = 0
            var frozen = false
            if startsUserDefined[Int(text[position])], let candidates = userDefined[text[position]] {
                for candidate in candidates where candidate.bytes.count <= text.count - position {
                    if text[position..<(position + candidate.bytes.count)].elementsEqual(candidate.bytes) {
                        length = candidate.bytes.count
                        frozen = true
                        break
                    }
                }
            }
            if length == 0 { length = min(utf8Length(leadByte: text[position]), text.count - position) }
            let index = Int32(scratch.symbols.count)
            scratch.symbols.append(Symbol(start: Int32(position), end: Int32(position + length),
                                          prev: index - 1, next: index + 1, id: -1, frozen: frozen))
            position += length
        }
        scratch.symbols[scratch.symbols.count - 1].next = -1

        let checksUnused = hasUnusedPieces
        scratch.symbols.withUnsafeMutableBufferPointer { symbols in
            func addCandidate(_ left: Int32, _ right: Int32) {
                guard left >= 0, right >= 0 else { return }
                let l = symbols[Int(left)], r = symbols[Int(right)]
                if l.frozen || r.frozen { return }
                let span = UnsafeBufferPointer(rebasing: text[Int(l.start)..<Int(r.end)])
                guard let id = normalPieces.lookup(span) else { return }
                scratch.agenda.push(Candidate(score: scores[Int(id)], left: left, right: right, size: Int32(span.count), id: id))
                if checksUnused && types[Int(id)] == .unused {
                    scratch.reverseMerges[Array(span)] = (Array(text[Int(l.start)..<Int(l.end)]), Array(text[Int(r.start)..<Int(r.end)]))
                }
            }

            for i in 1..<max(symbols.count, 1) { addCandidate(Int32(i - 1), Int32(i)) }

            while let top = scratch.agenda.pop() {
                let left = Int(top.left), right = Int(top.right)
                let l = symbols[left], r = symbols[right]
                // Skip candidates made stale by an earlier merge.
                if l.start == l.end || r.start == r.end || (l.end - l.start) + (r.end - r.start) != top.size
                    || l.next != top.right {
                    continue
                }
                symbols[left].end = r.end
                symbols[left].next = r.next
                symbols[left].id = top.id
                if r.next >= 0 { symbols[Int(r.next)].prev = top.left }
                symbols[right].start = r.end  // empty: merged away
                symbols[right].end = r.end
                addCandidate(l.prev, top.left)
                addCandidate(top.left, r.next)
            }
        }

        var index: Int32 = 0
        while index >= 0 {
            let symbol = scratch.symbols[Int(index)]
            emit(UnsafeBufferPointer(rebasing: text[Int(symbol.start)..<Int(symbol.end)]), knownID: symbol.id, &scratch, into: &ids)
            index = symbol.next
        }
    }

    /// Appends the id(s) of a final symbol: its piece, the pieces an unused piece was merged from,
    /// its bytes (byte fallback) or the unknown id (runs of unknowns give one id).
    private func emit(_ bytes: UnsafeBufferPointer<UInt8>, knownID: Int32, _ scratch: inout Scratch, into ids: inout [Int]) {
        if let id = knownID >= 0 ? knownID : normalPieces.lookup(bytes) {
            if hasUnusedPieces && types[Int(id)] == .unused, let parts = scratch.reverseMerges[Array(bytes)] {
                parts.0.withUnsafeBufferPointer { emit($0, knownID: -1, &scratch, into: &ids) }
                parts.1.withUnsafeBufferPointer { emit($0, knownID: -1, &scratch, into: &ids) }
                return
            }
            ids.append(Int(id))
            scratch.previousWasUnknown = false
        } else if model.byteFallback {
            for byte in bytes { ids.append(Int(byteIDs[Int(byte)])) }
            scratch.previousWasUnknown = false
        } else {
            if !scratch.previousWasUnknown, let unk = unknownTokenID { ids.append(unk) }
            scratch.previousWasUnknown = true
        }
    }

    // MARK: Decoding

    /// sentencepiece's DecodeIds. With `skipSpecialTokens: false`, control pieces are written as
    /// their text (like transformers) instead of being dropped. Ids out of range are ignored.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var text: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var expectsLeadingSpace = true
        var leadingSpaceSeen = false
        let stripsLeadingSpace = model.addDummyPrefix || model.removeExtraWhitespaces

        for id in ids where id >= 0 && id < vocabularySize {
            if types[id] == .byte {
                if let value = Self.byteValue(ofPiece: model.pieces[id].text) { pendingBytes.append(UInt8(value)) }
                continue
            }
            appendDecodedBytes(pendingBytes, to: &text)
            pendingBytes.removeAll(keepingCapacity: true)
            if leadingSpaceSeen || !text.isEmpty { expectsLeadingSpace = false }
            leadingSpaceSeen = false
            switch types[id] {
            case .control:
                if !skipSpecialTokens { text.append(contentsOf: pieceBytes[id]) }
            case .unknown:
                text.append(contentsOf: Array(model.unkSurface.utf8))
            default:
                var piece = pieceBytes[id][...]
                if expectsLeadingSpace && stripsLeadingSpace && piece.starts(with: Self.spaceSymbol) {
                    piece = piece.dropFirst(Self.spaceSymbol.count)
                    leadingSpaceSeen = !model.removeExtraWhitespaces
                }
                appendReplacingSpaceSymbols(piece, to: &text)
            }
        }
        appendDecodedBytes(pendingBytes, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// A piece after other pieces: ▁ as a space, a byte piece its byte, the unknown piece
    /// its surface text; nil for control pieces.
    public func tokenBytes(_ id: Int) -> [UInt8]? {
        guard id >= 0 && id < vocabularySize else { return nil }
        switch types[id] {
        case .control: return nil
        case .byte: return Self.byteValue(ofPiece: model.pieces[id].text).map { [UInt8($0)] }
        case .unknown: return Array(model.unkSurface.utf8)
        default:
            var bytes: [UInt8] = []
            appendReplacingSpaceSymbols(pieceBytes[id][...], to: &bytes)
            return bytes
        }
    }

    private func appendReplacingSpaceSymbols(_ piece: ArraySlice<UInt8>, to text: inout [UInt8]) {
        var i = piece.startIndex
        while i < piece.endIndex {
            if piece[i] == 0xE2 && i + 2 < piece.endIndex && piece[i + 1] == 0x96 && piece[i + 2] == 0x81 {
                text.append(UInt8(ascii: " "))
                i += 3
            } else {
                text.append(piece[i])
                i += 1
            }
        }
    }

    /// Byte pieces become UTF-8; each byte that does not start a valid character becomes U+FFFD
    /// (sentencepiece's rule: one replacement character per invalid byte).
    private func appendDecodedBytes(_ bytes: [UInt8], to text: inout [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            if let length = validUTF8SequenceLength(bytes, at: offset) {
                text.append(contentsOf: bytes[offset..<(offset + length)])
                offset += length
            } else {
                text.append(contentsOf: [0xEF, 0xBF, 0xBD])
                offset += 1
            }
        }
    }
}

/// The length of a UTF-8 sequence from its lead byte (1 for bytes that cannot lead one).
@inline(__always)
func utf8Length(leadByte: UInt8) -> Int {
    if leadByte < 0x80 { return 1 }
    if leadByte >> 5 == 0b110 { return 2 }
    if leadByte >> 4 == 0b1110 { return 3 }
    if leadByte >> 3 == 0b11110 { return 4 }
    return 1
}

/// The length of the well-formed UTF-8 character at `offset` (shortest form, no surrogates,
/// at most U+10FFFF), or nil when the bytes there do not form one.
func validUTF8SequenceLength(_ bytes: [UInt8], at offset: Int) -> Int? {
    let lead = bytes[offset]
    let length = utf8Length(leadByte: lead)
    if length == 1 { return lead < 0x80 ? 1 : nil }
    guard offset + length <= bytes.count else { return nil }
    var codePoint = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
    for i in 1..<length {
        let byte = bytes[offset + i]
        guard byte & 0xC0 == 0x80 else { return nil }
        codePoint = (codePoint << 6) | UInt32(byte & 0x3F)
    }
    let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
    guard codePoint >= minimum, codePoint <= 0x10FFFF, !(0xD800...0xDFFF).contains(codePoint) else { return nil }
    return length
}
