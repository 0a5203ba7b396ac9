import Foundation
import Testing
@testable import Mixtral

/// Generation under a grammar on the default model (opt-in: GGUF_SMOLLM2, as the other
/// SmolLM2 tests): every output matches the grammar, greedy and sampled, and ends with EOS
/// only where the match is whole.
@Suite("Grammar-constrained generation (opt-in)", .enabled(if: ProcessInfo.processInfo.environment["GGUF_SMOLLM2"] != nil))
struct GrammarGenerationTests {
    static let grammars: [(String, String)] = [
        ("Name three fruits.", "root ::= \"Fruits:\\n\" item{3}\nitem ::= \"- \" [a-z]{1,10} \"\\n\""),
        ("Compute 12+7.", "root ::= expr \"=\" num\nexpr ::= num ([-+*] num){0,3}\nnum ::= [0-9]{1,3}"),
        ("Is the sky blue? Answer in JSON.", #"root ::= "{\"answer\": " ("true" | "false") ", \"reason\": \"" [a-zA-Z ,.]{1,24} "\"}""#),
    ]

    @Test func outputsMatchTheGrammar() throws {
        let bundle = try ModelBundle.load(path: ProcessInfo.processInfo.environment["GGUF_SMOLLM2"] ?? "", threads: 2)
        let tokenizer = try #require(bundle.tokenizer)
        let vocabulary = TokenVocabulary(tokenizer: tokenizer, vocabularySize: bundle.model.config.vocabSize)
        for (prompt, gbnf) in Self.grammars {
            let grammar = try Grammar(gbnf: gbnf)
            var options = bundle.defaults
            options.maxNewTokens = 60
            options.grammar = try GrammarConstraint(grammar: grammar, vocabulary: vocabulary, eosTokenIDs: bundle.defaults.eosTokenIDs)
            for seed in [nil, 7] as [UInt64?] {
                options.doSample = seed != nil
                options.seed = seed
                let ids = try tokenizer.encode(prompt, addSpecialTokens: true)
                let result = try bundle.model.generate(prompt: ids, options: options, tokenizer: tokenizer)
                let body = result.generatedIDs.filter { !options.eosTokenIDs.contains($0) }
                let text = tokenizer.decode(body, skipSpecialTokens: false)
                // Every grammar here is bounded, so the match completes and EOS follows.
                #expect(result.stopReason == .endOfSequence, "\(gbnf): \(text)")
                #expect(try GrammarMatcher(grammar).accepts(text), "\(gbnf): \(text)")
            }
        }
    }
}
