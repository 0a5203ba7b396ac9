/// The BPE model of tokenizer.json (tokenizers' `models::bpe`): merges applied by rank (lowest
/// first, leftmost first on ties), byte fallback to `<0xXX>` tokens, unknown-token fusing, and
/// `ignore_merges` (a word that is itself in the vocabulary is one token).
struct BPEModel: Sendable {
    let vocabulary: ByteStringTable
    /// id -> token text (nil for ids the vocabulary does not define).
    let tokens: [String?]
    /// (left id << 32 | right id) -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unknownID: Int32?
    let fuseUnknown: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    /// byte -> id of "<0xXX>" (-1 when absent).
    let byteIDs: [Int32]
    /// "▁" is a token and no token has "▁" after another character (see `tokenize`).
    /// Tests switch it off to compare both paths.
    var spaceRunsAreBoundaries: Bool

    init(vocabulary entries: [(String, Int)], merges mergePairs: [(String, String)], unknownToken: String?,
         fuseUnknown: Bool, byteFallback: Bool, ignoreMerges: Bool,
         continuingSubwordPrefix: String?, endOfWordSuffix: String?, file: String) throws {
        // Ids index a dense table (and are 32-bit in the BPE loops): an id far beyond the
        // number of entries is a corrupt file, not a reason to allocate gigabytes.
        let idLimit = max(2 * entries.count, 1 << 20)
        for (token, id) in entries where id < 0 || id >= idLimit {
            throw TokenizerError.malformed(
                file: file, reason: "vocab id \(id) of \(messageText(token.debugDescription)) is outside 0..<\(idLimit) (\(entries.count) entries)")
        }
        let maxID = entries.map(\.1).max() ?? -1
        var tokens = [String?](repeating: nil, count: maxID + 1)
        for (token, id) in entries { tokens[id] = token }
        self.tokens = tokens
        vocabulary = ByteStringTable(entries.map { (key: Array($0.0.utf8), value: Int32($0.1)) })
        let prefixLength = continuingSubwordPrefix?.count ?? 0
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(mergePairs.count)
        for (rank, pair) in mergePairs.enumerated() {
            guard let left = vocabulary.lookup(pair.0), let right = vocabulary.lookup(pair.1) else {
                throw TokenizerError.malformed(file: file, reason: "merge \(pair.0.debugDescription) \(pair.1.debugDescription) uses a token outside the vocabulary")
            }
            // The merged token drops the right part's continuing-subword prefix.
            let rightText = prefixLength > 0 && pair.1.hasPrefix(continuingSubwordPrefix ?? "") ? String(pair.1.dropFirst(prefixLength)) : pair.1
            guard let merged = vocabulary.lookup(pair.0 + rightText) else {
                throw TokenizerError.malformed(file: file, reason: "merge result \((pair.0 + rightText).debugDescription) is not in the vocabulary")
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        self.merges = merges
        if let unknownToken {
            guard let id = vocabulary.lookup(unknownToken) else {
                throw TokenizerError.malformed(file: file, reason: "unk_token \(unknownToken.debugDescription) is not in the vocabulary")
            }
            unknownID = id
        } else {
            unknownID = nil
        }
        self.fuseUnknown = fuseUnknown
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = continuingSubwordPrefix?.isEmpty == true ? nil : continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix?.isEmpty == true ? nil : endOfWordSuffix
        var byteIDs = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            let hex = String(byte, radix: 16, uppercase: true)
            let name = "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
            byteIDs[byte] = vocabulary.lookup(name) ?? -1
        }
        self.byteIDs = byteIDs
        spaceRunsAreBoundaries = vocabulary.lookup("\u{2581}") != nil && continuingSubwordPrefix == nil
            && endOfWordSuffix == nil && !entries.contains { token, _ in
                var previous: Unicode.Scalar? = nil
                for scalar in token.unicodeScalars {
                    if scalar == "\u{2581}", let p = previous, p != "\u{2581}" { return true }
                    previous = scalar
                }
                return false
            }
    }

    var size: Int { tokens.count }

    private struct Symbol {
        var id: Int32
        var prev: Int32
        var next: Int32
        var length: Int32  // 0 = merged away
    }

    private struct Merge: Comparable {
        var rank: Int32
        var position: Int32
        var id: Int32
        /// The heap pops the greatest: lowest rank first, then lowest position.
        static func < (a: Merge, b: Merge) -> Bool {
            a.rank > b.rank || (a.rank == b.rank && a.position > b.position)
        }
    }

    /// Token ids for one pre-tokenized word.
    func tokenize(_ word: String, into ids: inout [Int]) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocabulary.lookup(word) {
            ids.append(Int(id))
            return
        }
        guard spaceRunsAreBoundaries else {
            tokenizeSegment(word, into: &ids)
            return
        }
        // No token has "▁" after another character, so no merge crosses the start of a "▁" run:
        // the word can be processed segment by segment with the same result (and small heaps;
        // Metaspace with split=false makes the whole input one word).
        var segmentStart = word.unicodeScalars.startIndex
        var previousWasSpace = false
        var index = segmentStart
        while index < word.unicodeScalars.endIndex {
            let isSpace = word.unicodeScalars[index] == "\u{2581}"
            if isSpace && !previousWasSpace && index > segmentStart {
                tokenizeSegment(String(word.unicodeScalars[segmentStart..<index]), into: &ids)
                segmentStart = index
            }
            previousWasSpace = isSpace
            index = word.unicodeScalars.index(after: index)
        }
        tokenizeSegment(String(word.unicodeScalars[segmentStart...]), into: &ids)
    }

