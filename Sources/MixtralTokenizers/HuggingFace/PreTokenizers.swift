import Foundation

/// A piece of text between pre-tokenization steps. `startsAtOrigin`: the piece begins at offset 0
/// of the original input (Metaspace's prepend_scheme "first" only prepends there).
struct PreTokenizedPiece {
    var text: String
    var startsAtOrigin: Bool
}

enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

enum PrependScheme: String, Sendable {
    case always, first, never
}

/// tokenizer.json pre-tokenizers.
indirect enum HFPreTokenizer: Sendable {
    case sequence([HFPreTokenizer])
    case metaspace(replacement: String, prependScheme: PrependScheme, split: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TextPattern, SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case whitespaceSplit
    case whitespace(TextPattern)

    /// GPT-2's pre-tokenization regex, used by ByteLevel with use_regex.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    init(json: JSONValue, file: String) throws {
        guard let type = json["type"]?.stringValue else {
            throw TokenizerError.malformed(file: file, reason: "pre_tokenizer without a type")
        }
        switch type {
        case "Sequence":
            let items = json["pretokenizers"]?.arrayValue ?? []
            self = .sequence(try items.map { try HFPreTokenizer(json: $0, file: file) })
        case "Metaspace":
            let replacement = json["replacement"]?.stringValue ?? "\u{2581}"
            var scheme = PrependScheme.always
            if let name = json["prepend_scheme"]?.stringValue {
                guard let parsed = PrependScheme(rawValue: name) else {
                    throw TokenizerError.unsupported(file: file, feature: "Metaspace prepend_scheme \(name)")
                }
                scheme = parsed
            } else if json["add_prefix_space"]?.boolValue == false {
                scheme = .never
            }
            self = .metaspace(replacement: replacement, prependScheme: scheme, split: json["split"]?.boolValue ?? true)
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: json["add_prefix_space"]?.boolValue ?? true,
                              useRegex: json["use_regex"]?.boolValue ?? true)
        case "Split":
            let behaviorName = json["behavior"]?.stringValue ?? "Removed"
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw TokenizerError.unsupported(file: file, feature: "Split behavior \(behaviorName)")
            }
            self = .split(try TextPattern(json: json["pattern"], file: file), behavior,
                          invert: json["invert"]?.boolValue ?? false)
        case "Digits":
            self = .digits(individual: json["individual_digits"]?.boolValue ?? false)
        case "WhitespaceSplit":
            self = .whitespaceSplit
        case "Whitespace":
            self = .whitespace(try TextPattern(regex: #"\w+|[^\w\s]+"#, file: file))
        default:
            throw TokenizerError.unsupported(file: file, feature: "pre_tokenizer \(type)")
        }
    }

    func preTokenize(_ pieces: [PreTokenizedPiece]) throws -> [PreTokenizedPiece] {
        switch self {
        case .sequence(let items):
            return try items.reduce(pieces) { try $1.preTokenize($0) }
        case .metaspace(let replacement, let scheme, let split):
            return pieces.flatMap { piece -> [PreTokenizedPiece] in
                var text = piece.text.replacingLiteral(" ", with: replacement)
                let prepend: Bool
                switch scheme {
                case .always: prepend = !text.hasPrefixBytes(replacement)
                case .first: prepend = !text.hasPrefixBytes(replacement) && piece.startsAtOrigin
                case .never: prepend = false
                }
                if prepend { text = replacement + text }
                let updated = PreTokenizedPiece(text: text, startsAtOrigin: piece.startsAtOrigin)
                guard split else { return [updated] }
                return Self.split(updated, matches: TextPattern.literalMatches(of: Array(replacement.utf8), in: text),
                                  behavior: .mergedWithNext)
            }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return try pieces.flatMap { piece -> [PreTokenizedPiece] in
                var piece = piece
                if addPrefixSpace && !piece.text.hasPrefixBytes(" ") { piece.text = " " + piece.text }
                let parts = useRegex
                    ? Self.split(piece, matches: try ByteLevel.gpt2Regex.matches(in: piece.text), behavior: .isolated)
                    : [piece]
                return parts.map { PreTokenizedPiece(text: ByteLevel.encode($0.text), startsAtOrigin: $0.startsAtOrigin) }
            }
        case .split(let pattern, let behavior, let invert):
            return try pieces.flatMap { piece in
                var matches = try pattern.matches(in: piece.text)
                if invert { matches = Self.complement(matches, length: piece.text.utf8.count) }
                return Self.split(piece, matches: matches, behavior: behavior)
            }
        case .digits(let individual):
            return pieces.flatMap { piece in
                Self.split(piece, matches: Self.scalarRuns(in: piece.text, individually: individual) { $0.isNumericForRust },
                           behavior: individual ? .isolated : .contiguous)
            }
        case .whitespaceSplit:
            return pieces.flatMap { piece in
                Self.split(piece, matches: Self.scalarRuns(in: piece.text, individually: false) { $0.properties.isWhitespace },
                           behavior: .removed)
            }
        case .whitespace(let pattern):
            return try pieces.flatMap { piece in
                Self.split(piece, matches: Self.complement(try pattern.matches(in: piece.text), length: piece.text.utf8.count),
                           behavior: .removed)
            }
        }
    }

    /// Byte ranges of scalars satisfying `predicate` (each alone, or runs of them).
    static func scalarRuns(in text: String, individually: Bool, where predicate: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var offset = 0
        for scalar in text.unicodeScalars {
            let length = scalar.utf8.count
            if predicate(scalar) {
                if !individually, let last = ranges.last, last.upperBound == offset {
                    ranges[ranges.count - 1] = last.lowerBound..<(offset + length)
                } else {
                    ranges.append(offset..<(offset + length))
                }
            }
            offset += length
        }
        return ranges
    }

    static func complement(_ ranges: [Range<Int>], length: Int) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var last = 0
        for range in ranges {
            if range.lowerBound > last { result.append(last..<range.lowerBound) }
            last = range.upperBound
        }
        if last < length { result.append(last..<length) }
        return result
    }

    /// tokenizers' NormalizedString::split: `matches` are the delimiter ranges.
    static func split(_ piece: PreTokenizedPiece, matches: [Range<Int>], behavior: SplitBehavior) -> [PreTokenizedPiece] {
        let bytes = Array(piece.text.utf8)
        // (range, isMatch) covering the whole text.
        var parts: [(Range<Int>, Bool)] = []
        var last = 0
        for match in matches {
            if match.lowerBound > last { parts.append((last..<match.lowerBound, false)) }
            parts.append((match, true))
            last = match.upperBound
        }
        if last < bytes.count { parts.append((last..<bytes.count, false)) }

        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            ranges = parts.filter { !$0.1 }.map(\.0)
        case .isolated:
            ranges = parts.map(\.0)
        case .contiguous:
            var previousWasMatch = false
            for (range, isMatch) in parts {
                if isMatch && previousWasMatch, let lastRange = ranges.last {
                    ranges[ranges.count - 1] = lastRange.lowerBound..<range.upperBound
                } else {
                    ranges.append(range)
                }
                previousWasMatch = isMatch
            }
        case .mergedWithPrevious:
            var previousWasMatch = false
            for (range, isMatch) in parts {
                if isMatch && !previousWasMatch, let lastRange = ranges.last {
                    ranges[ranges.count - 1] = lastRange.lowerBound..<range.upperBound
                } else {
                    ranges.append(range)
                }
                previousWasMatch = isMatch
            }
        case .mergedWithNext:
            var previousWasMatch = false
            for (range, isMatch) in parts {
                if !isMatch && previousWasMatch, let lastRange = ranges.last {
                    ranges[ranges.count - 1] = lastRange.lowerBound..<range.upperBound
                } else {
                    ranges.append(range)
                }
                previousWasMatch = isMatch
            }
        }
        return ranges.filter { !$0.isEmpty }.map { range in
            PreTokenizedPiece(text: String(decoding: bytes[range], as: UTF8.self),
                              startsAtOrigin: piece.startsAtOrigin && range.lowerBound == 0)
        }
    }
}

