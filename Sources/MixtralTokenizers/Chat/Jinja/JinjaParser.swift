/// Expressions of the supported Jinja subset.
indirect enum JinjaExpression {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpression])
    case dict([(key: JinjaExpression, value: JinjaExpression)])
    case attribute(JinjaExpression, String)
    case `subscript`(JinjaExpression, JinjaExpression)
    case slice(JinjaExpression, start: JinjaExpression?, stop: JinjaExpression?, step: JinjaExpression?)
    case call(JinjaExpression, arguments: [JinjaExpression], keywords: [(String, JinjaExpression)])
    case filter(JinjaExpression, name: String, arguments: [JinjaExpression], keywords: [(String, JinjaExpression)])
    case test(JinjaExpression, name: String, arguments: [JinjaExpression], negated: Bool)
    case not(JinjaExpression)
    case negate(JinjaExpression)
    case binary(String, JinjaExpression, JinjaExpression)
    case and(JinjaExpression, JinjaExpression)
    case or(JinjaExpression, JinjaExpression)
    case conditional(condition: JinjaExpression, then: JinjaExpression, otherwise: JinjaExpression?)
}

enum JinjaSetTarget {
    case names([String])
    case attribute(object: String, attribute: String)
}

/// Statements of the supported Jinja subset.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpression)
    case conditional(branches: [(condition: JinjaExpression, body: [JinjaNode])], otherwise: [JinjaNode])
    case loop(targets: [String], iterable: JinjaExpression, filter: JinjaExpression?, body: [JinjaNode], otherwise: [JinjaNode])
    case set(JinjaSetTarget, JinjaExpression)
    case setBlock(String, [JinjaNode])
    case macro(JinjaMacro)
    case breakLoop
    case continueLoop
}

// MARK: - Template lexer

