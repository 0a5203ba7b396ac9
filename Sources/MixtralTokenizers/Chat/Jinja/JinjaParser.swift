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

// MARK: - Parser

/// Parses a template into nodes. Constructs outside the supported subset raise
/// ChatTemplateError.unsupported naming the construct.
struct JinjaParser {
    private var pieces: [JinjaLexer.Piece]
    private var index = 0
    private var depth = 0

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(pieces: try JinjaLexer.splitTemplate(source))
        let (nodes, end) = try parser.parseBody(until: [])
        if let end { throw ChatTemplateError.syntax("unexpected '\(end.name)'", line: end.line) }
        return nodes
    }

    private init(pieces: [JinjaLexer.Piece]) { self.pieces = pieces }

    private struct EndTag {
        var name: String
        var stream: ExpressionStream
        var line: Int
    }

    /// Parses nodes until one of the block tags in `terminators` (returned) or the end of input.
    private mutating func parseBody(until terminators: Set<String>) throws -> ([JinjaNode], EndTag?) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaLimits.maxDepth else {
            throw ChatTemplateError.syntax("blocks nest more than \(JinjaLimits.maxDepth) deep", line: pieces[min(index, pieces.count - 1)].line)
        }
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
                var stream = ExpressionStream(tokens: try JinjaLexer.tokenize(piece.content, line: piece.line), line: piece.line)
                let expression = try stream.parseExpression()
                try stream.expectEnd()
                nodes.append(.output(expression))
            case .statement:
                var stream = ExpressionStream(tokens: try JinjaLexer.tokenize(piece.content, line: piece.line), line: piece.line)
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
    var tokens: [JinjaLexer.Token]
    var position = 0
    let line: Int

    init(tokens: [JinjaLexer.Token], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    /// Recursion depth and operators so far (see JinjaLimits).
    private var depth = 0
    private var operators = 0

    var current: JinjaLexer.Token { tokens[position] }

    /// Counts one more operator, filter, call or subscript.
    mutating func countOperator() throws {
        operators += 1
        guard operators <= JinjaLimits.maxOperators else {
            throw syntax("an expression with more than \(JinjaLimits.maxOperators) operators")
        }
    }

    /// Runs a parse step one level deeper.
    mutating func nested<T>(_ step: (inout ExpressionStream) throws -> T) throws -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaLimits.maxDepth else { throw syntax("expressions nest more than \(JinjaLimits.maxDepth) deep") }
        return try step(&self)
    }
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
        try nested { try $0.parseConditional(allowConditional: allowConditional) }
    }

    private mutating func parseConditional(allowConditional: Bool) throws -> JinjaExpression {
        let expression = try parseOr()
        guard allowConditional, takeKeyword("if") else { return expression }
        let condition = try parseOr()
        var otherwise: JinjaExpression? = nil
        if takeKeyword("else") { otherwise = try parseExpression() }
        return .conditional(condition: condition, then: expression, otherwise: otherwise)
    }

    mutating func parseOr() throws -> JinjaExpression {
        var left = try parseAnd()
        while takeKeyword("or") { try countOperator(); left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> JinjaExpression {
        var left = try parseNot()
        while takeKeyword("and") { try countOperator(); left = .and(left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> JinjaExpression {
        if takeKeyword("not") { try countOperator(); return .not(try nested { try $0.parseNot() }) }
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
            try countOperator()
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
            try countOperator()
            left = .binary(op, left, try parseConcat())
        }
        return left
    }

    mutating func parseConcat() throws -> JinjaExpression {
        var left = try parseMath2()
        while takeOp("~") { try countOperator(); left = .binary("~", left, try parseMath2()) }
        return left
    }

    mutating func parseMath2() throws -> JinjaExpression {
        var left = try parsePow()
        while current.kind == .op, ["*", "/", "//", "%"].contains(current.text) {
            let op = current.text
            position += 1
            try countOperator()
            left = .binary(op, left, try parsePow())
        }
        return left
    }

    mutating func parsePow() throws -> JinjaExpression {
        var left = try parseUnary(withFilter: true)
        while takeOp("**") { try countOperator(); left = .binary("**", left, try parseUnary(withFilter: true)) }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws -> JinjaExpression {
        var node: JinjaExpression
        if takeOp("-") {
            try countOperator()
            node = .negate(try nested { try $0.parseUnary(withFilter: false) })
        } else if takeOp("+") {
            try countOperator()
            node = try nested { try $0.parseUnary(withFilter: false) }
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
            try countOperator()
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
            try countOperator()
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
