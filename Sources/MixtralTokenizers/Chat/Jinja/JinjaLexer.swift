/// The two lexing steps of a template: source into text and tags (with Jinja's
/// whitespace control), and a tag's expression into tokens. JinjaParser builds the tree.
enum JinjaLexer {
    /// A piece of template source: text, or a tag with its content.
    struct Piece {
        enum Kind { case text, expression, statement, comment }
        var kind: Kind
        var content: String
        var line: Int
        var stripBefore = false     // "{%-": strip whitespace before the tag
        var noLstrip = false        // "{%+": disable lstrip_blocks
        var stripAfter = false      // "-%}": strip whitespace after the tag
        var noTrim = false          // "+%}": disable trim_blocks
    }

    /// Splits a template into text and tags, then applies Jinja's whitespace control with
    /// transformers' settings (trim_blocks=True, lstrip_blocks=True).
    static func splitTemplate(_ source: String) throws -> [Piece] {
        let scalars = Array(source.unicodeScalars)
        var pieces: [Piece] = []
        var textStart = 0
        var i = 0
        var line = 1
        var textLine = 1

        func string(_ range: Range<Int>) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }

        while i < scalars.count {
            if scalars[i] == "{", i + 1 < scalars.count, ["{", "%", "#"].contains(scalars[i + 1]) {
                let opener = scalars[i + 1]
                let closer: Unicode.Scalar = opener == "{" ? "}" : opener
                if i > textStart { pieces.append(Piece(kind: .text, content: string(textStart..<i), line: textLine)) }
                var piece = Piece(kind: opener == "{" ? .expression : opener == "%" ? .statement : .comment,
                                          content: "", line: line)
                var j = i + 2
                if j < scalars.count && scalars[j] == "-" { piece.stripBefore = true; j += 1 }
                else if j < scalars.count && scalars[j] == "+" { piece.noLstrip = true; j += 1 }
                let contentStart = j
                // Find the closer, skipping string literals inside expressions and statements.
                var quote: Unicode.Scalar? = nil
                var found = false
                while j + 1 < scalars.count {
                    let c = scalars[j]
                    if piece.kind != .comment {
                        if let q = quote {
                            if c == "\\" { j += 2; continue }
                            if c == q { quote = nil }
                            if c == "\n" { line += 1 }
                            j += 1
                            continue
                        }
                        if c == "'" || c == "\"" { quote = c; j += 1; continue }
                    }
                    if c == "\n" { line += 1 }
                    if c == closer && scalars[j + 1] == "}" {
                        found = true
                        break
                    }
                    j += 1
                }
                guard found else {
                    throw ChatTemplateError.syntax("unclosed tag starting with '{\(Character(opener))'", line: piece.line)
                }
                var contentEnd = j
                if contentEnd > contentStart && scalars[contentEnd - 1] == "-" { piece.stripAfter = true; contentEnd -= 1 }
                else if contentEnd > contentStart && scalars[contentEnd - 1] == "+" { piece.noTrim = true; contentEnd -= 1 }
                piece.content = string(contentStart..<max(contentStart, contentEnd))
                pieces.append(piece)
                i = j + 2
                textStart = i
                textLine = line
                continue
            }
            if scalars[i] == "\n" { line += 1 }
            i += 1
        }
        if textStart < scalars.count { pieces.append(Piece(kind: .text, content: string(textStart..<scalars.count), line: textLine)) }

