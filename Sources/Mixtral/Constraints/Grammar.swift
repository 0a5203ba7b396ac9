/// A context-free grammar over Unicode code points in llama.cpp's GBNF notation
/// (grammars/README.md in llama.cpp):
///
///     root   ::= object
///     object ::= "{" ws ( pair ( "," ws pair )* )? "}"
///     digit  ::= [0-9]          # a class; [^"\\] negates, . is any character
///
/// Literals "..." (escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH), classes, rule
/// names, groups ( ), alternatives |, and the postfix operators * + ? {m} {m,} {m,n}.
/// A rule ends at a newline that is not inside parentheses. Repetitions become rules of
/// their own, so the grammar is rules of alternatives of sequences of two kinds of
/// element: a character class or a rule. Left recursion (a rule that can reach itself
/// before consuming a character) is refused, as llama.cpp refuses it.
public struct Grammar: Sendable, Equatable {
    public enum Element: Hashable, Sendable {
        /// A code point in one of the ranges (or, negated, in none of them).
        case chars([ClosedRange<UInt32>], negated: Bool)
        case rule(Int)

        func matches(_ c: UInt32) -> Bool {
            guard case .chars(let ranges, let negated) = self else { return false }
            return ranges.contains { $0.contains(c) } != negated
        }
    }

    /// rules[r] is the alternatives of rule r; an empty alternative matches nothing.
    public internal(set) var rules: [[[Element]]] = []
    /// Rule names as written; repetitions and groups get `name_N`.
    public internal(set) var names: [String] = []
    public private(set) var root = 0

    /// Bounds that keep a hostile grammar small.
    static let maxRules = 20_000
    static let maxRepetition = 1_000
    static let maxNesting = 100
    static let maxElements = 1_000_000

    /// Parses `text`; matching starts at the rule named `start`.
    public init(gbnf text: String, start: String = "root") throws(GrammarError) {
        var parser = GBNFParser(text: text)
        try parser.parse(into: &self)
        guard let rootIndex = names.firstIndex(of: start) else { throw GrammarError("the grammar has no '\(start)' rule") }
        root = rootIndex
        try checkLeftRecursion()
    }

    /// Rules that can match the empty string.
    func nullableRules() -> [Bool] {
        var nullable = [Bool](repeating: false, count: rules.count)
        var changed = true
        while changed {
            changed = false
            for (index, alternatives) in rules.enumerated() where !nullable[index] {
                let canBeEmpty = alternatives.contains { sequence in
                    sequence.allSatisfy { if case .rule(let r) = $0 { return nullable[r] } else { return false } }
                }
                if canBeEmpty {
                    nullable[index] = true
                    changed = true
                }
            }
        }
        return nullable
    }

    private func checkLeftRecursion() throws(GrammarError) {
        let nullable = nullableRules()
        // leftRefs[r]: rules that r may expand to before consuming a character.
        let leftRefs: [[Int]] = rules.map { alternatives in
            var refs: [Int] = []
            for sequence in alternatives {
                for element in sequence {
                    guard case .rule(let r) = element else { break }
                    refs.append(r)
                    if !nullable[r] { break }
                }
            }
            return refs
        }
        // Depth-first search for a cycle (white, grey, black).
        var color = [UInt8](repeating: 0, count: rules.count)
        for start in rules.indices where color[start] == 0 {
            var stack: [(rule: Int, next: Int)] = [(start, 0)]
            color[start] = 1
            while let (rule, next) = stack.last {
                if next == leftRefs[rule].count {
                    color[rule] = 2
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let target = leftRefs[rule][next]
                if color[target] == 1 { throw GrammarError("rule '\(names[target])' is left-recursive (it can reach itself before matching a character)") }
                if color[target] == 0 {
                    color[target] = 1
                    stack.append((target, 0))
                }
            }
        }
    }
}

public struct GrammarError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = "grammar: " + description }
}

/// Recursive descent over the grammar's text, by Unicode scalar.
private struct GBNFParser {
    let scalars: [UInt32]
    var position = 0
    var line = 1
    /// Rule index by name; rules referenced before their definition get a slot early.
    var ruleIndex: [String: Int] = [:]
    var defined: Set<Int> = []
    var elementCount = 0

    init(text: String) {
        scalars = text.unicodeScalars.map(\.value)
    }

    mutating func parse(into grammar: inout Grammar) throws(GrammarError) {
        skipSpace(newlines: true)
        while position < scalars.count {
            let name = try parseName()
            skipSpace(newlines: false)
            guard consume("::=") else { throw error("expected '::=' after the rule name '\(name)'") }
            let index = slot(name, &grammar)
            guard !defined.contains(index) else { throw error("rule '\(name)' is defined twice") }
            defined.insert(index)
            skipSpace(newlines: true)  // the body may start on the next line
            grammar.rules[index] = try parseAlternatives(&grammar, ruleName: name, depth: 0)
            skipSpace(newlines: true)
        }
        for (name, index) in ruleIndex where !defined.contains(index) {
            throw GrammarError("rule '\(name)' is used but never defined")
        }
    }

