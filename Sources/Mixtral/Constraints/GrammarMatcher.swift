/// Runs a `Grammar` over text a byte at a time, as a pushdown automaton with several
/// stacks at once (the grammar may be ambiguous), as llama.cpp's grammar sampler does.
/// A stack is the positions still to match, innermost last; every stack's top is a
/// character class, or the stack is empty (the text so far is a complete match).
/// Bytes of a multi-byte UTF-8 character are held until the character is complete; a
/// prefix is kept while some stack could accept a character that starts so.
///
/// The matcher is immutable. `GrammarAutomaton` builds on the per-stack steps below
/// (`topClass`, `afterMatch`, `couldContinue`) and remembers their results; `advance` here
/// is the definition it must agree with.
public struct GrammarMatcher: Sendable {
    public let grammar: Grammar

    /// Where matching stands: the live stacks and a partial UTF-8 character.
    public struct State: Hashable, Sendable {
        /// Positions (indices into `slots`), innermost last.
        var stacks: Set<[Int32]>
        /// The first bytes of a multi-byte character, or nil between characters.
        var partial: PartialCharacter? = nil
    }

    /// The first bytes of a multi-byte UTF-8 character.
    struct PartialCharacter: Hashable, Sendable {
        /// The character's bits so far.
        var value: UInt32
        /// Continuation bytes still needed (1 to 3).
        var remaining: UInt8
        /// The smallest code point the character's length may encode (shorter is overlong).
        var minimum: UInt32

        /// The character that `byte` starts; nil for a continuation byte or one that is not
        /// UTF-8 (ASCII bytes are whole characters and never start one).
        init?(lead byte: UInt8) {
            switch byte {
            case 0xC2...0xDF: (value, remaining, minimum) = (UInt32(byte & 0x1F), 1, 0x80)
            case 0xE0...0xEF: (value, remaining, minimum) = (UInt32(byte & 0x0F), 2, 0x800)
            case 0xF0...0xF4: (value, remaining, minimum) = (UInt32(byte & 0x07), 3, 0x10000)
            default: return nil
            }
        }

        private init(value: UInt32, remaining: UInt8, minimum: UInt32) {
            (self.value, self.remaining, self.minimum) = (value, remaining, minimum)
        }

        enum Step {
            case partial(PartialCharacter)
            case character(UInt32)
            /// Not a continuation byte, or the bytes encode no character (overlong forms,
            /// surrogates, values past Unicode).
            case invalid
        }

        /// The character after one more byte.
        func adding(_ byte: UInt8) -> Step {
            guard byte & 0xC0 == 0x80 else { return .invalid }
            let next = PartialCharacter(value: value << 6 | UInt32(byte & 0x3F), remaining: remaining - 1, minimum: minimum)
            guard next.remaining == 0 else { return .partial(next) }
            let c = next.value
            guard c >= minimum, c <= 0x10FFFF, !(0xD800...0xDFFF).contains(c) else { return .invalid }
            return .character(c)
        }

        /// The code points a character that starts so may still be; nil when none.
        var possible: ClosedRange<UInt32>? {
            let shift = UInt32(6 * remaining)
            let low = max(value << shift, minimum), high = min(value << shift | ((1 << shift) - 1), 0x10FFFF)
            return low <= high ? low...high : nil
        }
    }

    /// A character class of the grammar (`Grammar.Element.chars`).
    struct CharacterClass: Sendable {
        let ranges: [ClosedRange<UInt32>]
        let negated: Bool

        func contains(_ c: UInt32) -> Bool { ranges.contains { $0.contains(c) } != negated }

        /// Whether the class may hold a code point of `possible` (a negated class is
        /// ruled out only when one of its ranges covers them all).
        func mayTake(_ possible: ClosedRange<UInt32>) -> Bool {
            if negated { return !ranges.contains { $0.lowerBound <= possible.lowerBound && $0.upperBound >= possible.upperBound } }
            return ranges.contains { $0.lowerBound <= possible.upperBound && $0.upperBound >= possible.lowerBound }
        }
    }

