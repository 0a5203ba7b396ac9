import Foundation

/// tokenizer.json normalizers (the `tokenizers` library's semantics, without offsets).
indirect enum HFNormalizer: Sendable {
    case sequence([HFNormalizer])
    case prepend(String)
    case replace(TextPattern, String)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)

    init(json: JSONValue, file: String) throws {
        guard let type = json["type"]?.stringValue else {
            throw TokenizerError.malformed(file: file, reason: "normalizer without a type")
        }
        switch type {
        case "Sequence":
            let items = json["normalizers"]?.arrayValue ?? []
            self = .sequence(try items.map { try HFNormalizer(json: $0, file: file) })
        case "Prepend":
            self = .prepend(json["prepend"]?.stringValue ?? "")
        case "Replace":
            self = .replace(try TextPattern(json: json["pattern"], file: file), json["content"]?.stringValue ?? "")
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Strip":
            self = .strip(left: json["strip_left"]?.boolValue ?? true, right: json["strip_right"]?.boolValue ?? true)
        default:
            throw TokenizerError.unsupported(file: file, feature: "normalizer \(type)")
        }
    }

    func normalize(_ text: String) throws -> String {
        switch self {
        case .sequence(let items):
            return try items.reduce(text) { try $1.normalize($0) }
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            return try pattern.replacingMatches(in: text, with: content)
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase:
            // Rust's str::to_lowercase is per scalar (no locale), like String.lowercased().
            return text.lowercased()
        case .strip(let left, let right):
            var scalars = Substring.UnicodeScalarView(text.unicodeScalars)
            if left { while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            return String(scalars)
        }
    }
}
