import Foundation
import Testing
@testable import Mixtral

/// The token masks of `GrammarConstraint` (a walk of the vocabulary trie through the lazily
/// built automaton) against the definition: a token is allowed when every one of its bytes
/// advances the matcher, EOS when the text so far is a whole match. Along seeded random
/// walks, for a byte-level BPE vocabulary (SmolLM2) and a SentencePiece one (Mixtral v3).
@Suite("Grammar masks")
struct GrammarMaskTests {
    static let tokenizers = ["smollm2/tokenizer.json", "v3/tokenizer.model"]
    static let grammars = [
        GrammarTests.json,
        GrammarTests.arithmetic,
        #"root ::= "{\"name\": \"" [^"\\]{1,40} "\", \"tags\": [" ("\"" [a-zé日-本]+ "\"" (", " "\"" [a-z]+ "\"")*)? "]}""#,
        "root ::= (\"yes\" | \"no\" | \"maybe not\") \" \" [0-9]{2,4}",
    ]

    static func vocabulary(_ name: String) throws -> TokenVocabulary {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MixtralTokenizersTests/Fixtures").appendingPathComponent(name).path
        let tokenizer = try TokenizerLoader.load(path: folder)
        return TokenVocabulary(tokenizer: tokenizer, vocabularySize: tokenizer.vocabularySize)
    }

    @Test(arguments: tokenizers)
    func masksEqualTheDefinition(tokenizerName: String) throws {
        let vocabulary = try Self.vocabulary(tokenizerName)
        let eos = [2]
        var random = SplitMix64(seed: 11)
        for gbnf in Self.grammars {
            let constraint = try GrammarConstraint(grammar: try Grammar(gbnf: gbnf), vocabulary: vocabulary, eosTokenIDs: eos)
            let matcher = constraint.matcher
            var state: GrammarMatcher.State? = matcher.initial
            var chosen: [Int] = []
            for step in 0..<5 {
                let (current, mask) = constraint.advance(state, by: chosen)
                state = current
                chosen = []
                guard let current else { break }
                var allowedIDs: [Int] = []
                for id in 0..<vocabulary.count {
                    let allowed = mask[id >> 6] & (1 << UInt64(id & 63)) != 0
                    if allowed && !eos.contains(id) { allowedIDs.append(id) }
                    // A fifth of the ids at each step, a different fifth each time: the
                    // definition is slow to evaluate in a debug build.
                    guard id % 5 == step % 5 else { continue }
                    let expected: Bool
                    if eos.contains(id) {
                        expected = matcher.isAccepting(current)
                    } else if let bytes = vocabulary.tokenBytes[id], !bytes.isEmpty {
                        var s: GrammarMatcher.State? = current
                        for byte in bytes { s = s.flatMap { matcher.advance($0, byte: byte) } }
                        expected = s != nil
                    } else {
                        expected = false
                    }
                    #expect(allowed == expected, "\(tokenizerName) step \(step) id \(id) \(vocabulary.tokenBytes[id] ?? [])")
                }
                guard !allowedIDs.isEmpty else { break }
                chosen = [allowedIDs[Int(random.next() % UInt64(allowedIDs.count))]]
            }
        }
    }

    /// Byte-level BPE has a token for every byte, so a token may end inside a multi-byte
    /// character: the masks there, and after the character, equal the definition. The
    /// automaton shares the states of a character's first bytes between stacks with the
    /// same classes on top, so this also checks that sharing against counts that differ.
    @Test func masksInsideACharacter() throws {
        let vocabulary = try Self.vocabulary("smollm2/tokenizer.json")
        let constraint = try GrammarConstraint(grammar: try Grammar(gbnf: #"root ::= [a-zé]{1,3} "日""#), vocabulary: vocabulary, eosTokenIDs: [2])
        let matcher = constraint.matcher
        var state: GrammarMatcher.State? = matcher.initial
        for (step, byte) in Array("aé日".utf8).enumerated() {
            let token = try #require(vocabulary.tokenBytes.firstIndex { $0 == [byte] })
            let (next, mask) = constraint.advance(state, by: [token])
            let current = try #require(next, "byte \(step)")
            for id in 0..<vocabulary.count where id % 3 == step % 3 {
                var s: GrammarMatcher.State? = id == 2 ? nil : current
                for byte in vocabulary.tokenBytes[id] ?? [] { s = s.flatMap { matcher.advance($0, byte: byte) } }
                let expected = id == 2 ? matcher.isAccepting(current) : (vocabulary.tokenBytes[id]?.isEmpty == false && s != nil)
                #expect((mask[id >> 6] & (1 << UInt64(id & 63)) != 0) == expected, "byte \(step) id \(id) \(vocabulary.tokenBytes[id] ?? [])")
            }
            state = current
        }
        #expect(state.map(matcher.isAccepting) == true)
    }

    /// A character after which the stacks exceed the matcher's bounds is refused by the
    /// automaton as by the matcher.
    @Test func tooAmbiguousTransitionIsDead() throws {
        let vocabulary = try Self.vocabulary("v3/tokenizer.model")
        let gbnf = "root ::= \"x\" w | \"y\"\nw ::= " + (0..<5000).map { "\"\" z\($0)" }.joined(separator: " | ") + "\n"
            + (0..<5000).map { "z\($0) ::= \"a\"" }.joined(separator: "\n")
        let constraint = try GrammarConstraint(grammar: try Grammar(gbnf: gbnf), vocabulary: vocabulary, eosTokenIDs: [2])
        #expect(constraint.matcher.advance(constraint.matcher.initial, byte: UInt8(ascii: "x")) == nil)
        let x = try #require(vocabulary.tokenBytes.firstIndex { $0 == Array("x".utf8) })
        let y = try #require(vocabulary.tokenBytes.firstIndex { $0 == Array("y".utf8) })
        let (_, mask) = constraint.advance(constraint.matcher.initial, by: [])
        #expect(mask[x >> 6] & (1 << UInt64(x & 63)) == 0)
        #expect(mask[y >> 6] & (1 << UInt64(y & 63)) != 0)
        #expect(constraint.advance(constraint.matcher.initial, by: [x]).0 == nil)
    }

    /// A token the grammar refuses, or a special token, ends the match: only EOS follows.
    @Test func deadMatchAllowsOnlyEOS() throws {
        let vocabulary = try Self.vocabulary("v3/tokenizer.model")
        let constraint = try GrammarConstraint(grammar: try Grammar(gbnf: "root ::= [0-9]+"), vocabulary: vocabulary, eosTokenIDs: [2])
        for tokens in [[1], [Int(vocabulary.tokenBytes.firstIndex { $0 == Array("a".utf8) } ?? 0)], [-5], [1 << 40]] {
            let (state, mask) = constraint.advance(constraint.matcher.initial, by: tokens)
            #expect(state == nil)
            #expect(mask.enumerated().allSatisfy { $0.offset == 0 ? $0.element == 1 << 2 : $0.element == 0 })
        }
    }
}
