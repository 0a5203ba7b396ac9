import Foundation
import Mixtral

/// Turns the prompt fields of a request into token ids.
struct PromptReader: Sendable {
    let tokenizer: any Tokenizer
    let chatEncoder: ChatEncoder?
    let vocabularySize: Int
    let limits: ServerLimits

    /// /v1/completions `prompt`: a string, a list of strings, a list of token ids, or a list
    /// of such lists. Text is encoded with BOS as `mixtral generate` does.
    func completionPrompts(_ fields: RequestFields) throws(APIError) -> [[Int]] {
        guard let value = fields["prompt"] else { throw .invalidRequest("'prompt' is required", param: "prompt") }
        let expected = "a string, a list of strings, a list of token ids or a list of such lists"
        if let text = value.stringValue { return [try encode(text)] }
        guard let items = value.arrayValue, !items.isEmpty else { throw .wrongType("prompt", expected: expected) }
        if items.allSatisfy({ $0.intValue != nil }) { return [try checked(items.compactMap(\.intValue))] }
        guard items.count <= limits.maxPrompts else {
            throw .invalidValue("prompt", "at most \(limits.maxPrompts) prompts per request")
        }
        var prompts: [[Int]] = []
        for item in items {
            if let text = item.stringValue {
                prompts.append(try encode(text))
            } else if let ids = item.arrayValue, !ids.isEmpty, ids.allSatisfy({ $0.intValue != nil }) {
                prompts.append(try checked(ids.compactMap(\.intValue)))
            } else {
                throw .wrongType("prompt", expected: expected)
            }
        }
        return prompts
    }

    /// /v1/chat/completions `messages`, through the model's chat template, with the tools
    /// in the model's tool format. A forced call in Mistral's format starts with the
    /// `[TOOL_CALLS]` token, which the prompt then ends with.
    func chatPrompt(_ fields: RequestFields, tools: ToolRequest?) throws(APIError) -> [Int] {
        guard let chatEncoder else {
            throw .invalidRequest("This model has no chat template, so /v1/chat/completions is unavailable; use /v1/completions")
        }
        let messages = try chatMessages(fields)
        do {
            guard let tools else { return try chatEncoder.encode(messages: messages) }
            var ids = try chatEncoder.encodeWithTools(messages: messages, tools: tools.tools)
            if tools.forced, case .mistral(let toolCallsID) = chatEncoder.toolCallFormat { ids.append(toolCallsID) }
            return ids
        } catch {
            throw .invalidRequest("The messages cannot be formatted with the chat template: \(error)", param: "messages")
        }
    }

    func chatMessages(_ fields: RequestFields) throws(APIError) -> [ChatMessage] {
        guard let value = fields["messages"] else { throw .invalidRequest("'messages' is required", param: "messages") }
        guard let list = value.arrayValue, !list.isEmpty else {
            throw .wrongType("messages", expected: "a non-empty list of messages")
        }
        var messages: [ChatMessage] = []
        for item in list {
            guard var members = item.objectValue else { throw .wrongType("messages", expected: "a list of objects") }
            guard let role = item["role"]?.stringValue else {
                throw .invalidRequest("each message needs a string 'role'", param: "messages")
            }
            guard ["system", "user", "assistant", "tool", "developer"].contains(role) else {
                throw .invalidValue("messages", "unknown message role '\(role)'")
            }
            // OpenAI content parts [{"type": "text", "text": ...}] become one string.
            if let index = members.firstIndex(where: { $0.key == "content" }), let parts = members[index].value.arrayValue {
                var text = ""
                for part in parts {
                    guard part["type"]?.stringValue == "text", let piece = part["text"]?.stringValue else {
                        throw .invalidValue("messages", "only text content parts are supported")
                    }
                    text += piece
                }
                members[index].value = .string(text)
            }
            if let content = members.first(where: { $0.key == "content" })?.value, !content.isNull, content.stringValue == nil {
                throw .wrongType("messages", expected: "messages whose 'content' is a string or a list of text parts")
            }
            if role == "developer", let index = members.firstIndex(where: { $0.key == "role" }) {
                members[index].value = .string("system")
            }
            do {
                messages.append(try ChatMessage(json: .object(members)))
            } catch {
                throw .invalidRequest("invalid message: \(error)", param: "messages")
            }
        }
        return messages
    }

    func encode(_ text: String) throws(APIError) -> [Int] {
        do {
            return try tokenizer.encode(text, addSpecialTokens: true)
        } catch {
            throw .invalidRequest("The prompt cannot be tokenized: \(error)", param: "prompt")
        }
    }

    func checked(_ ids: [Int]) throws(APIError) -> [Int] {
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw .invalidValue("prompt", "token id \(bad) is out of range: the vocabulary has \(vocabularySize) ids")
        }
        return ids
    }

    /// Text of one token as OpenAI's logprobs show it (SentencePiece's "▁" as a space).
    func tokenText(_ id: Int) -> String {
        if let sentencePiece = tokenizer as? SentencePieceTokenizer {
            return (sentencePiece.piece(for: id) ?? "").replacingOccurrences(of: "\u{2581}", with: " ")
        }
        return tokenizer.decode([id], skipSpecialTokens: false)
    }
}