        // Whitespace control on text pieces.
        for index in pieces.indices where pieces[index].kind == .text {
            let text = Array(pieces[index].content.unicodeScalars)
            var start = 0
            var end = text.count
            if index > 0 {
                let previous = pieces[index - 1]
                if previous.stripAfter {
                    while start < end && text[start].properties.isWhitespace { start += 1 }
                } else if previous.kind == .statement || previous.kind == .comment, !previous.noTrim {
                    // trim_blocks: the first newline after a block tag is removed.
                    if start < end && text[start] == "\n" { start += 1 }
                    else if start + 1 < end && text[start] == "\r" && text[start + 1] == "\n" { start += 2 }
                }
            }
            if index + 1 < pieces.count {
                let next = pieces[index + 1]
                if next.stripBefore {
                    while end > start && text[end - 1].properties.isWhitespace { end -= 1 }
                } else if next.kind == .statement || next.kind == .comment, !next.noLstrip {
                    // lstrip_blocks: spaces and tabs between a line start and a block tag are removed.
                    var k = text.count
                    while k > 0 && (text[k - 1] == " " || text[k - 1] == "\t") { k -= 1 }
                    let atLineStart = (k > 0 && text[k - 1] == "\n") || (k == 0 && index == 0)
                    if atLineStart { end = min(end, max(k, start)) }
                }
            }
            var view = String.UnicodeScalarView()
            if start < end { view.append(contentsOf: text[start..<end]) }
            pieces[index].content = String(view)
        }
        return pieces.filter { $0.kind != .comment }
    }

    struct Token {
        enum Kind: Equatable { case name, string, integer, float, op, end }
        var kind: Kind
        var text: String
    }

    static func tokenize(_ source: String, line: Int) throws -> [Token] {
        let scalars = Array(source.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        let operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                         "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"]
        while i < scalars.count {
            let c = scalars[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var value = String.UnicodeScalarView()
                var j = i + 1
                var closed = false
                while j < scalars.count {
                    let d = scalars[j]
                    if d == c { closed = true; break }
                    if d == "\\" && j + 1 < scalars.count {
                        let e = scalars[j + 1]
                        j += 2
                        switch e {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "0": value.append("\0")
                        case "\\", "'", "\"": value.append(e)
                        case "u", "x":
                            let count = e == "u" ? 4 : 2
                            guard j + count <= scalars.count,
                                  let code = UInt32(String(String.UnicodeScalarView(scalars[j..<(j + count)])), radix: 16),
                                  let scalar = Unicode.Scalar(code) else {
                                throw ChatTemplateError.syntax("invalid \\\(e) escape in string literal", line: line)
                            }
                            value.append(scalar)
                            j += count
                        default:
                            value.append("\\")
                            value.append(e)
                        }
                        continue
                    }
                    value.append(d)
                    j += 1
                }
                guard closed else { throw ChatTemplateError.syntax("unterminated string literal", line: line) }
                tokens.append(Token(kind: .string, text: String(value)))
                i = j + 1
                continue
            }
            if c.properties.numericType != nil && c.isASCII {
                var j = i
                var isFloat = false
                while j < scalars.count && (scalars[j].isASCII && scalars[j].properties.numericType != nil || scalars[j] == "_") { j += 1 }
                if j + 1 < scalars.count && scalars[j] == "." && scalars[j + 1].isASCII && scalars[j + 1].properties.numericType != nil {
                    isFloat = true
                    j += 1
                    while j < scalars.count && scalars[j].isASCII && scalars[j].properties.numericType != nil { j += 1 }
                }
                if j < scalars.count && (scalars[j] == "e" || scalars[j] == "E") {
                    var k = j + 1
                    if k < scalars.count && (scalars[k] == "+" || scalars[k] == "-") { k += 1 }
                    if k < scalars.count && scalars[k].isASCII && scalars[k].properties.numericType != nil {
                        isFloat = true
                        j = k
                        while j < scalars.count && scalars[j].isASCII && scalars[j].properties.numericType != nil { j += 1 }
                    }
                }
                let text = String(String.UnicodeScalarView(scalars[i..<j])).filter { $0 != "_" }
                tokens.append(Token(kind: isFloat ? .float : .integer, text: text))
                i = j
                continue
            }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while j < scalars.count && (scalars[j] == "_" || scalars[j].properties.isAlphabetic
                                            || (scalars[j].isASCII && scalars[j].properties.numericType != nil)) { j += 1 }
                tokens.append(Token(kind: .name, text: String(String.UnicodeScalarView(scalars[i..<j]))))
                i = j
                continue
            }
            var matched = false
            for op in operators {
                let opScalars = Array(op.unicodeScalars)
                if i + opScalars.count <= scalars.count && Array(scalars[i..<(i + opScalars.count)]) == opScalars {
                    tokens.append(Token(kind: .op, text: op))
                    i += opScalars.count
                    matched = true
                    break
                }
            }
            if !matched { throw ChatTemplateError.syntax("unexpected character '\(Character(c))'", line: line) }
        }
        tokens.append(Token(kind: .end, text: ""))
        return tokens
    }
}