/// A piece of template source: text, or a tag with its content.
private struct TemplatePiece {
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
private func splitTemplate(_ source: String) throws -> [TemplatePiece] {
    let scalars = Array(source.unicodeScalars)
    var pieces: [TemplatePiece] = []
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
            if i > textStart { pieces.append(TemplatePiece(kind: .text, content: string(textStart..<i), line: textLine)) }
            var piece = TemplatePiece(kind: opener == "{" ? .expression : opener == "%" ? .statement : .comment,
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
    if textStart < scalars.count { pieces.append(TemplatePiece(kind: .text, content: string(textStart..<scalars.count), line: textLine)) }

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

// MARK: - Expression tokens

private struct Token {
    enum Kind: Equatable { case name, string, integer, float, op, end }
    var kind: Kind
    var text: String
}

private func tokenize(_ source: String, line: Int) throws -> [Token] {
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

// MARK: - Parser

/// Parses a template into nodes. Constructs outside the supported subset raise
/// ChatTemplateError.unsupported naming the construct.
struct JinjaParser {
    private var pieces: [TemplatePiece]
    private var index = 0

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(pieces: try splitTemplate(source))
        let (nodes, end) = try parser.parseBody(until: [])
        if let end { throw ChatTemplateError.syntax("unexpected '\(end.name)'", line: end.line) }
        return nodes
    }

    private init(pieces: [TemplatePiece]) { self.pieces = pieces }

    private struct EndTag {
        var name: String
        var stream: ExpressionStream
        var line: Int
    }

    /// Parses nodes until one of the block tags in `terminators` (returned) or the end of input.
    private mutating func parseBody(until terminators: Set<String>) throws -> ([JinjaNode], EndTag?) {
        var nodes: [JinjaNode] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece.kind {
            case .comment:
                continue
            case .text:
                if !piece.content.isEmpty { nodes.append(.text(piece.content)) }
            case .expression:
                var stream = ExpressionStream(tokens: try tokenize(piece.content, line: piece.line), line: piece.line)
                let expression = try stream.parseExpression()
                try stream.expectEnd()
                nodes.append(.output(expression))
            case .statement:
                var stream = ExpressionStream(tokens: try tokenize(piece.content, line: piece.line), line: piece.line)
                guard let keyword = stream.takeName() else {
                    throw ChatTemplateError.syntax("empty block tag", line: piece.line)
                }
                if terminators.contains(keyword) {
                    return (nodes, EndTag(name: keyword, stream: stream, line: piece.line))
                }
                nodes.append(contentsOf: try parseStatement(keyword, &stream, line: piece.line))
            }
        }
        if !terminators.isEmpty {
            throw ChatTemplateError.syntax("missing \(terminators.sorted().joined(separator: " or "))", line: pieces.last?.line ?? 1)
        }
        return (nodes, nil)
    }

    private mutating func parseStatement(_ keyword: String, _ stream: inout ExpressionStream, line: Int) throws -> [JinjaNode] {
        switch keyword {
        case "if":
            var branches: [(condition: JinjaExpression, body: [JinjaNode])] = []
            var condition = try stream.parseExpression()
            try stream.expectEnd()
            var otherwise: [JinjaNode] = []
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard var end else { break }
                if end.name == "elif" {
                    condition = try end.stream.parseExpression()
                    try end.stream.expectEnd()
                    continue
                }
                if end.name == "else" {
                    try end.stream.expectEnd()
                    let (elseBody, final) = try parseBody(until: ["endif"])
                    otherwise = elseBody
                    if var final { try final.stream.expectEnd() }
                }
                break
            }
            return [.conditional(branches: branches, otherwise: otherwise)]
        case "for":
            var targets: [String] = []
            repeat {
                guard let name = stream.takeName() else { throw ChatTemplateError.syntax("expected a loop variable", line: line) }
                targets.append(name)
            } while stream.takeOp(",")
            guard stream.takeKeyword("in") else { throw ChatTemplateError.syntax("expected 'in' in for loop", line: line) }
            let iterable = try stream.parseExpression(allowConditional: false)
            var filter: JinjaExpression? = nil
            if stream.takeKeyword("if") { filter = try stream.parseExpression(allowConditional: false) }
            if stream.takeKeyword("recursive") { throw ChatTemplateError.unsupported(construct: "recursive for loop", line: line) }
            try stream.expectEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            var otherwise: [JinjaNode] = []
            if var end, end.name == "else" {
                try end.stream.expectEnd()
                otherwise = try parseBody(until: ["endfor"]).0
            }
            return [.loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)]
        case "set":
            guard let first = stream.takeName() else { throw ChatTemplateError.syntax("expected a name after set", line: line) }
            if stream.takeOp(".") {
                guard let attribute = stream.takeName(), stream.takeOp("=") else {
                    throw ChatTemplateError.syntax("expected 'set name.attribute = value'", line: line)
                }
                let value = try stream.parseExpression()
                try stream.expectEnd()
                return [.set(.attribute(object: first, attribute: attribute), value)]
            }
            var names = [first]
            while stream.takeOp(",") {
                guard let name = stream.takeName() else { throw ChatTemplateError.syntax("expected a name", line: line) }
                names.append(name)
            }
            if stream.isAtEnd {
                guard names.count == 1 else { throw ChatTemplateError.syntax("block set takes one name", line: line) }
                let (body, _) = try parseBody(until: ["endset"])
                return [.setBlock(first, body)]
            }
            guard stream.takeOp("=") else { throw ChatTemplateError.syntax("expected '=' in set", line: line) }
            let value = try stream.parseExpression()
            try stream.expectEnd()
            return [.set(.names(names), value)]
        case "macro":
            guard let name = stream.takeName(), stream.takeOp("(") else {
                throw ChatTemplateError.syntax("expected 'macro name(...)'", line: line)
            }
            var parameters: [(name: String, defaultValue: JinjaExpression?)] = []
            if !stream.takeOp(")") {
                repeat {
                    guard let parameter = stream.takeName() else { throw ChatTemplateError.syntax("expected a parameter name", line: line) }
                    var defaultValue: JinjaExpression? = nil
                    if stream.takeOp("=") { defaultValue = try stream.parseExpression() }
                    parameters.append((parameter, defaultValue))
                } while stream.takeOp(",")
                guard stream.takeOp(")") else { throw ChatTemplateError.syntax("expected ')'", line: line) }
            }
            try stream.expectEnd()
            let (body, _) = try parseBody(until: ["endmacro"])
            return [.macro(JinjaMacro(name: name, parameters: parameters, body: body))]
        case "break":
            try stream.expectEnd()
            return [.breakLoop]
        case "continue":
            try stream.expectEnd()
            return [.continueLoop]
        case "generation":
            // transformers' AssistantTracker extension: renders its body unchanged.
            try stream.expectEnd()
            return try parseBody(until: ["endgeneration"]).0
        default:
            throw ChatTemplateError.unsupported(construct: "{% \(keyword) %}", line: line)
        }
    }
}

/// Recursive-descent parser for expressions, with Jinja's operator precedence.
private struct ExpressionStream {
    var tokens: [Token]
    var position = 0
    let line: Int

