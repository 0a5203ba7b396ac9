/// The grammar's matcher turned into a lazily built deterministic automaton: a token mask
/// is a walk of the vocabulary trie through remembered transitions, so the matcher's stack
/// work is done once per new transition instead of once per trie node at every step
/// (llama.cpp's grammar sampler redoes it at every step).
///
/// - Stacks are interned (ids into `stacks`), and what each becomes once its top class has
///   matched a character is computed once (`advancedStacks`): a new state costs a few
///   dictionary look-ups, not an expansion of every stack.
/// - A state between characters is a sorted list of stack ids, interned to an id with a row
///   of 256 entries: the target of each byte.
/// - The first bytes of a multi-byte character are states of their own (`partials`) keyed
///   by the classes on top of the stacks, not by the stacks: those classes alone decide
///   whether the character may go on, so a grammar that counts (`[^"]{1,600}`) shares them
///   between counts instead of copying every prefix of every character for every count.
///   Their rows (64 entries, one per continuation byte) lead to another partial state or to
///   the finished character's interval (`GrammarMatcher.intervalStarts`); the state after
///   the character is then found for the state where it began (`completions`).
/// - Ids are what `GrammarConstraint` sees: a state between characters, or a pair (where
///   the character began, partial state) for a token that ends inside a character.
/// - A mask reads the vocabulary trie front to back in depth-first order (`PreorderTrie`,
///   built at the first mask), not in `ByteTrie`'s order.
///
/// Not thread-safe: `GrammarConstraint` holds it behind a lock.
final class GrammarAutomaton {
    let matcher: GrammarMatcher

    /// A dead transition: no continuation of the grammar allows the byte.
    static let dead: Int32 = -1
    static let unknown: Int32 = -2
    /// Past this many states (or partial states) the tables are dropped and rebuilt from
    /// what is needed next: each state costs a 1 KiB row, and an ambiguous grammar can
    /// reach many.
    static let maxStates = 16_384
    /// The same for interned stacks, and for remembered characters after a state
    /// (`completions`: a grammar whose classes cut Unicode finely has many per state).
    static let maxInternedStacks = 1 << 18
    static let maxCompletions = 1 << 20
    static let cachedMasks = 256

    // MARK: Stacks

    /// Interned stacks, by id; id 0 is the empty stack (a complete match).
    private var stacks: [[Int32]] = []
    private var stackIds: [[Int32]: Int32] = [:]
    /// The class on top of each stack (-1 for the empty stack).
    private var stackClasses: [Int32] = []
    private var advancedStacks: [Advanced] = []
    private static let emptyStack: Int32 = 0

    /// What a stack becomes once its top class has matched a character.
    private enum Advanced {
        case unknown
        /// The expansion exceeded the matcher's bounds.
        case tooAmbiguous
        case stacks([Int32])
    }

    // MARK: States

    private struct Entry {
        /// Sorted stack ids (for a pair, those of the state where the character began).
        let stacks: [Int32]
        /// The distinct classes on top of the stacks, as an id of `signatures`.
        let signature: Int32
        /// For a pair, the state where the character began and the partial state;
        /// otherwise the entry's own id and -1.
        let base: Int32
        let partial: Int32
        let accepting: Bool
    }

    private struct Pair: Hashable {
        let base: Int32
        let partial: Int32
    }

    /// A character's first bytes for stacks with these classes on top.
    private struct PartialKey: Hashable {
        let signature: Int32
        let character: GrammarMatcher.PartialCharacter
    }

    private var entries: [Entry] = []
    private var entryIds: [[Int32]: Int32] = [:]
    private var pairIds: [Pair: Int32] = [:]
    /// Sorted distinct class ids, interned.
    private var signatures: [[Int32]] = []
    private var signatureIds: [[Int32]: Int32] = [:]
    private var partials: [PartialKey] = []
    private var partialIds: [PartialKey: Int32] = [:]
    /// The state after a character of interval k from the state between characters s,
    /// keyed s << 32 | k; `dead` when no stack takes it.
    private var completions: [Int64: Int32] = [:]

    /// `rows[s << 8 | byte]` for a state s between characters: the state after the byte
    /// (>= 0), `dead`, `unknown`, or the partial state p that a lead byte starts as
    /// `flip(p)`. Pairs' rows are unused.
    private var rows: UnsafeMutablePointer<Int32>
    private var rowCapacity = 64
    /// `partialRows[p << 6 | byte & 0x3F]` for partial state p and a continuation byte: the
    /// next partial state (>= 0), `dead`, `unknown`, or the finished character's interval k
    /// as `flip(k)`.
    private var partialRows: UnsafeMutablePointer<Int32>
    private var partialRowCapacity = 64

