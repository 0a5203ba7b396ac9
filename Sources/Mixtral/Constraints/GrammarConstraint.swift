import Foundation
import MixtralTokenizers
import Synchronization

/// A tokenizer's vocabulary as bytes, in a trie: what grammar masks walk. Built once per
/// tokenizer and shared by every grammar (a server builds it at start).
public final class TokenVocabulary: Sendable {
    /// Node 0 is the root; `children[n]` the next byte and node; `tokensEnding[n]` the ids
    /// whose bytes end at node n.
    let children: [[(byte: UInt8, node: Int32)]]
    let tokensEnding: [[Int32]]
    /// `Tokenizer.tokenBytes` of every id (nil: a special token).
    let tokenBytes: [[UInt8]?]

    public init(tokenizer: any Tokenizer, vocabularySize: Int) {
        tokenBytes = (0..<vocabularySize).map { tokenizer.tokenBytes($0) }
        var children: [[UInt8: Int32]] = [[:]]
        var tokensEnding: [[Int32]] = [[]]
        for (id, bytes) in tokenBytes.enumerated() {
            guard let bytes, !bytes.isEmpty else { continue }
            var node = 0
            for byte in bytes {
                if let next = children[node][byte] {
                    node = Int(next)
                } else {
                    children.append([:])
                    tokensEnding.append([])
                    children[node][byte] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            tokensEnding[node].append(Int32(id))
        }
        self.children = children.map { $0.sorted { $0.key < $1.key }.map { (byte: $0.key, node: $0.value) } }
        self.tokensEnding = tokensEnding
    }
}

/// A grammar applied to generation (llama.cpp's `--grammar`): before each token is chosen,
/// only the tokens whose bytes continue a match of the grammar keep their scores, and the
/// end-of-sequence ids only once the text so far is a complete match. Each sequence gets
/// its own matching state through `processor(promptLength:)`.
public final class GrammarConstraint: Sendable, Equatable {
    public let matcher: GrammarMatcher
    let eosTokenIDs: Set<Int>
    let vocabulary: TokenVocabulary
    var tokenBytes: [[UInt8]?] { vocabulary.tokenBytes }
    /// Masks of recent states: inside a repetition such as [^"]* the state after each
    /// character is the same, and so is its mask.
    private let masks = Mutex(MaskCache())
    struct MaskCache {
        var entries: [GrammarMatcher.State: [Bool]] = [:]
        var order: [GrammarMatcher.State] = []
    }
    static let cachedMasks = 64

    public init(grammar: Grammar, vocabulary: TokenVocabulary, eosTokenIDs: [Int]) throws(GrammarError) {
        matcher = try GrammarMatcher(grammar)
        self.eosTokenIDs = Set(eosTokenIDs)
        self.vocabulary = vocabulary
    }

    public static func == (a: GrammarConstraint, b: GrammarConstraint) -> Bool { a === b }

    /// The processor for one sequence whose prompt has `promptLength` ids.
    public func processor(promptLength: Int) -> any LogitsProcessor {
        GrammarProcessor(constraint: self, promptLength: promptLength)
    }

    /// Which ids may come next in `state` (nil: the match is dead; only EOS may follow).
    func allowedTokens(_ state: GrammarMatcher.State?, count: Int) -> [Bool] {
        if let state, let cached = masks.withLock({ $0.entries[state] }), cached.count == count { return cached }
        let allowed = computeAllowedTokens(state, count: count)
        if let state {
            masks.withLock { cache in
                if cache.entries.updateValue(allowed, forKey: state) == nil { cache.order.append(state) }
                if cache.order.count > Self.cachedMasks { cache.entries[cache.order.removeFirst()] = nil }
            }
        }
        return allowed
    }

    private func computeAllowedTokens(_ state: GrammarMatcher.State?, count: Int) -> [Bool] {
        var allowed = [Bool](repeating: false, count: count)
        guard let state else {
            for id in eosTokenIDs where id < count { allowed[id] = true }
            return allowed
        }
        if matcher.isAccepting(state) { for id in eosTokenIDs where id < count { allowed[id] = true } }
        // Depth first through the trie; a byte no stack takes cuts off its whole subtree.
        var work: [(node: Int32, state: GrammarMatcher.State)] = [(0, state)]
        while let (node, current) = work.popLast() {
            for id in vocabulary.tokensEnding[Int(node)] where Int(id) < count { allowed[Int(id)] = true }
            for (byte, child) in vocabulary.children[Int(node)] {
                if let next = matcher.advance(current, byte: byte) { work.append((child, next)) }
            }
        }
        return allowed
    }
}

/// One sequence's match: advanced by the tokens generated since the last step.
final class GrammarProcessor: LogitsProcessor, @unchecked Sendable {
    let constraint: GrammarConstraint
    let promptLength: Int
    private let lock = NSLock()
    /// The state after the first `consumed` generated ids; nil once dead.
    private var state: GrammarMatcher.State?
    private var consumed = 0

    init(constraint: GrammarConstraint, promptLength: Int) {
        self.constraint = constraint
        self.promptLength = promptLength
        state = constraint.matcher.initial
    }

    func process(_ scores: inout [Float], previous: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        let generated = previous.dropFirst(promptLength)
        for id in generated.dropFirst(consumed) {
            guard let current = state else { break }
            guard id >= 0, id < constraint.tokenBytes.count, let bytes = constraint.tokenBytes[id] else {
                state = nil  // a special token: the grammar's text ends here
                break
            }
            var next: GrammarMatcher.State? = current
            for byte in bytes {
                guard let s = next else { break }
                next = constraint.matcher.advance(s, byte: byte)
            }
            state = next
        }
        consumed = generated.count
        let allowed = constraint.allowedTokens(state, count: scores.count)
        for index in scores.indices where !allowed[index] { scores[index] = -.infinity }
    }
}
