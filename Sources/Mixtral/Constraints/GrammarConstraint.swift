import Foundation
import MixtralTokenizers
import Synchronization

/// A tokenizer's vocabulary as bytes, in a trie: what grammar masks walk. Built once per
/// tokenizer and shared by every grammar (a server builds it at the first grammar request).
public final class TokenVocabulary: Sendable {
    /// `Tokenizer.tokenBytes` of every id (nil: a special token).
    let tokenBytes: [[UInt8]?]
    let trie: ByteTrie
    /// The trie in the order mask walks read it (built once per tokenizer, not per grammar).
    let preorder: PreorderTrie
    var count: Int { tokenBytes.count }
    var maskWords: Int { (tokenBytes.count + 63) / 64 }

    public init(tokenizer: any Tokenizer, vocabularySize: Int) {
        tokenBytes = (0..<vocabularySize).map { tokenizer.tokenBytes($0) }
        trie = ByteTrie(tokenBytes)
        preorder = PreorderTrie(trie, noToken: Int32((tokenBytes.count + 63) / 64 * 64))
    }
}

/// The token byte strings as a trie in flat arrays (node 0 is the root): node n's children
/// are `childBytes`/`childNodes` in `childStart[n]..<childStart[n+1]`, sorted by byte, and
/// the ids whose bytes end at n are `tokenIDs` in `tokenStart[n]..<tokenStart[n+1]`.
struct ByteTrie: Sendable {
    let childStart: [Int32]
    let childBytes: [UInt8]
    let childNodes: [Int32]
    let tokenStart: [Int32]
    let tokenIDs: [Int32]

    init(_ tokens: [[UInt8]?]) {
        var children: [[UInt8: Int32]] = [[:]]
        var ending: [[Int32]] = [[]]
        for (id, bytes) in tokens.enumerated() {
            guard let bytes, !bytes.isEmpty else { continue }
            var node = 0
            for byte in bytes {
                if let next = children[node][byte] {
                    node = Int(next)
                } else {
                    children.append([:])
                    ending.append([])
                    children[node][byte] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            ending[node].append(Int32(id))
        }
        var childStart: [Int32] = [0], childBytes: [UInt8] = [], childNodes: [Int32] = []
        var tokenStart: [Int32] = [0], tokenIDs: [Int32] = []
        for node in children.indices {
            for (byte, child) in children[node].sorted(by: { $0.key < $1.key }) {
                childBytes.append(byte)
                childNodes.append(child)
            }
            childStart.append(Int32(childBytes.count))
            tokenIDs += ending[node]
            tokenStart.append(Int32(tokenIDs.count))
        }
        (self.childStart, self.childBytes, self.childNodes) = (childStart, childBytes, childNodes)
        (self.tokenStart, self.tokenIDs) = (tokenStart, tokenIDs)
    }

    struct Buffers {
        let childStart: UnsafeBufferPointer<Int32>
        let childBytes: UnsafeBufferPointer<UInt8>
        let childNodes: UnsafeBufferPointer<Int32>
        let tokenStart: UnsafeBufferPointer<Int32>
        let tokenIDs: UnsafeBufferPointer<Int32>
    }

    /// The arrays as buffers, for the mask walk's inner loop.
    func withBuffers<R>(_ body: (Buffers) -> R) -> R {
        childStart.withUnsafeBufferPointer { cs in
            childBytes.withUnsafeBufferPointer { cb in
                childNodes.withUnsafeBufferPointer { cn in
                    tokenStart.withUnsafeBufferPointer { ts in
                        tokenIDs.withUnsafeBufferPointer { ti in
                            body(Buffers(childStart: cs, childBytes: cb, childNodes: cn, tokenStart: ts, tokenIDs: ti))
                        }
                    }
                }
            }
        }
    }
}

/// A grammar applied to generation (llama.cpp's `--grammar`): before each token is chosen,
/// only the tokens whose bytes continue a match of the grammar keep their scores, and the
/// end-of-sequence ids only once the text so far is a complete match. Each sequence gets
/// its own matching state through `processor(promptLength:)`; the automaton and its masks
/// are shared by all of them.
public final class GrammarConstraint: Sendable, Equatable {
    public let matcher: GrammarMatcher
    let eosTokenIDs: Set<Int>
    let vocabulary: TokenVocabulary
    private let automaton: Mutex<GrammarAutomaton>

    public init(grammar: Grammar, vocabulary: TokenVocabulary, eosTokenIDs: [Int]) throws(GrammarError) {
        let matcher = try GrammarMatcher(grammar)
        self.matcher = matcher
        self.eosTokenIDs = Set(eosTokenIDs)
        self.vocabulary = vocabulary
        automaton = Mutex(GrammarAutomaton(matcher: matcher))
    }

    public static func == (a: GrammarConstraint, b: GrammarConstraint) -> Bool { a === b }

    /// The processor for one sequence whose prompt has `promptLength` ids.
    public func processor(promptLength: Int) -> any LogitsProcessor {
        GrammarProcessor(constraint: self, promptLength: promptLength)
    }

    /// `state` advanced over the bytes of `tokens`, and the mask of the ids that may come
    /// next (bit i of word i/64). A special token, or a byte the grammar refuses, ends the
    /// match (nil): then only EOS may follow.
    func advance(_ state: GrammarMatcher.State?, by tokens: some Sequence<Int>) -> (GrammarMatcher.State?, [UInt64]) {
        automaton.withLock { automaton in
            automaton.trim()
            guard let state else { return (nil, endMask()) }
            var id = automaton.id(of: state)
            for token in tokens {
                guard token >= 0, token < vocabulary.count, let bytes = vocabulary.tokenBytes[token] else { return (nil, endMask()) }
                for byte in bytes {
                    id = automaton.next(id, byte)
                    if id == GrammarAutomaton.dead { return (nil, endMask()) }
                }
            }
            return (automaton.states[Int(id)], automaton.mask(id, vocabulary: vocabulary, eosTokenIDs: eosTokenIDs))
        }
    }

    private func endMask() -> [UInt64] {
        var bits = [UInt64](repeating: 0, count: vocabulary.maskWords)
        for eos in eosTokenIDs where eos >= 0 && eos < vocabulary.count { bits[eos >> 6] |= 1 << UInt64(eos & 63) }
        return bits
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
        let (next, allowed) = constraint.advance(state, by: generated.dropFirst(consumed))
        state = next
        consumed = generated.count
        scores.withUnsafeMutableBufferPointer { scores in
            allowed.withUnsafeBufferPointer { allowed in
                for index in scores.indices {
                    let word = index >> 6
                    if word >= allowed.count || allowed[word] & (1 << UInt64(index & 63)) == 0 { scores[index] = -.infinity }
                }
            }
        }
    }
}