extension Unicode.Scalar {
    /// Rust's char::is_numeric: general categories Nd, Nl and No.
    var isNumericForRust: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}

extension String {
    /// Byte-wise prefix test (String.hasPrefix compares canonically equivalent characters).
    func hasPrefixBytes(_ prefix: String) -> Bool {
        utf8.starts(with: prefix.utf8)
    }

    /// Byte-wise literal replacement.
    func replacingLiteral(_ target: String, with replacement: String) -> String {
        TextPattern.replacing(TextPattern.literalMatches(of: Array(target.utf8), in: self), in: self, with: replacement)
    }
}

/// GPT-2's byte <-> printable character mapping.
enum ByteLevel {
    static let gpt2Regex: TextPattern = {
        // The pattern is a constant known to compile.
        (try? TextPattern(regex: HFPreTokenizer.gpt2Pattern, file: "ByteLevel")) ?? TextPattern(literal: "")
    }()

    /// byte -> scalar.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in byteToScalar.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    static func encode(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in text.utf8 { scalars.append(byteToScalar[Int(byte)]) }
        return String(scalars)
    }

    /// The bytes a byte-level token stands for, or nil when a character is outside the mapping.
    static func decodeBytes(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for scalar in token.unicodeScalars {
            guard let byte = scalarToByte[scalar.value] else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
