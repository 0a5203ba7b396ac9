/// tokenizer.json decoders: each maps the list of token strings to a new list (`decode_chain`),
/// and the results are concatenated.
indirect enum HFDecoder: Sendable {
    case sequence([HFDecoder])
    case replace(TextPattern, String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    case byteLevel

    init(json: JSONValue, file: String) throws {
        guard let type = json["type"]?.stringValue else {
            throw TokenizerError.malformed(file: file, reason: "decoder without a type")
        }
        switch type {
        case "Sequence":
            self = .sequence(try (json["decoders"]?.arrayValue ?? []).map { try HFDecoder(json: $0, file: file) })
        case "Replace":
            self = .replace(try TextPattern(json: json["pattern"], file: file), json["content"]?.stringValue ?? "")
        case "ByteFallback":
            self = .byteFallback
        case "Fuse":
            self = .fuse
        case "Strip":
            guard let content = json["content"]?.stringValue?.unicodeScalars.first else {
                throw TokenizerError.malformed(file: file, reason: "Strip decoder without content")
            }
            self = .strip(content: content, start: json["start"]?.intValue ?? 0, stop: json["stop"]?.intValue ?? 0)
        case "Metaspace":
            guard let replacement = (json["replacement"]?.stringValue ?? "\u{2581}").unicodeScalars.first else {
                throw TokenizerError.malformed(file: file, reason: "Metaspace decoder without replacement")
            }
            var scheme = PrependScheme.always
            if let name = json["prepend_scheme"]?.stringValue {
                guard let parsed = PrependScheme(rawValue: name) else {
                    throw TokenizerError.unsupported(file: file, feature: "Metaspace prepend_scheme \(name)")
                }
                scheme = parsed
            } else if json["add_prefix_space"]?.boolValue == false {
                scheme = .never
            }
            self = .metaspace(replacement: replacement, prependScheme: scheme)
        case "ByteLevel":
            self = .byteLevel
        default:
            throw TokenizerError.unsupported(file: file, feature: "decoder \(type)")
        }
    }

    /// What the chain makes of one token that follows others, as bytes: byte tokens and
    /// byte-level characters become their bytes (not yet grouped into characters), a
    /// metaspace marker a space; Strip applies per token unless Fuse joined the tokens
    /// first (then it trims the whole text's ends, not a middle token).
    func middleTokenBytes(_ token: String) -> [UInt8] {
        enum Piece { case text(String), bytes([UInt8]) }
        var fused = false
        func apply(_ decoder: HFDecoder, _ piece: Piece) -> Piece {
            switch (decoder, piece) {
            case (.sequence(let items), _):
                return items.reduce(piece) { apply($1, $0) }
            case (.replace, .text(let text)), (.strip, .text(let text)):
                if case .strip = decoder, fused { return piece }
                return .text(decoder.decodeChain([text]).first ?? "")
            case (.byteFallback, .text(let text)):
                return Self.byteValue(text).map { .bytes([$0]) } ?? piece
            case (.fuse, _):
                fused = true
                return piece
            case (.metaspace(let replacement, _), .text(let text)):
                return .text(String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == replacement ? " " : $0 })))
            case (.byteLevel, .text(let text)):
                return .bytes(ByteLevel.decodeBytes(text) ?? Array(text.utf8))
            default:
                return piece  // bytes pass the text-level decoders unchanged
            }
        }
        switch apply(self, .text(token)) {
        case .text(let text): return Array(text.utf8)
        case .bytes(let bytes): return bytes
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let items):
            return items.reduce(tokens) { $1.decodeChain($0) }
        case .replace(let pattern, let content):
            // Decoding cannot fail; a token on which the pattern exceeds its step budget
            // (a hostile file) is left as it is.
            return tokens.map { (try? pattern.replacingMatches(in: $0, with: content)) ?? $0 }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    out.append(text)
                } else {
                    // tokenizers: one U+FFFD per byte when the group is not valid UTF-8.
                    out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = Self.byteValue(token) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var scalars = Array(token.unicodeScalars)
                var startCut = 0
                while startCut < min(start, scalars.count) && scalars[startCut] == content { startCut += 1 }
                var stopCut = scalars.count
                var removed = 0
                while removed < min(stop, scalars.count - startCut) && scalars[stopCut - 1] == content {
                    stopCut -= 1
                    removed += 1
                }
                scalars = Array(scalars[startCut..<stopCut])
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars)
                return String(view)
            }
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { index, token in
                var view = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        // tokenizers drops every replacement character of the first token.
                        if index == 0 && scheme != .never { continue }
                        view.append(" ")
                    } else {
                        view.append(scalar)
                    }
                }
                return String(view)
            }
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                if let decoded = ByteLevel.decodeBytes(token) {
                    bytes.append(contentsOf: decoded)
                } else {
                    bytes.append(contentsOf: token.utf8)
                }
            }
            // Like Rust's String::from_utf8_lossy: each maximal invalid subsequence -> U+FFFD.
            return [String(decoding: bytes, as: UTF8.self)]
        }
    }

    static func byteValue(_ token: String) -> UInt8? {
        let utf8 = token.utf8
        guard utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        let digits = Array(utf8)[3..<5]
        return UInt8(String(decoding: digits, as: UTF8.self), radix: 16)
    }
}