    private func tokenizeSegment(_ word: String, into ids: inout [Int]) {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(word.utf8.count)
        var pendingUnknown: Int32? = nil  // length of a pending (possibly fused) unknown symbol

        func push(_ id: Int32, _ length: Int32) {
            let index = Int32(symbols.count)
            symbols.append(Symbol(id: id, prev: index - 1, next: index + 1, length: length))
        }
        func flushUnknown() {
            if let length = pendingUnknown, let unknownID {
                push(unknownID, length)
            }
            pendingUnknown = nil
        }

        let scalars = Array(word.unicodeScalars)
        for (i, scalar) in scalars.enumerated() {
            var text = String(scalar)
            if i > 0, let prefix = continuingSubwordPrefix { text = prefix + text }
            if i == scalars.count - 1, let suffix = endOfWordSuffix { text += suffix }
            let length = Int32(scalar.utf8.count)
            if let id = vocabulary.lookup(text) {
                flushUnknown()
                push(id, length)
                continue
            }
            if byteFallback {
                let bytes = Array(String(scalar).utf8)
                if bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                    flushUnknown()
                    for byte in bytes { push(byteIDs[Int(byte)], 1) }
                    continue
                }
            }
            // Unknown character.
            if unknownID != nil {
                if fuseUnknown, let pending = pendingUnknown {
                    pendingUnknown = pending + length
                } else {
                    flushUnknown()
                    pendingUnknown = length
                }
            }
        }
        flushUnknown()
        if symbols.isEmpty { return }
        symbols[symbols.count - 1].next = -1

        var queue = BinaryHeap<Merge>()
        queue.reserveCapacity(symbols.count)
        for i in 0..<(symbols.count - 1) {
            if let merge = merges[Self.key(symbols[i].id, symbols[i + 1].id)] {
                queue.push(Merge(rank: merge.rank, position: Int32(i), id: merge.id))
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            let current = symbols[position]
            if current.length == 0 || current.next == -1 { continue }
            let nextPosition = Int(current.next)
            let right = symbols[nextPosition]
            // Stale entry: the pair at this position is no longer the one queued.
            guard let merge = merges[Self.key(current.id, right.id)], merge.id == top.id else { continue }
            symbols[position].id = top.id
            symbols[position].length += right.length
            symbols[position].next = right.next
            symbols[nextPosition].length = 0
            if right.next >= 0 { symbols[Int(right.next)].prev = top.position }
            let updated = symbols[position]
            if updated.prev >= 0, let m = merges[Self.key(symbols[Int(updated.prev)].id, updated.id)] {
                queue.push(Merge(rank: m.rank, position: updated.prev, id: m.id))
            }
            if updated.next >= 0, let m = merges[Self.key(updated.id, symbols[Int(updated.next)].id)] {
                queue.push(Merge(rank: m.rank, position: top.position, id: m.id))
            }
        }
        var index: Int32 = 0
        while index >= 0 {
            ids.append(Int(symbols[Int(index)].id))
            index = symbols[Int(index)].next
        }
    }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }
}