    /// Masks of recent states by id, oldest first in `maskOrder`.
    private var masks: [Int32: [UInt64]] = [:]
    private var maskOrder: [Int32] = []

    init(matcher: GrammarMatcher) {
        self.matcher = matcher
        rows = .allocate(capacity: rowCapacity << 8)
        partialRows = .allocate(capacity: partialRowCapacity << 6)
        reset()
    }

    deinit {
        rows.deallocate()
        partialRows.deallocate()
    }

    /// Maps ids (>= 0) to codes (<= -3) that cannot be mistaken for `dead` or `unknown`,
    /// and back.
    @inline(__always) private static func flip(_ value: Int32) -> Int32 { -3 - value }

    /// Drops everything when the tables have grown past their bounds. Call only between
    /// steps: ids handed out before are invalid afterwards.
    func trim() {
        guard entries.count > Self.maxStates || partials.count > Self.maxStates || stacks.count > Self.maxInternedStacks
                || completions.count > Self.maxCompletions else { return }
        reset()
    }

    private func reset() {
        stacks = []
        stackIds = [:]
        stackClasses = []
        advancedStacks = []
        entries = []
        entryIds = [:]
        pairIds = [:]
        signatures = []
        signatureIds = [:]
        partials = []
        partialIds = [:]
        completions = [:]
        masks = [:]
        maskOrder = []
        _ = stackId([])  // Self.emptyStack
    }

    // MARK: Ids for GrammarConstraint

    func id(of state: GrammarMatcher.State) -> Int32 {
        let id = entryId(state.stacks.map(stackId).sorted())
        guard let partial = state.partial else { return id }
        return pairId(base: id, partial: partialId(PartialKey(signature: entries[Int(id)].signature, character: partial)))
    }

    /// The matcher state of each id: what `GrammarConstraint` keeps between steps (the ids
    /// do not outlive `trim`).
    var states: States { States(automaton: self) }

    struct States {
        fileprivate let automaton: GrammarAutomaton
        subscript(id: Int) -> GrammarMatcher.State { automaton.state(id) }
        var count: Int { automaton.entries.count }
    }

    private func state(_ id: Int) -> GrammarMatcher.State {
        let entry = entries[id]
        return GrammarMatcher.State(stacks: Set(entry.stacks.map { stacks[Int($0)] }),
                                    partial: entry.partial < 0 ? nil : partials[Int(entry.partial)].character)
    }

    func isAccepting(_ id: Int32) -> Bool { entries[Int(id)].accepting }

    /// The state after `byte`, or `dead`.
    func next(_ id: Int32, _ byte: UInt8) -> Int32 {
        let entry = entries[Int(id)]
        guard entry.partial >= 0 else {
            let target = transition(id, byte)
            return target >= Self.dead ? target : pairId(base: id, partial: Self.flip(target))
        }
        let target = partialTransition(entry.partial, byte)
        if target >= 0 { return pairId(base: entry.base, partial: target) }
        return target == Self.dead ? Self.dead : completion(entry.base, interval: Self.flip(target))
    }

    // MARK: Transitions

    @inline(__always) private func transition(_ state: Int32, _ byte: UInt8) -> Int32 {
        let known = rows[Int(state) << 8 | Int(byte)]
        return known != Self.unknown ? known : computeTransition(state, byte)
    }

    private func computeTransition(_ state: Int32, _ byte: UInt8) -> Int32 {
        let signature = entries[Int(state)].signature
        let target: Int32
        if byte < 0x80 {
            target = completion(state, interval: matcher.asciiIntervals[Int(byte)])
        } else if let started = GrammarMatcher.PartialCharacter(lead: byte), couldContinue(started, signature: signature) {
            target = Self.flip(partialId(PartialKey(signature: signature, character: started)))
        } else {
            target = Self.dead
        }
        rows[Int(state) << 8 | Int(byte)] = target  // after completion(), which may move the rows
        return target
    }

    @inline(__always) private func partialTransition(_ partial: Int32, _ byte: UInt8) -> Int32 {
        guard byte & 0xC0 == 0x80 else { return Self.dead }
        let known = partialRows[Int(partial) << 6 | Int(byte & 0x3F)]
        return known != Self.unknown ? known : computePartialTransition(partial, byte)
    }

