import Foundation

/// A pattern of tokenizer.json (`{"String": ...}` or `{"Regex": ...}`), matched on Strings.
///
/// Regexes run on ICU (NSRegularExpression); tokenizers runs them on Oniguruma. Their shorthand
/// classes differ: Oniguruma's `\s` is the Unicode White_Space property (ICU's lacks U+000B and
/// U+0085) and its `\w` is letters, marks, decimal digits and connector punctuation (ICU's adds
/// other alphabetic characters and U+200C/U+200D). The shorthands are rewritten to Oniguruma's
/// definitions before compiling (nested sets are valid ICU inside brackets too).
struct TextPattern: @unchecked Sendable {
    // NSRegularExpression is immutable and documented as thread-safe.
    enum Kind {
        case literal([UInt8])
        case regex(NSRegularExpression)
    }

    let kind: Kind
    let source: String

    init(literal: String) {
        kind = .literal(Array(literal.utf8))
        source = literal
    }

    init(regex: String, file: String) throws {
        do {
            kind = .regex(try NSRegularExpression(pattern: Self.translateToICU(regex), options: []))
        } catch {
            throw TokenizerError.unsupported(file: file, feature: "regular expression \(regex.debugDescription) (\(error))")
        }
        source = regex
    }

    /// Parses `{"String": "..."}` / `{"Regex": "..."}`.
    init(json: JSONValue?, file: String) throws {
        if let literal = json?["String"]?.stringValue {
            self.init(literal: literal)
        } else if let regex = json?["Regex"]?.stringValue {
            try self.init(regex: regex, file: file)
        } else {
            throw TokenizerError.malformed(file: file, reason: "pattern is neither String nor Regex")
        }
    }

    static func translateToICU(_ pattern: String) -> String {
        var out = ""
        var escaped = false
        for ch in pattern {
            if escaped {
                switch ch {
                case "s": out += "\\p{White_Space}"
                case "S": out += "\\P{White_Space}"
                case "w": out += "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]"
                case "W": out += "[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]"
                case "d": out += "\\p{Nd}"
                case "D": out += "\\P{Nd}"
                default: out += "\\" + String(ch)
                }
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else {
                out.append(ch)
            }
        }
        if escaped { out += "\\" }
        return out
    }

    /// The non-overlapping matches, left to right, as UTF-8 byte ranges of `text`.
    func matches(in text: String) throws(TokenizerError) -> [Range<Int>] {
        switch kind {
        case .literal(let needle):
            return Self.literalMatches(of: needle, in: text)
        case .regex(let regex):
            // ICU reports progress once per start position it tries (at most one per UTF-16
            // unit and match) and once per 10,000 backtracking steps. A pattern such as
            // (a+)+$ takes exponential time on some inputs; like tokenizers, whose Oniguruma
            // stops at a retry limit, the match gives up with an error past a step budget
            // that grows with the input: about 1,000 steps per character.
            var utf16Ranges: [NSRange] = []
            var progressReports = 0
            let length = text.utf16.count
            let budget = (length + 1) + 2_000 + length / 10
            regex.enumerateMatches(in: text, options: [.reportProgress],
                                   range: NSRange(location: 0, length: text.utf16.count)) { result, _, stop in
                if let result {
                    if result.range.length > 0 { utf16Ranges.append(result.range) }
                    return
                }
                progressReports += 1
                if progressReports > budget { stop.pointee = true }
            }
            guard progressReports <= budget else {
                throw TokenizerError.patternTooComplex(pattern: source, inputLength: text.utf8.count)
            }
            guard !utf16Ranges.isEmpty else { return [] }
            // Convert UTF-16 offsets to UTF-8 offsets in one pass.
            var result: [Range<Int>] = []
            result.reserveCapacity(utf16Ranges.count)
            var utf16Offset = 0
            var utf8Offset = 0
            var scalars = text.unicodeScalars.makeIterator()
            func advance(to target: Int) {
                while utf16Offset < target, let scalar = scalars.next() {
                    utf16Offset += scalar.utf16.count
                    utf8Offset += scalar.utf8.count
                }
            }
            for range in utf16Ranges {
                advance(to: range.location)
                let start = utf8Offset
                advance(to: range.location + range.length)
                result.append(start..<utf8Offset)
            }
            return result
        }
    }

    /// The non-overlapping occurrences of `needle`, left to right, as UTF-8 byte ranges.
    static func literalMatches(of needle: [UInt8], in text: String) -> [Range<Int>] {
        guard !needle.isEmpty else { return [] }
        var result: [Range<Int>] = []
        let haystack = Array(text.utf8)
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) {
                result.append(i..<(i + needle.count))
                i += needle.count
            } else {
                i += 1
            }
        }
        return result
    }

    /// Replaces every match by `replacement` (literally, no template syntax).
    func replacingMatches(in text: String, with replacement: String) throws(TokenizerError) -> String {
        Self.replacing(try matches(in: text), in: text, with: replacement)
    }

    static func replacing(_ ranges: [Range<Int>], in text: String, with replacement: String) -> String {
        if ranges.isEmpty { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var last = 0
        for range in ranges {
            out.append(contentsOf: bytes[last..<range.lowerBound])
            out.append(contentsOf: replacement.utf8)
            last = range.upperBound
        }
        out.append(contentsOf: bytes[last...])
        return String(decoding: out, as: UTF8.self)
    }
}