    func error(_ message: String) -> GrammarError { GrammarError("line \(line): \(message)") }

    mutating func slot(_ name: String, _ grammar: inout Grammar) -> Int {
        if let index = ruleIndex[name] { return index }
        grammar.rules.append([])
        grammar.names.append(name)
        ruleIndex[name] = grammar.rules.count - 1
        return grammar.rules.count - 1
    }

    mutating func newRule(_ base: String, _ alternatives: [[Grammar.Element]], _ grammar: inout Grammar) throws(GrammarError) -> Int {
        guard grammar.rules.count < Grammar.maxRules else { throw error("more than \(Grammar.maxRules) rules") }
        grammar.rules.append(alternatives)
        grammar.names.append("\(base)_\(grammar.rules.count - 1)")
        return grammar.rules.count - 1
    }

    var current: UInt32? { position < scalars.count ? scalars[position] : nil }

    mutating func consume(_ text: String) -> Bool {
        let values = text.unicodeScalars.map(\.value)
        guard position + values.count <= scalars.count, Array(scalars[position..<(position + values.count)]) == values else {
            return false
        }
        position += values.count
        return true
    }

    /// Spaces, tabs, comments, and (when allowed) newlines.
    mutating func skipSpace(newlines: Bool) {
        while let c = current {
            if c == 0x20 || c == 0x09 || c == 0x0D {
                position += 1
            } else if c == 0x0A && newlines {
                position += 1
                line += 1
            } else if c == 0x23 {  // # comment to the end of the line
                while let d = current, d != 0x0A { _ = d; position += 1 }
            } else {
                return
            }
        }
    }

