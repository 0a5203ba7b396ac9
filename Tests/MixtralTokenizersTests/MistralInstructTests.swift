import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct MistralInstructTests {
    /// Every conversation against mistral-common's encode_chat_completion (v1 and v3 tokenizers).
    @Test(arguments: [("v1", MistralInstructEncoder.Version.v1), ("v3", MistralInstructEncoder.Version.v3)])
    func matchesMistralCommon(name: String, version: MistralInstructEncoder.Version) throws {
        let tokenizer = try SentencePieceTokenizer(contentsOf: Fixtures.path("\(name)/tokenizer.model"))
        let encoder = try MistralInstructEncoder(tokenizer: tokenizer, version: version)
        let conversations = try #require(Fixtures.json("chat/conversations.json").arrayValue)
        let references = try #require(Fixtures.json("chat/mistral_\(name).json").arrayValue)
        #expect(conversations.count == references.count)
        var encodedCount = 0, errorCount = 0
        for (index, (conversation, reference)) in zip(conversations, references).enumerated() {
            let messages = try (conversation["messages"]?.arrayValue ?? []).map(ChatMessage.init(json:))
            let result = Result { try encoder.encode(messages: messages, tools: conversation["tools"]?.arrayValue) }
            if let expected = reference["tokens"]?.arrayValue?.compactMap(\.intValue) {
                switch result {
                case .success(let ids):
                    #expect(ids == expected, "\(name) conversation \(index)")
                    encodedCount += 1
                case .failure(let error):
                    Issue.record("\(name) conversation \(index): \(error)")
                }
            } else {
                if case .success(let ids) = result {
                    Issue.record("\(name) conversation \(index): encoded \(ids), mistral-common raised \(reference["error"]?.stringValue ?? "")")
                }
                errorCount += 1
            }
        }
        #expect(encodedCount >= (version == .v3 ? 20 : 14))
        #expect(encodedCount + errorCount == conversations.count)
    }

    @Test func v3RequiresControlTokens() throws {
        let v1 = try SentencePieceTokenizer(contentsOf: Fixtures.path("v1/tokenizer.model"))
        #expect(throws: MistralInstructError.self) { try MistralInstructEncoder(tokenizer: v1, version: .v3) }
        let v3 = try SentencePieceTokenizer(contentsOf: Fixtures.path("v3/tokenizer.model"))
        let encoder = try MistralInstructEncoder(tokenizer: v3, version: .v3)
        #expect(throws: MistralInstructError.self) { try encoder.encode(messages: []) }
        #expect(throws: MistralInstructError.self) { try encoder.encode(messages: [.user("a"), .assistant("b")]) }
        #expect(try encoder.encode(messages: [.user("Hello!")]) == [1, 3, 23325, 29576, 4])
    }
}

@Suite struct ChatEncoderTests {
    /// Template + tokenizer -> ids, against transformers' apply_chat_template(tokenize=True), for
    /// tokenizer.json (v3-hf, smollm2) and for a bare tokenizer.model (v3, control-token text parsed).
    @Test(arguments: [("mistral-tools@v3-hf", "v3-hf", "mistral-tools"), ("mistral@v3-hf", "v3-hf", "mistral"),
                      ("mistral-tools@v3", "v3", "mistral-tools"), ("chatml@smollm2", "smollm2", "chatml")])
    func templateTokensMatchTransformers(label: String, folder: String, templateName: String) throws {
        let loaded = try TokenizerLoader.loadWithConfiguration(path: Fixtures.path(folder))
        let template = try #require(Fixtures.json("chat/templates.json")[templateName]?.stringValue)
        let encoder = try ChatEncoder(tokenizer: loaded.tokenizer, template: template,
                                      bosToken: loaded.configuration.bosToken ?? "<s>", eosToken: loaded.configuration.eosToken ?? "</s>")
        let conversations = try #require(Fixtures.json("chat/conversations.json").arrayValue)
        let references = try #require(Fixtures.json("chat/jinja_tokens.json")[label]?.arrayValue)
        var compared = 0
        for (index, (conversation, reference)) in zip(conversations, references).enumerated() {
            guard let expected = reference["tokens"]?.arrayValue?.compactMap(\.intValue) else { continue }
            let messages = try (conversation["messages"]?.arrayValue ?? []).map(ChatMessage.init(json:))
            let ids = try encoder.encode(messages: messages, tools: conversation["tools"]?.arrayValue,
                                         addGenerationPrompt: conversation["add_generation_prompt"]?.boolValue ?? false)
            #expect(ids == expected, "\(label) conversation \(index)")
            compared += 1
        }
        #expect(compared >= 13)
    }

    @Test func withoutTemplateUsesMistralCommon() throws {
        let loaded = try TokenizerLoader.loadWithConfiguration(path: Fixtures.path("v3"))
        let encoder = try ChatEncoder(loaded: loaded)
        guard case .mistral(let mistral) = encoder.format else { Issue.record("expected mistral-common format"); return }
        #expect(mistral.version == .v3)
        #expect(try encoder.encode(messages: [.user("Hello!")]) == [1, 3, 23325, 29576, 4])
        let v1 = try ChatEncoder(loaded: try TokenizerLoader.loadWithConfiguration(path: Fixtures.path("v1")))
        guard case .mistral(let mistralV1) = v1.format else { Issue.record("expected mistral-common format"); return }
        #expect(mistralV1.version == .v1)
        #expect(throws: (any Error).self) { try ChatEncoder(loaded: try TokenizerLoader.loadWithConfiguration(path: Fixtures.path("v1-hf"))) }
    }
}
