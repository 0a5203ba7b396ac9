/// The grammar's matcher turned into a lazily built deterministic automaton: each distinct
/// `GrammarMatcher.State` gets a small integer id, and each (id, byte) transition is
/// computed once and remembered in a row of 256 entries per state. A mask walks the
/// vocabulary trie through these rows, so the expensive stack-set work is done once per new
/// transition instead of once per trie node at every step (llama.cpp's grammar sampler
/// redoes it at every step).
///
/// Not thread-safe: `GrammarConstraint` holds it behind a lock.
final class GrammarAutomaton {
    let matcher: GrammarMatcher
    private(set) var states: [GrammarMatcher.State] = []
    private var ids: [GrammarMatcher.State: Int32] = [:]
    private var accepting: [Bool] = []
    /// `rows[id << 8 | byte]`: the target state, `dead`, or `unknown`.
    private var rows: UnsafeMutablePointer<Int32>
    private var rowCapacity: Int
    /// Masks of recent states by id, oldest first in `maskOrder`.
    private var masks: [Int32: [UInt64]] = [:]
    private var maskOrder: [Int32] = []

    /// A dead transition: no continuation of the grammar allows the byte.
    static let dead: Int32 = -1
    static let unknown: Int32 = -2
    /// Past this many states the tables are dropped and rebuilt from what is needed next
    /// (each state costs a 1 KiB row and its stack set; an ambiguous grammar can reach many).
    static let maxStates = 16_384
    static let cachedMasks = 256

    init(matcher: GrammarMatcher) {
        self.matcher = matcher
        rowCapacity = 64
        rows = .allocate(capacity: rowCapacity << 8)
    }

    deinit { rows.deallocate() }

    /// Drops everything when the tables have grown past their bounds. Call only between
    /// steps: ids handed out before are invalid afterwards.
    func trim() {
        guard states.count > Self.maxStates else { return }
        states = []
        ids = [:]
        accepting = []
        masks = [:]
        maskOrder = []
    }

    func id(of state: GrammarMatcher.State) -> Int32 {
        if let id = ids[state] { return id }
        let id = states.count
        if id == rowCapacity {
            let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: rowCapacity << 9)
            bigger.update(from: rows, count: rowCapacity << 8)
            rows.deallocate()
            rows = bigger
            rowCapacity <<= 1
        }
        (rows + (id << 8)).initialize(repeating: Self.unknown, count: 256)
        states.append(state)
        accepting.append(matcher.isAccepting(state))
        ids[state] = Int32(id)
        return Int32(id)
    }

    func isAccepting(_ id: Int32) -> Bool { accepting[Int(id)] }

    /// The state after `byte`, or `dead`.
    @inline(__always) func next(_ id: Int32, _ byte: UInt8) -> Int32 {
        let known = rows[Int(id) << 8 | Int(byte)]
        return known != Self.unknown ? known : computeNext(id, byte)
    }

    private func computeNext(_ id: Int32, _ byte: UInt8) -> Int32 {
        let target = matcher.advance(states[Int(id)], byte: byte).map { self.id(of: $0) } ?? Self.dead
        rows[Int(id) << 8 | Int(byte)] = target  // after id(of:), which may move the rows
        return target
    }

    /// Which ids may follow state `id` (bit i of word i/64), EOS ids only when the text so
    /// far is a whole match.
    func mask(_ id: Int32, vocabulary: TokenVocabulary, eosTokenIDs: Set<Int>) -> [UInt64] {
        if let cached = masks[id] { return cached }
        var bits = [UInt64](repeating: 0, count: vocabulary.maskWords)
        if isAccepting(id) {
            for eos in eosTokenIDs where eos >= 0 && eos < vocabulary.count { bits[eos >> 6] |= 1 << UInt64(eos & 63) }
        }
        bits.withUnsafeMutableBufferPointer { bits in
            vocabulary.trie.withBuffers { trie in walk(from: id, trie: trie, bits: bits) }
        }
        masks[id] = bits
        maskOrder.append(id)
        if maskOrder.count > Self.cachedMasks { masks[maskOrder.removeFirst()] = nil }
        return bits
    }

    /// Depth first through the trie; a byte that no stack takes cuts off its subtree.
    private func walk(from id: Int32, trie: ByteTrie.Buffers, bits: UnsafeMutableBufferPointer<UInt64>) {
        // Each node is pushed at most once, so the trie's size bounds the work list.
        let work = UnsafeMutablePointer<(node: Int32, state: Int32)>.allocate(capacity: trie.tokenStart.count)
        defer { work.deallocate() }
        work[0] = (0, id)
        var count = 1
        var table = rows
        while count > 0 {
            count -= 1
            let (node, state) = work[count]
            let n = Int(node)
            for t in Int(trie.tokenStart[n])..<Int(trie.tokenStart[n + 1]) {
                let token = Int(trie.tokenIDs[t])
                bits[token >> 6] |= 1 << UInt64(token & 63)
            }
            let row = Int(state) << 8
            for c in Int(trie.childStart[n])..<Int(trie.childStart[n + 1]) {
                let byte = trie.childBytes[c]
                var target = table[row | Int(byte)]
                if target == Self.unknown {
                    target = computeNext(state, byte)
                    table = rows
                }
                if target != Self.dead {
                    work[count] = (trie.childNodes[c], target)
                    count += 1
                }
            }
        }
    }
}