    /// Live stacks beyond this make a state fail: an ambiguous grammar can multiply them
    /// at every character.
    static let maxStacks = 4096
    /// Expansion steps per stack and character, for the same reason.
    static let maxSteps = 200_000

    /// The start state: every way the root rule can begin.
    public private(set) var initial: State

    // The grammar flattened so that a position is one Int32: each alternative's elements
    // in a row, then an end marker. Position p + 1 follows p within an alternative.

    /// What is at each position: a class id (>= 0), `endOfSequence`, or the rule r as -2 - r.
    let slots: [Int32]
    static let endOfSequence: Int32 = -1
    /// The first position of each alternative of rule r:
    /// `alternativeStarts[ruleAlternatives[r] ..< ruleAlternatives[r + 1]]`.
    let alternativeStarts: [Int32]
    let ruleAlternatives: [Int32]
    /// The grammar's distinct character classes, by id.
    let classes: [CharacterClass]
    /// Code points cut into intervals (interval k starts at `intervalStarts[k]`) at every
    /// bound of every class: all code points of an interval are in the same classes, so a
    /// transition computed for one holds for all.
    let intervalStarts: [UInt32]
    /// The interval of each ASCII character.
    let asciiIntervals: [Int32]

    /// Fails when the grammar is so ambiguous that its start exceeds the bounds below.
    public init(_ grammar: Grammar) throws(GrammarError) {
        self.grammar = grammar
        var slots: [Int32] = [], alternativeStarts: [Int32] = [], ruleAlternatives: [Int32] = []
        var classes: [CharacterClass] = [], classIds: [Grammar.Element: Int32] = [:]
        var bounds: Set<UInt32> = [0]
        for alternatives in grammar.rules {
            ruleAlternatives.append(Int32(alternativeStarts.count))
            for sequence in alternatives {
                guard slots.count + sequence.count < Int32.max else { throw GrammarError("the grammar has too many elements") }
                alternativeStarts.append(Int32(slots.count))
                for element in sequence {
                    switch element {
                    case .rule(let target):
                        slots.append(-2 - Int32(target))
                    case .chars(let ranges, let negated):
                        if let id = classIds[element] {
                            slots.append(id)
                            continue
                        }
                        let id = Int32(classes.count)
                        classIds[element] = id
                        classes.append(CharacterClass(ranges: ranges, negated: negated))
                        for range in ranges {
                            bounds.insert(range.lowerBound)
                            if range.upperBound < 0x10FFFF { bounds.insert(range.upperBound + 1) }
                        }
                        slots.append(id)
                    }
                }
                slots.append(Self.endOfSequence)
            }
        }
        ruleAlternatives.append(Int32(alternativeStarts.count))
        self.slots = slots
        self.alternativeStarts = alternativeStarts
        self.ruleAlternatives = ruleAlternatives
        self.classes = classes
        let intervalStarts = bounds.sorted()
        self.intervalStarts = intervalStarts
        asciiIntervals = (0..<128).map { Self.interval(of: UInt32($0), in: intervalStarts) }
        initial = State(stacks: [])

        var stacks = Set<[Int32]>()
        for start in alternatives(of: grammar.root) {
            guard let expanded = expand([start]) else { throw Self.tooAmbiguous }
            stacks.formUnion(expanded)
            guard stacks.count <= Self.maxStacks else { throw Self.tooAmbiguous }
        }
        initial = State(stacks: stacks)
    }

    private static var tooAmbiguous: GrammarError {
        GrammarError("the grammar is too ambiguous: its start has more than \(maxStacks) ways to continue")
    }