    private func computePartialTransition(_ partial: Int32, _ byte: UInt8) -> Int32 {
        let key = partials[Int(partial)]
        let target: Int32
        switch key.character.adding(byte) {
        case .invalid:
            target = Self.dead
        case .partial(let next):
            target = couldContinue(next, signature: key.signature) ? partialId(PartialKey(signature: key.signature, character: next)) : Self.dead
        case .character(let c):
            target = Self.flip(matcher.interval(of: c))
        }
        partialRows[Int(partial) << 6 | Int(byte & 0x3F)] = target  // after partialId(), which may move the rows
        return target
    }

    private func couldContinue(_ character: GrammarMatcher.PartialCharacter, signature: Int32) -> Bool {
        matcher.couldContinue(character, classes: signatures[Int(signature)])
    }

    /// The state after a character of `interval` from `state` (between characters), or
    /// `dead`: `GrammarMatcher.advance(_:codePoint:)` on interned stacks.
    private func completion(_ state: Int32, interval: Int32) -> Int32 {
        let key = Int64(state) << 32 | Int64(interval)
        if let known = completions[key] { return known }
        let target = advance(entries[Int(state)].stacks, codePoint: matcher.intervalStarts[Int(interval)]).map(entryId) ?? Self.dead
        completions[key] = target
        return target
    }

    /// The sorted stack ids after `c`; nil where the matcher's `advance` is nil.
    private func advance(_ stacks: [Int32], codePoint c: UInt32) -> [Int32]? {
        var next: [Int32] = []
        for stack in stacks {
            let top = stackClasses[Int(stack)]
            guard top >= 0, matcher.classes[Int(top)].contains(c) else { continue }
            guard let advanced = advanced(stack) else { return nil }
            next += advanced
        }
        next = Self.sortedUnique(next)
        return next.isEmpty || next.count > GrammarMatcher.maxStacks ? nil : next
    }

    private func advanced(_ stack: Int32) -> [Int32]? {
        switch advancedStacks[Int(stack)] {
        case .stacks(let ids):
            return ids
        case .tooAmbiguous:
            return nil
        case .unknown:
            guard let next = matcher.afterMatch(stacks[Int(stack)]) else {
                advancedStacks[Int(stack)] = .tooAmbiguous
                return nil
            }
            let ids = next.map(stackId)
            advancedStacks[Int(stack)] = .stacks(ids)
            return ids
        }
    }

    private static func sortedUnique(_ values: [Int32]) -> [Int32] {
        var sorted = values.sorted()
        var count = 0
        for value in sorted where count == 0 || sorted[count - 1] != value {
            sorted[count] = value
            count += 1
        }
        sorted.removeLast(sorted.count - count)
        return sorted
    }

    // MARK: Interning

    private func stackId(_ stack: [Int32]) -> Int32 {
        if let id = stackIds[stack] { return id }
        let id = Int32(stacks.count)
        stacks.append(stack)
        stackClasses.append(matcher.topClass(stack))
        advancedStacks.append(.unknown)
        stackIds[stack] = id
        return id
    }

    /// The id of the state between characters with these (sorted) stacks.
    private func entryId(_ sortedStacks: [Int32]) -> Int32 {
        if let id = entryIds[sortedStacks] { return id }
        let classes = Self.sortedUnique(sortedStacks.map { stackClasses[Int($0)] }.filter { $0 >= 0 })
        let signature: Int32
        if let known = signatureIds[classes] {
            signature = known
        } else {
            signature = Int32(signatures.count)
            signatures.append(classes)
            signatureIds[classes] = signature
        }
        let id = Int32(entries.count)
        append(Entry(stacks: sortedStacks, signature: signature, base: id, partial: -1, accepting: sortedStacks.first == Self.emptyStack))
        entryIds[sortedStacks] = id
        return id
    }

    private func pairId(base: Int32, partial: Int32) -> Int32 {
        let key = Pair(base: base, partial: partial)
        if let id = pairIds[key] { return id }
        let entry = entries[Int(base)]
        let id = Int32(entries.count)
        append(Entry(stacks: entry.stacks, signature: entry.signature, base: base, partial: partial, accepting: false))
        pairIds[key] = id
        return id
    }

    private func append(_ entry: Entry) {
        let id = entries.count
        Self.addRow(id, width: 8, to: &rows, capacity: &rowCapacity)
        entries.append(entry)
    }

