/// Runs a `Grammar` over text a byte at a time, as a pushdown automaton with several
/// stacks at once (the grammar may be ambiguous), as llama.cpp's grammar sampler does.
/// A stack is the positions still to match, innermost last; every stack's top is a
/// character class, or the stack is empty (the text so far is a complete match).
/// Bytes of a multi-byte UTF-8 character are held until the character is complete; a
/// prefix is kept while some stack could accept a character that starts so.
public struct GrammarMatcher: Sendable {
    public let grammar: Grammar

    /// Where matching stands: the live stacks and a partial UTF-8 character.
    public struct State: Hashable, Sendable {
        var stacks: Set<[Int]>
        /// A character's value so far and the continuation bytes it still needs.
        var partial: UInt32 = 0
        var remaining = 0
        /// The smallest code point the character's length may encode (shorter is overlong).
        var minimum: UInt32 = 0
    }

    /// Live stacks beyond this make a state fail: an ambiguous grammar can multiply them
    /// at every character.
    static let maxStacks = 4096
    /// Expansion steps per character, for the same reason.
    static let maxSteps = 200_000

    /// The start state: every way the root rule can begin.
    public private(set) var initial: State

    /// Fails when the grammar is so ambiguous that its start exceeds the bounds below.
    public init(_ grammar: Grammar) throws(GrammarError) {
        self.grammar = grammar
        initial = State(stacks: [])
        var stacks = Set<[Int]>()
        for alternative in grammar.rules[grammar.root].indices {
            guard expand([Self.pack(grammar.root, alternative, 0)], into: &stacks) else {
                throw GrammarError("the grammar is too ambiguous: its start has more than \(Self.maxStacks) ways to continue")
            }
        }
        initial = State(stacks: stacks)
    }

    // Positions packed in one Int: rule, alternative, element index.
    @inline(__always) static func pack(_ rule: Int, _ alternative: Int, _ index: Int) -> Int { rule << 40 | alternative << 20 | index }
    @inline(__always) static func unpack(_ p: Int) -> (Int, Int, Int) { (p >> 40, (p >> 20) & 0xFFFFF, p & 0xFFFFF) }

    /// Whether the text so far is a complete match.
    public func isAccepting(_ state: State) -> Bool { state.remaining == 0 && state.stacks.contains([]) }

    /// Whether the whole text matches.
    public func accepts(_ text: String) -> Bool {
        var state = initial
        for byte in text.utf8 {
            guard let next = advance(state, byte: byte) else { return false }
            state = next
        }
        return isAccepting(state)
    }

    /// The state after one more byte, or nil when no continuation of the grammar allows it.
    public func advance(_ state: State, byte: UInt8) -> State? {
        if state.remaining == 0 {
            if byte < 0x80 { return advance(state, codePoint: UInt32(byte)) }
            let (length, bits, minimum): (Int, UInt32, UInt32)
            switch byte {
            case 0xC2...0xDF: (length, bits, minimum) = (2, UInt32(byte & 0x1F), 0x80)
            case 0xE0...0xEF: (length, bits, minimum) = (3, UInt32(byte & 0x0F), 0x800)
            case 0xF0...0xF4: (length, bits, minimum) = (4, UInt32(byte & 0x07), 0x10000)
            default: return nil  // a continuation byte without a lead, or not UTF-8
            }
            var next = state
            next.partial = bits
            next.remaining = length - 1
            next.minimum = minimum
            return couldContinue(next) ? next : nil
        }
        guard byte & 0xC0 == 0x80 else { return nil }
        var next = state
        next.partial = state.partial << 6 | UInt32(byte & 0x3F)
        next.remaining -= 1
        if next.remaining == 0 {
            let c = next.partial
            // Overlong forms, surrogates and values past Unicode are not characters.
            guard c >= state.minimum, c <= 0x10FFFF, !(0xD800...0xDFFF).contains(c) else { return nil }
            next.partial = 0
            next.minimum = 0
            return advance(next, codePoint: c)
        }
        return couldContinue(next) ? next : nil
    }

    /// Whether some stack's class holds a character that starts with the partial bytes.
    private func couldContinue(_ state: State) -> Bool {
        let shift = UInt32(6 * state.remaining)
        let low = max(state.partial << shift, state.minimum), high = min(state.partial << shift | ((1 << shift) - 1), 0x10FFFF)
        guard low <= high else { return false }
        return state.stacks.contains { stack in
            guard let top = stack.last, case .chars(let ranges, let negated) = element(top) else { return false }
            if negated { return !ranges.contains { $0.lowerBound <= low && $0.upperBound >= high } }
            return ranges.contains { $0.lowerBound <= high && $0.upperBound >= low }
        }
    }

    /// The state after one whole character.
    public func advance(_ state: State, codePoint c: UInt32) -> State? {
        var stacks = Set<[Int]>()
        for stack in state.stacks {
            guard let top = stack.last, element(top).matches(c) else { continue }
            var next = stack
            let (rule, alternative, index) = Self.unpack(top)
            next[next.count - 1] = Self.pack(rule, alternative, index + 1)
            guard expand(next, into: &stacks) else { return nil }
        }
        return stacks.isEmpty ? nil : State(stacks: stacks)
    }

    @inline(__always) private func element(_ position: Int) -> Grammar.Element {
        let (rule, alternative, index) = Self.unpack(position)
        return grammar.rules[rule][alternative][index]
    }

    /// Adds the stacks `stack` stands for with a character class on top: finished
    /// sequences are popped, rules on top are replaced by each of their alternatives. A
    /// work list, not recursion: a chain of rules may be thousands deep. Returns false when
    /// the grammar is too ambiguous here (more than `maxStacks` stacks or `maxSteps` steps).
    private func expand(_ initial: [Int], into out: inout Set<[Int]>) -> Bool {
        var work = [initial]
        // Alternatives that match nothing lead to the same stacks: expand each once.
        var seen = Set<[Int]>()
        var steps = 0
        while var stack = work.popLast() {
            steps += 1
            guard steps <= Self.maxSteps, out.count <= Self.maxStacks else { return false }
            while let top = stack.last {
                let (rule, alternative, index) = Self.unpack(top)
                if index < grammar.rules[rule][alternative].count { break }
                stack.removeLast()
            }
            guard seen.insert(stack).inserted else { continue }
            guard let top = stack.last else {
                out.insert([])
                continue
            }
            let (rule, alternative, index) = Self.unpack(top)
            switch grammar.rules[rule][alternative][index] {
            case .chars:
                out.insert(stack)
            case .rule(let target):
                // What follows the rule; nothing when the rule ends the sequence, so that
                // right recursion (x* is R ::= x R | ε) keeps stacks from growing.
                if index + 1 < grammar.rules[rule][alternative].count {
                    stack[stack.count - 1] = Self.pack(rule, alternative, index + 1)
                } else {
                    stack.removeLast()
                }
                for next in grammar.rules[target].indices.reversed() { work.append(stack + [Self.pack(target, next, 0)]) }
            }
        }
        return true
    }
}