    static func isNameCharacter(_ c: UInt32) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
    }

    mutating func parseName() throws(GrammarError) -> String {
        let start = position
        while let c = current, Self.isNameCharacter(c) { position += 1 }
        guard position > start else { throw error("expected a rule name") }
        return String(String.UnicodeScalarView(scalars[start..<position].compactMap(Unicode.Scalar.init)))
    }

    /// Alternatives up to the end of the rule (a newline outside parentheses) or a ')'.
    mutating func parseAlternatives(_ grammar: inout Grammar, ruleName: String, depth: Int) throws(GrammarError) -> [[Grammar.Element]] {
        guard depth <= Grammar.maxNesting else { throw error("parentheses nested deeper than \(Grammar.maxNesting)") }
        var alternatives = [try parseSequence(&grammar, ruleName: ruleName, depth: depth)]
        while consume("|") {
            skipSpace(newlines: true)
            alternatives.append(try parseSequence(&grammar, ruleName: ruleName, depth: depth))
        }
        return alternatives
    }

    mutating func parseSequence(_ grammar: inout Grammar, ruleName: String, depth: Int) throws(GrammarError) -> [Grammar.Element] {
        var sequence: [Grammar.Element] = []
        // Where the last item starts, for a postfix operator to repeat it.
        var lastItem = 0
        while true {
            skipSpace(newlines: depth > 0)
            guard let c = current else { break }
            if c == 0x22 {  // "literal"
                lastItem = sequence.count
                position += 1
                while true {
                    guard let d = current else { throw error("unterminated string literal") }
                    if d == 0x22 { position += 1; break }
                    if d == 0x0A { throw error("newline in a string literal") }
                    let value = try parseCharacter()
                    sequence.append(.chars([value...value], negated: false))
                }
            } else if c == 0x5B {  // [class]
                lastItem = sequence.count
                position += 1
                let negated = consume("^")
                var ranges: [ClosedRange<UInt32>] = []
                while true {
                    guard let d = current else { throw error("unterminated character class") }
                    if d == 0x5D { position += 1; break }
                    let low = try parseCharacter()
                    if current == 0x2D, position + 1 < scalars.count, scalars[position + 1] != 0x5D {
                        position += 1
                        let high = try parseCharacter()
                        guard low <= high else { throw error("character range out of order") }
                        ranges.append(low...high)
                    } else {
                        ranges.append(low...low)
                    }
                }
                sequence.append(.chars(ranges, negated: negated))
            } else if c == 0x2E {  // . any character
                lastItem = sequence.count
                position += 1
                sequence.append(.chars([0x0A...0x0A], negated: true))  // llama.cpp: any but a newline
            } else if c == 0x28 {  // ( group )
                lastItem = sequence.count
                position += 1
                skipSpace(newlines: true)
                let alternatives = try parseAlternatives(&grammar, ruleName: ruleName, depth: depth + 1)
                skipSpace(newlines: true)
                guard consume(")") else { throw error("expected ')'") }
                sequence.append(.rule(try newRule(ruleName, alternatives, &grammar)))
            } else if Self.isNameCharacter(c) {
                // A name followed by ::= starts the next rule (at the top level).
                let save = (position, line)
                let name = try parseName()
                skipSpace(newlines: false)
                if scalars[position...].starts(with: "::=".unicodeScalars.map(\.value)) {
                    guard depth == 0 else { throw error("'::=' inside parentheses") }
                    (position, line) = save
                    break
                }
                lastItem = sequence.count
                sequence.append(.rule(slot(name, &grammar)))
            } else if c == 0x2A || c == 0x2B || c == 0x3F || c == 0x7B {  // * + ? {m,n}
                guard lastItem < sequence.count else { throw error("a repetition operator with nothing before it") }
                position += 1
                let (low, high) = try parseRepetition(c)
                let item = Array(sequence[lastItem...])
                sequence.removeSubrange(lastItem...)
                sequence.append(contentsOf: try repeated(item, low, high, ruleName, &grammar))
                lastItem = sequence.count  // a repetition of a repetition needs parentheses
            } else if c == 0x3C {
                throw error("token references (<...>) are not supported")
            } else {
                break
            }
            elementCount += 1
            guard elementCount <= Grammar.maxElements else { throw error("more than \(Grammar.maxElements) elements") }
        }
        return sequence
    }

    /// The bounds of *, +, ? or {m}, {m,}, {m,n} (nil: unbounded).
    mutating func parseRepetition(_ op: UInt32) throws(GrammarError) -> (Int, Int?) {
        switch op {
        case 0x2A: return (0, nil)
        case 0x2B: return (1, nil)
        case 0x3F: return (0, 1)
        default:
            skipSpace(newlines: false)
            let low = try parseCount()
            skipSpace(newlines: false)
            var high: Int? = low
            if consume(",") {
                skipSpace(newlines: false)
                high = current.map { $0 >= 0x30 && $0 <= 0x39 } == true ? try parseCount() : nil
                skipSpace(newlines: false)
            }
            guard consume("}") else { throw error("expected '}' after a repetition count") }
            if let high, high < low { throw error("repetition {\(low),\(high)} has its bounds out of order") }
            return (low, high)
        }
    }

    mutating func parseCount() throws(GrammarError) -> Int {
        var value = 0
        let start = position
        while let c = current, c >= 0x30 && c <= 0x39 {
            value = value * 10 + Int(c - 0x30)
            guard value <= Grammar.maxRepetition else { throw error("a repetition count above \(Grammar.maxRepetition)") }
            position += 1
        }
        guard position > start else { throw error("expected a repetition count") }
        return value
    }

    /// item{low,high} as elements: low copies, then the optional part as rules
    /// (x* is R ::= x R | ε; x{0,n} nests n optional copies).
    mutating func repeated(_ item: [Grammar.Element], _ low: Int, _ high: Int?, _ ruleName: String,
                           _ grammar: inout Grammar) throws(GrammarError) -> [Grammar.Element] {
        var result: [Grammar.Element] = []
        for _ in 0..<low { result += item }
        elementCount += item.count * low
        guard elementCount <= Grammar.maxElements else { throw error("more than \(Grammar.maxElements) elements") }
        if let high {
            guard high > low else { return result }
            // (item (item (...)?)?)? built from the inside out.
            var tail: Int? = nil
            for _ in low..<high {
                let inner: [Grammar.Element] = item + (tail.map { [.rule($0)] } ?? [])
                tail = try newRule(ruleName, [inner, []], &grammar)
            }
            if let tail { result.append(.rule(tail)) }
        } else {
            let star = slotForStar(&grammar)
            grammar.rules[star] = [item + [.rule(star)], []]
            result.append(.rule(star))
        }
        return result
    }

    mutating func slotForStar(_ grammar: inout Grammar) -> Int {
        grammar.rules.append([])
        grammar.names.append("star_\(grammar.rules.count - 1)")
        return grammar.rules.count - 1
    }

    /// One character of a literal or class, with escapes.
    mutating func parseCharacter() throws(GrammarError) -> UInt32 {
        guard let c = current else { throw error("unexpected end of the grammar") }
        position += 1
        guard c == 0x5C else { return c }
        guard let e = current else { throw error("unexpected end after '\\'") }
        position += 1
        switch e {
        case 0x6E: return 0x0A  // \n
        case 0x72: return 0x0D  // \r
        case 0x74: return 0x09  // \t
        case 0x78: return try parseHex(2)
        case 0x75: return try parseHex(4)
        case 0x55: return try parseHex(8)
        case 0x5C, 0x22, 0x5B, 0x5D, 0x2D, 0x5E, 0x2F: return e
        default: throw error("unknown escape '\\\(Unicode.Scalar(e).map(String.init) ?? "?")'")
        }
    }

    mutating func parseHex(_ digits: Int) throws(GrammarError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let c = current, let digit = Int(String(Unicode.Scalar(c) ?? " "), radix: 16) else {
                throw error("expected \(digits) hexadecimal digits")
            }
            value = value * 16 + UInt32(digit)
            position += 1
        }
        guard value <= 0x10FFFF else { throw error("code point \(value) is beyond Unicode") }
        return value
    }
}