    /// Row `index` (of `1 << width` entries) of a transition table, all `unknown`; the
    /// table doubles when it is full, so pointers into it are stale afterwards.
    private static func addRow(_ index: Int, width: Int, to table: inout UnsafeMutablePointer<Int32>, capacity: inout Int) {
        if index == capacity {
            let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: capacity << (width + 1))
            bigger.update(from: table, count: capacity << width)
            table.deallocate()
            table = bigger
            capacity <<= 1
        }
        (table + (index << width)).initialize(repeating: unknown, count: 1 << width)
    }

    private func partialId(_ key: PartialKey) -> Int32 {
        if let id = partialIds[key] { return id }
        let id = partials.count
        Self.addRow(id, width: 6, to: &partialRows, capacity: &partialRowCapacity)
        partials.append(key)
        partialIds[key] = Int32(id)
        return Int32(id)
    }

    // MARK: Masks

    /// Which ids may follow state `id` (bit i of word i/64), EOS ids only when the text so
    /// far is a whole match.
    func mask(_ id: Int32, vocabulary: TokenVocabulary, eosTokenIDs: Set<Int>) -> [UInt64] {
        if let cached = masks[id] { return cached }
        let layout = vocabulary.preorder
        // One word more, for the nodes where no token ends (`noToken` of `PreorderTrie.init`).
        var bits = [UInt64](repeating: 0, count: vocabulary.maskWords + 1)
        bits.withUnsafeMutableBufferPointer { bits in
            layout.nodes.withUnsafeBufferPointer { nodes in walk(from: id, nodes: nodes, maxDepth: layout.maxDepth, bits: bits) }
        }
        bits.removeLast()
        for (first, other) in layout.duplicates where bits[Int(first) >> 6] & (1 << UInt64(first & 63)) != 0 {
            bits[Int(other) >> 6] |= 1 << UInt64(other & 63)
        }
        if isAccepting(id) {
            for eos in eosTokenIDs where eos >= 0 && eos < vocabulary.count { bits[eos >> 6] |= 1 << UInt64(eos & 63) }
        }
        masks[id] = bits
        maskOrder.append(id)
        if maskOrder.count > Self.cachedMasks { masks[maskOrder.removeFirst()] = nil }
        return bits
    }

    /// Through the trie in depth-first order, front to back: a node's state follows from
    /// its parent's, which is the last node seen one level up; a byte that no stack takes
    /// skips the node's subtree.
    private func walk(from id: Int32, nodes: UnsafeBufferPointer<PreorderTrie.Node>, maxDepth: Int,
                      bits: UnsafeMutableBufferPointer<UInt64>) {
        // The state at each depth of the path to the current node: between characters
        // (partial -1), or inside one (where it began, partial state).
        let path = UnsafeMutablePointer<(state: Int32, partial: Int32)>.allocate(capacity: maxDepth + 1)
        defer { path.deallocate() }
        let start = entries[Int(id)]
        path[0] = (start.base, start.partial)
        // Local copies: the tables move only when a transition is computed.
        var rows = self.rows, partialRows = self.partialRows
        var n = 1
        while n < nodes.count {
            let node = nodes[n]
            let depth = Int(node.depth)
            let (state, partial) = path[depth - 1]
            var next = (state: state, partial: Int32(-1))
            if partial < 0 {
                var target = rows[Int(state) << 8 | Int(node.byte)]
                if target == Self.unknown {
                    target = computeTransition(state, node.byte)
                    (rows, partialRows) = (self.rows, self.partialRows)
                }
                if target >= 0 {
                    next.state = target
                } else if target == Self.dead {
                    n = Int(node.end)
                    continue
                } else {
                    next.partial = Self.flip(target)
                }
            } else {
                var target = Self.dead
                if node.byte & 0xC0 == 0x80 {
                    target = partialRows[Int(partial) << 6 | Int(node.byte & 0x3F)]
                    if target == Self.unknown {
                        target = computePartialTransition(partial, node.byte)
                        (rows, partialRows) = (self.rows, self.partialRows)
                    }
                }
                if target >= 0 {
                    next.partial = target
                } else if target != Self.dead {
                    target = completion(state, interval: Self.flip(target))
                    (rows, partialRows) = (self.rows, self.partialRows)
                    next.state = target
                }
                if target == Self.dead {
                    n = Int(node.end)
                    continue
                }
            }
            path[depth] = next
            // No branch on whether a token ends here: about half the nodes have one.
            bits[Int(node.token) >> 6] |= 1 << UInt64(node.token & 63)
            n += 1
        }
    }
}