    init(tokens: [Token], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var current: Token { tokens[position] }
    var isAtEnd: Bool { current.kind == .end }

    func syntax(_ message: String) -> ChatTemplateError { .syntax(message, line: line) }

    mutating func expectEnd() throws {
        guard isAtEnd else { throw syntax("unexpected '\(current.text)'") }
    }

    mutating func takeName() -> String? {
        guard current.kind == .name else { return nil }
        position += 1
        return tokens[position - 1].text
    }

    mutating func takeKeyword(_ keyword: String) -> Bool {
        guard current.kind == .name, current.text == keyword else { return false }
        position += 1
        return true
    }

    mutating func takeOp(_ op: String) -> Bool {
        guard current.kind == .op, current.text == op else { return false }
        position += 1
        return true
    }

    func peekKeyword(_ keyword: String, offset: Int = 0) -> Bool {
        let i = position + offset
        return i < tokens.count && tokens[i].kind == .name && tokens[i].text == keyword
    }

    mutating func expectOp(_ op: String) throws {
        guard takeOp(op) else { throw syntax("expected '\(op)', found '\(current.text)'") }
    }

    mutating func parseExpression(allowConditional: Bool = true) throws -> JinjaExpression {
        let expression = try parseOr()
        guard allowConditional, takeKeyword("if") else { return expression }
        let condition = try parseOr()
        var otherwise: JinjaExpression? = nil
        if takeKeyword("else") { otherwise = try parseExpression() }
        return .conditional(condition: condition, then: expression, otherwise: otherwise)
    }

    mutating func parseOr() throws -> JinjaExpression {
        var left = try parseAnd()
        while takeKeyword("or") { left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> JinjaExpression {
        var left = try parseNot()
        while takeKeyword("and") { left = .and(left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> JinjaExpression {
        if takeKeyword("not") { return .not(try parseNot()) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JinjaExpression {
        let first = try parseMath1()
        var comparisons: [JinjaExpression] = []
        var left = first
        while true {
            var op: String
            if current.kind == .op, ["==", "!=", "<", ">", "<=", ">="].contains(current.text) {
                op = current.text
                position += 1
            } else if takeKeyword("in") {
                op = "in"
            } else if peekKeyword("not"), peekKeyword("in", offset: 1) {
                position += 2
                op = "not in"
            } else {
                break
            }
            let right = try parseMath1()
            comparisons.append(.binary(op, left, right))
            left = right
        }
        guard var result = comparisons.first else { return first }
        for comparison in comparisons.dropFirst() { result = .and(result, comparison) }
        return result
    }

    mutating func parseMath1() throws -> JinjaExpression {
        var left = try parseConcat()
        while current.kind == .op, current.text == "+" || current.text == "-" {
            let op = current.text
            position += 1
            left = .binary(op, left, try parseConcat())
        }
        return left
    }

    mutating func parseConcat() throws -> JinjaExpression {
        var left = try parseMath2()
        while takeOp("~") { left = .binary("~", left, try parseMath2()) }
        return left
    }

    mutating func parseMath2() throws -> JinjaExpression {
        var left = try parsePow()
        while current.kind == .op, ["*", "/", "//", "%"].contains(current.text) {
            let op = current.text
            position += 1
            left = .binary(op, left, try parsePow())
        }
        return left
    }

    mutating func parsePow() throws -> JinjaExpression {
        var left = try parseUnary(withFilter: true)
        while takeOp("**") { left = .binary("**", left, try parseUnary(withFilter: true)) }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws -> JinjaExpression {
        var node: JinjaExpression
        if takeOp("-") {
            node = .negate(try parseUnary(withFilter: false))
        } else if takeOp("+") {
            node = try parseUnary(withFilter: false)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    mutating func parsePrimary() throws -> JinjaExpression {
        let token = current
        switch token.kind {
        case .string:
            position += 1
            var text = token.text
            // Adjacent string literals concatenate.
            while current.kind == .string { text += current.text; position += 1 }
            return .literal(.string(text))
        case .integer:
            position += 1
            guard let value = Int(token.text) else { throw syntax("integer literal \(token.text) is too large") }
            return .literal(.int(value))
        case .float:
            position += 1
            return .literal(.float(Double(token.text) ?? 0))
        case .name:
            position += 1
            switch token.text {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(token.text)
            }
        case .op:
            if takeOp("(") {
                if takeOp(")") { return .list([]) }
                let first = try parseExpression()
                if takeOp(",") {
                    var items = [first]
                    while !takeOp(")") {
                        items.append(try parseExpression())
                        if !takeOp(",") { try expectOp(")"); break }
                    }
                    return .list(items)
                }
                try expectOp(")")
                return first
            }
            if takeOp("[") {
                var items: [JinjaExpression] = []
                while !takeOp("]") {
                    items.append(try parseExpression())
                    if !takeOp(",") { try expectOp("]"); break }
                }
                return .list(items)
            }
            if takeOp("{") {
                var members: [(key: JinjaExpression, value: JinjaExpression)] = []
                while !takeOp("}") {
                    let key = try parseExpression()
                    try expectOp(":")
                    members.append((key, try parseExpression()))
                    if !takeOp(",") { try expectOp("}"); break }
                }
                return .dict(members)
            }
            throw syntax("unexpected '\(token.text)'")
        case .end:
            throw syntax("unexpected end of expression")
        }
    }

    mutating func parsePostfix(_ base: JinjaExpression) throws -> JinjaExpression {
        var node = base
        while true {
            if takeOp(".") {
                if let name = takeName() {
                    node = .attribute(node, name)
                } else if current.kind == .integer {
                    node = .`subscript`(node, .literal(.int(Int(current.text) ?? 0)))
                    position += 1
                } else {
                    throw syntax("expected an attribute name after '.'")
                }
            } else if takeOp("[") {
                var start: JinjaExpression? = nil
                if !(current.kind == .op && current.text == ":") { start = try parseExpression() }
                if takeOp(":") {
                    var stop: JinjaExpression? = nil
                    var step: JinjaExpression? = nil
                    if !(current.kind == .op && (current.text == "]" || current.text == ":")) { stop = try parseExpression() }
                    if takeOp(":"), !(current.kind == .op && current.text == "]") { step = try parseExpression() }
                    try expectOp("]")
                    node = .slice(node, start: start, stop: stop, step: step)
                } else {
                    try expectOp("]")
                    guard let start else { throw syntax("empty subscript") }
                    node = .`subscript`(node, start)
                }
            } else if current.kind == .op, current.text == "(" {
                position += 1
                let (arguments, keywords) = try parseArguments()
                node = .call(node, arguments: arguments, keywords: keywords)
            } else {
                return node
            }
        }
    }

    /// Arguments after "(" up to and including ")".
    mutating func parseArguments() throws -> ([JinjaExpression], [(String, JinjaExpression)]) {
        var arguments: [JinjaExpression] = []
        var keywords: [(String, JinjaExpression)] = []
        while !takeOp(")") {
            if current.kind == .name, position + 1 < tokens.count, tokens[position + 1].kind == .op, tokens[position + 1].text == "=" {
                let name = current.text
                position += 2
                keywords.append((name, try parseExpression()))
            } else {
                if current.kind == .op, current.text == "*" || current.text == "**" {
                    throw ChatTemplateError.unsupported(construct: "*args / **kwargs in calls", line: line)
                }
                arguments.append(try parseExpression())
            }
            if !takeOp(",") { try expectOp(")"); break }
        }
        return (arguments, keywords)
    }

    mutating func parseFilterExpression(_ base: JinjaExpression) throws -> JinjaExpression {
        var node = base
        while true {
            if takeOp("|") {
                guard let name = takeName() else { throw syntax("expected a filter name after '|'") }
                var arguments: [JinjaExpression] = []
                var keywords: [(String, JinjaExpression)] = []
                if takeOp("(") { (arguments, keywords) = try parseArguments() }
                node = .filter(node, name: name, arguments: arguments, keywords: keywords)
            } else if takeKeyword("is") {
                let negated = takeKeyword("not")
                guard let name = takeName() else { throw syntax("expected a test name after 'is'") }
                var arguments: [JinjaExpression] = []
                if takeOp("(") {
                    let (args, keywords) = try parseArguments()
                    if !keywords.isEmpty { throw ChatTemplateError.unsupported(construct: "keyword arguments to tests", line: line) }
                    arguments = args
                } else if startsTestArgument {
                    arguments = [try parsePrimary()]
                    arguments[0] = try parsePostfix(arguments[0])
                }
                node = .test(node, name: name, arguments: arguments, negated: negated)
            } else if current.kind == .op, current.text == "(" {
                position += 1
                let (arguments, keywords) = try parseArguments()
                node = .call(node, arguments: arguments, keywords: keywords)
            } else {
                return node
            }
        }
    }

    /// Jinja accepts one test argument without parentheses (`x is equalto 3`).
    var startsTestArgument: Bool {
        switch current.kind {
        case .string, .integer, .float: return true
        case .name: return !["and", "or", "else", "if", "in", "not", "is", "recursive"].contains(current.text)
        case .op: return current.text == "[" || current.text == "{"
        case .end: return false
        }
    }
}
