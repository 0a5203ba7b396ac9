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