/// `ByteTrie` renumbered depth first (preorder), so that a mask's walk reads it front to
/// back and a subtree is a run of nodes. `ByteTrie` numbers nodes as the tokens are
/// inserted, and a depth-first walk over it jumps across its ~100k nodes: a cache miss at
/// most of them, which made the walk itself the larger part of a mask.
struct PreorderTrie: Sendable {
    struct Node: Sendable {
        /// The end of the node's subtree: its descendants are the nodes after it up to here.
        var end: Int32
        /// The id whose bytes end here, or `noToken`.
        var token: Int32
        var depth: Int32
        /// The byte that leads here from the parent.
        var byte: UInt8
    }

    /// Node 0 is the root.
    let nodes: [Node]
    /// Ids with the same bytes as an earlier id (first, other): the walk marks only the first.
    let duplicates: [(first: Int32, other: Int32)]
    let maxDepth: Int

    /// `noToken`: a token id past the vocabulary's mask, whose word the walk writes and
    /// then drops.
    init(_ trie: ByteTrie, noToken: Int32) {
        let count = trie.tokenStart.count - 1
        var nodes = [Node](repeating: Node(end: Int32(count), token: noToken, depth: 0, byte: 0), count: count)
        var duplicates: [(first: Int32, other: Int32)] = []
        var maxDepth: Int32 = 0
        trie.withBuffers { trie in
            nodes.withUnsafeMutableBufferPointer { nodes in
                Self.number(trie, count: count, noToken: noToken, into: nodes, &duplicates, &maxDepth)
            }
        }
        self.nodes = nodes
        self.duplicates = duplicates
        self.maxDepth = Int(maxDepth)
    }

    private static func number(_ trie: ByteTrie.Buffers, count: Int, noToken: Int32, into nodes: UnsafeMutableBufferPointer<Node>,
                               _ duplicates: inout [(first: Int32, other: Int32)], _ maxDepth: inout Int32) {
        let childStart = trie.childStart, childNodes = trie.childNodes
        // Scratch arrays by node of `trie`: subtree size, preorder number, depth.
        let scratch = UnsafeMutablePointer<(size: Int32, number: Int32, depth: Int32)>.allocate(capacity: count)
        defer { scratch.deallocate() }
        scratch.initialize(repeating: (1, 0, 0), count: count)
        // The scans below need an order with parents before children. `trie`'s own
        // numbering has it when each node is created after its parent (as ByteTrie does),
        // and reading it front to back is far cheaper than a depth-first walk that jumps
        // across it; otherwise an order is found first.
        var order: [Int32] = []
        var ordered = true
        // Subtree sizes, children before parents.
        for n in stride(from: count - 1, through: 0, by: -1) {
            for c in Int(childStart[n])..<Int(childStart[n + 1]) {
                let child = Int(childNodes[c])
                ordered = ordered && child > n
                scratch[n].size += scratch[child].size
            }
        }
        if !ordered {
            order.reserveCapacity(count)
            var work: [Int32] = [0]
            while let n = work.popLast() {
                order.append(n)
                work += childNodes[Int(childStart[Int(n)])..<Int(childStart[Int(n) + 1])]
            }
            scratch.update(repeating: (1, 0, 0), count: count)
            for n in order.reversed() {
                for c in Int(childStart[Int(n)])..<Int(childStart[Int(n) + 1]) { scratch[Int(n)].size += scratch[Int(childNodes[c])].size }
            }
        }
        // Preorder numbers, parents before children: a node's first child comes right after
        // it, each next child after its elder sibling's subtree.
        for i in 0..<count {
            let n = ordered ? i : Int(order[i])
            let index = Int(scratch[n].number)
            let depth = scratch[n].depth + 1
            var next = Int32(index + 1)
            for c in Int(childStart[n])..<Int(childStart[n + 1]) {
                let child = Int(childNodes[c])
                let size = scratch[child].size
                scratch[child].number = next
                scratch[child].depth = depth
                nodes[Int(next)] = Node(end: next + size, token: noToken, depth: depth, byte: trie.childBytes[c])
                next += size
                maxDepth = max(maxDepth, depth)
            }
            let tokens = Int(trie.tokenStart[n])..<Int(trie.tokenStart[n + 1])
            if let first = tokens.first {
                nodes[index].token = trie.tokenIDs[first]
                for other in tokens.dropFirst() { duplicates.append((trie.tokenIDs[first], trie.tokenIDs[other])) }
            }
        }
    }
}
