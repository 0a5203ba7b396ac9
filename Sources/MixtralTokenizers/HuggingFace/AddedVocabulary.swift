/// An entry of tokenizer.json's `added_tokens`.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var singleWord: Bool
    public var normalized: Bool

    public init(id: Int, content: String, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
                singleWord: Bool = false, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.normalized = normalized
    }
}

/// A segment of input text: either a matched added token or text for the model.
enum TextSegment {
    case token(Int)
    /// Text, and whether it starts at offset 0 of the original input.
    case text(String, startsAtOrigin: Bool)
}

/// Finds added tokens in text, leftmost first and longest at a position (tokenizers uses
/// Aho-Corasick with LeftmostLongest), honouring lstrip / rstrip / single_word.
struct AddedTokenMatcher: Sendable {
    private struct Node: Sendable {
        var children: [UInt8: Int32] = [:]
        var tokenIndex: Int32 = -1
    }

    private var nodes: [Node] = [Node()]
    let tokens: [AddedToken]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        for (index, token) in tokens.enumerated() where !token.content.isEmpty {
            var node = 0
            for byte in token.content.utf8 {
                if let child = nodes[node].children[byte] {
                    node = Int(child)
                } else {
                    nodes.append(Node())
                    nodes[node].children[byte] = Int32(nodes.count - 1)
                    node = nodes.count - 1
                }
            }
            if nodes[node].tokenIndex < 0 { nodes[node].tokenIndex = Int32(index) }
        }
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Splits `text` (a segment starting at the origin when `startsAtOrigin`) around added tokens.
    func split(_ text: String, startsAtOrigin: Bool) -> [TextSegment] {
        if tokens.isEmpty { return [.text(text, startsAtOrigin: startsAtOrigin)] }
        let bytes = Array(text.utf8)
        var matches: [(range: Range<Int>, id: Int)] = []
        var position = 0
        while position < bytes.count {
            // Longest token starting at `position`.
            var node = 0
            var best: (length: Int, index: Int)? = nil
            var i = position
            while i < bytes.count, let child = nodes[node].children[bytes[i]] {
                node = Int(child)
                i += 1
                if nodes[node].tokenIndex >= 0 { best = (i - position, Int(nodes[node].tokenIndex)) }
            }
            guard let (length, index) = best else {
                position += 1
                continue
            }
            let token = tokens[index]
            var start = position, end = position + length
            if token.singleWord {
                let before = start > 0 ? Self.scalar(endingAt: start, in: bytes) : nil
                let after = end < bytes.count ? Self.scalar(startingAt: end, in: bytes) : nil
                if before.map(Self.isWordCharacter) == true || after.map(Self.isWordCharacter) == true {
                    position += 1
                    continue
                }
            }
            if token.lstrip {
                let floor = matches.last?.range.upperBound ?? 0
                while start > floor, let scalar = Self.scalar(endingAt: start, in: bytes), scalar.properties.isWhitespace {
                    start -= scalar.utf8.count
                }
            }
            if token.rstrip {
                while end < bytes.count, let scalar = Self.scalar(startingAt: end, in: bytes), scalar.properties.isWhitespace {
                    end += scalar.utf8.count
                }
            }
            matches.append((start..<end, token.id))
            position = end
        }
        var segments: [TextSegment] = []
        var last = 0
        for match in matches {
            if match.range.lowerBound > last {
                segments.append(.text(String(decoding: bytes[last..<match.range.lowerBound], as: UTF8.self),
                                      startsAtOrigin: startsAtOrigin && last == 0))
            }
            segments.append(.token(match.id))
            last = match.range.upperBound
        }
        if last < bytes.count {
            segments.append(.text(String(decoding: bytes[last...], as: UTF8.self), startsAtOrigin: startsAtOrigin && last == 0))
        }
        return segments
    }

    private static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isAlphabetic || scalar.properties.numericType != nil || scalar == "_"
    }

    private static func scalar(startingAt offset: Int, in bytes: [UInt8]) -> Unicode.Scalar? {
        let length = utf8Length(leadByte: bytes[offset])
        guard offset + length <= bytes.count else { return nil }
        return String(decoding: bytes[offset..<(offset + length)], as: UTF8.self).unicodeScalars.first
    }

    private static func scalar(endingAt offset: Int, in bytes: [UInt8]) -> Unicode.Scalar? {
        var start = offset - 1
        while start > 0 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return String(decoding: bytes[start..<offset], as: UTF8.self).unicodeScalars.first
    }
}