    /// Whether the text so far is a complete match.
    public func isAccepting(_ state: State) -> Bool { state.partial == nil && state.stacks.contains([]) }

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
        guard let partial = state.partial else {
            if byte < 0x80 { return advance(state, codePoint: UInt32(byte)) }
            guard let started = PartialCharacter(lead: byte) else { return nil }
            return couldContinue(started, classes: state.stacks.lazy.map(topClass)) ? State(stacks: state.stacks, partial: started) : nil
        }
        switch partial.adding(byte) {
        case .invalid:
            return nil
        case .partial(let next):
            return couldContinue(next, classes: state.stacks.lazy.map(topClass)) ? State(stacks: state.stacks, partial: next) : nil
        case .character(let c):
            return advance(State(stacks: state.stacks), codePoint: c)
        }
    }

    /// The state after one whole character: the stacks whose top class holds it, each with
    /// the class matched and expanded again. Nil when none holds it, or when the grammar is
    /// too ambiguous here (an expansion past the bounds, or more than `maxStacks` stacks).
    public func advance(_ state: State, codePoint c: UInt32) -> State? {
        var stacks = Set<[Int32]>()
        for stack in state.stacks {
            let top = topClass(stack)
            guard top >= 0, classes[Int(top)].contains(c) else { continue }
            guard let next = afterMatch(stack) else { return nil }
            stacks.formUnion(next)
        }
        return stacks.isEmpty || stacks.count > Self.maxStacks ? nil : State(stacks: stacks)
    }

    /// The class on top of an expanded stack; -1 for the empty stack.
    func topClass(_ stack: [Int32]) -> Int32 {
        guard let top = stack.last else { return -1 }
        return slots[Int(top)]
    }

    /// Whether one of the classes may hold a character that starts with `partial`.
    func couldContinue(_ partial: PartialCharacter, classes ids: some Sequence<Int32>) -> Bool {
        guard let possible = partial.possible else { return false }
        return ids.contains { $0 >= 0 && classes[Int($0)].mayTake(possible) }
    }

    /// The interval (of `intervalStarts`) that holds `c`.
    func interval(of c: UInt32) -> Int32 { Self.interval(of: c, in: intervalStarts) }

    private static func interval(of c: UInt32, in starts: [UInt32]) -> Int32 {
        var low = 0, high = starts.count  // starts[low] <= c < starts[high]; starts[0] is 0
        while high - low > 1 {
            let middle = (low + high) / 2
            if starts[middle] <= c { low = middle } else { high = middle }
        }
        return Int32(low)
    }

    /// The stacks that an expanded stack becomes once its top class has matched a
    /// character; nil when the expansion exceeds the bounds.
    func afterMatch(_ stack: [Int32]) -> [[Int32]]? {
        guard let top = stack.last else { return [] }
        var next = stack
        next[next.count - 1] = top + 1
        return expand(next)
    }

    private func alternatives(of rule: Int) -> ArraySlice<Int32> {
        alternativeStarts[Int(ruleAlternatives[rule])..<Int(ruleAlternatives[rule + 1])]
    }

    /// The distinct stacks that `initial` stands for with a character class on top (or
    /// empty): finished sequences are popped, rules on top are replaced by each of their
    /// alternatives. A work list, not recursion: a chain of rules may be thousands deep.
    /// Nil when the grammar is too ambiguous here (more than `maxStacks` stacks or
    /// `maxSteps` steps).
    private func expand(_ initial: [Int32]) -> [[Int32]]? {
        var out: [[Int32]] = []
        var work = [initial]
        // Alternatives that match nothing lead to the same stacks: expand each once. A
        // stack with a class on top is output when first seen, so `out` has no duplicates.
        var seen = Set<[Int32]>()
        var steps = 0
        while var stack = work.popLast() {
            steps += 1
            guard steps <= Self.maxSteps, out.count <= Self.maxStacks else { return nil }
            while let top = stack.last, slots[Int(top)] == Self.endOfSequence { stack.removeLast() }
            guard seen.insert(stack).inserted else { continue }
            guard let top = stack.last else {
                out.append([])
                continue
            }
            let slot = slots[Int(top)]
            if slot >= 0 {
                out.append(stack)
                continue
            }
            // A rule: what follows it stays below its alternatives; nothing when the rule
            // ends the sequence, so that right recursion (x* is R ::= x R | ε) keeps stacks
            // from growing.
            if slots[Int(top) + 1] != Self.endOfSequence {
                stack[stack.count - 1] = top + 1
            } else {
                stack.removeLast()
            }
            for start in alternatives(of: Int(-2 - slot)).reversed() { work.append(stack + [start]) }
        }
        return out.count <= Self.maxStacks ? out : nil
    }
}
