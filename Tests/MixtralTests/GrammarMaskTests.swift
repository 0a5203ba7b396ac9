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
