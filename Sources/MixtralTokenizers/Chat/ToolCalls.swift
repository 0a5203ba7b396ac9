import Foundation

/// How a model writes tool calls, and how we show it the tools and read its calls back.
///
/// - `mistral`: mistral-common's v3 format (Mixtral-8x22B-Instruct): tools in
///   `[AVAILABLE_TOOLS]`, calls as the `[TOOL_CALLS]` control token then a JSON list
///   `[{"name": ..., "arguments": {...}}]`, results in `[TOOL_RESULTS]`. Rendered by
///   mistral-common's encoding or by a chat template that writes `[TOOL_CALLS]`.
/// - `hermes`: the `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` style of
///   Hermes-2-Pro and Qwen2.5 templates. When the chat template has no tools of its own
///   (SmolLM2's), the tools go into a system message in Hermes's words, assistant calls
///   become `<tool_call>` blocks and tool results `<tool_response>` blocks in a user turn.
public enum ToolCallFormat: Sendable, Equatable {
    case mistral(toolCallsTokenID: Int)
    /// `templateRendersTools`: the chat template takes `tools` and tool messages itself.
    case hermes(templateRendersTools: Bool)
}

extension ChatEncoder {
    /// The tool-call format of this model's chat encoding.
    public var toolCallFormat: ToolCallFormat {
        let toolCallsID = Self.specialTokenID("[TOOL_CALLS]", in: tokenizer)
        switch format {
        case .mistral:
            if let toolCallsID { return .mistral(toolCallsTokenID: toolCallsID) }
            return .hermes(templateRendersTools: false)  // v1 has no tool tokens
        case .template(let template):
            if template.source.contains("[TOOL_CALLS]"), let toolCallsID { return .mistral(toolCallsTokenID: toolCallsID) }
            // A template that names `tools` renders them; Hermes parsing is the common
            // denominator for the rest.
            return .hermes(templateRendersTools: template.source.contains("tools"))
        }
    }

    static func specialTokenID(_ text: String, in tokenizer: any Tokenizer) -> Int? {
        if let sentencePiece = tokenizer as? SentencePieceTokenizer {
            return (0..<min(sentencePiece.vocabularySize, 1024)).first {
                sentencePiece.isSpecial($0) && sentencePiece.piece(for: $0) == text
            }
        }
        if let hf = tokenizer as? HFTokenizer { return hf.addedTokens.first { $0.content == text && $0.special }?.id }
        return nil
    }

    /// Prompt ids for a conversation with tools, in the model's tool format: as `encode`,
    /// except that a template without tools of its own gets them in Hermes's words (where
    /// transformers' `apply_chat_template` would drop them).
    public func encodeWithTools(messages: [ChatMessage], tools: [JSONValue], addGenerationPrompt: Bool = true) throws -> [Int] {
        switch toolCallFormat {
        case .mistral, .hermes(templateRendersTools: true):
            return try encode(messages: messages, tools: tools.isEmpty ? nil : tools, addGenerationPrompt: addGenerationPrompt)
        case .hermes(templateRendersTools: false):
            return try encode(messages: HermesTools.messages(messages, tools: tools), tools: nil,
                              addGenerationPrompt: addGenerationPrompt)
        }
    }
}

/// The Hermes tool prompt for templates that have none (NousResearch Hermes-2-Pro's system
/// prompt, which Qwen2.5's template also uses).
public enum HermesTools {
    /// The conversation with the tools described in the system message, assistant calls as
    /// `<tool_call>` blocks and tool results as `<tool_response>` blocks in user turns.
    public static func messages(_ messages: [ChatMessage], tools: [JSONValue]) -> [ChatMessage] {
        var out: [ChatMessage] = []
        var rest = messages[...]
        if !tools.isEmpty {
            var system = "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags. "
                + "You may call one or more functions to assist with the user query. Don't make assumptions about what values to plug into functions. "
                + "Here are the available tools:\n<tools>\n"
            for tool in tools { system += (tool["function"] ?? tool).serialized() + "\n" }
            system += "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
                + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
            if let first = rest.first, first.role == "system" {
                system = (first.content ?? "") + "\n\n" + system
                rest = rest.dropFirst()
            }
            out.append(.system(system))
        }
        for message in rest {
            switch message.role {
            case "assistant" where !message.toolCalls.isEmpty:
                var text = message.content.map { $0.isEmpty ? "" : $0 + "\n" } ?? ""
                text += message.toolCalls.map { call in
                    "<tool_call>\n" + JSONValue.object([("name", .string(call.name)), ("arguments", call.arguments)]).serialized() + "\n</tool_call>"
                }.joined(separator: "\n")
                out.append(.assistant(text))
            case "tool":
                let block = "<tool_response>\n" + (message.content ?? "") + "\n</tool_response>"
                // Consecutive results share one user turn, as Qwen2.5's template writes them.
                if let last = out.last, last.role == "user", last.content?.hasSuffix("</tool_response>") == true {
                    out[out.count - 1].content = (last.content ?? "") + "\n" + block
                } else {
                    out.append(.user(block))
                }
            default:
                out.append(message)
            }
        }
        return out
    }
}

/// Reads tool calls out of a model's answer.
public enum ToolCallParser {
    /// The answer split into its text and its calls; nil when it has no call or a call that
    /// does not parse (then the whole answer is text, as llama-server returns it).
    /// `generatedIDs` and `textBefore` locate Mistral's `[TOOL_CALLS]` token: the text after
    /// it is the JSON list; `textBefore(i)` is the text of the first i generated ids.
    public static func parse(_ text: String, format: ToolCallFormat, generatedIDs: [Int],
                             textBefore: (Int) -> String) -> (content: String?, calls: [ToolCall])? {
        switch format {
        case .mistral(let toolCallsID):
            guard let index = generatedIDs.firstIndex(of: toolCallsID) else { return nil }
            let before = textBefore(index)
            guard let calls = mistralCalls(String(text.dropFirst(before.count))) else { return nil }
            return (content(before), calls)
        case .hermes:
            return hermes(text)
        }
    }

    /// `[{"name": ..., "arguments": {...}}, ...]` (an "id" member is kept as the call id).
    public static func mistralCalls(_ json: String) -> [ToolCall]? {
        guard let value = try? JSONValue.parse(json), let list = value.arrayValue, !list.isEmpty else { return nil }
        var calls: [ToolCall] = []
        for item in list {
            guard let call = call(item) else { return nil }
            calls.append(call)
        }
        return calls
    }

    /// `<tool_call>{...}</tool_call>` blocks; the text before the first is the content.
    public static func hermes(_ text: String) -> (content: String?, calls: [ToolCall])? {
        let open = "<tool_call>", close = "</tool_call>"
        guard let first = text.range(of: open) else { return nil }
        var calls: [ToolCall] = []
        var rest = text[first.lowerBound...]
        while let start = rest.range(of: open) {
            guard rest[..<start.lowerBound].allSatisfy(\.isWhitespace) || calls.isEmpty else { return nil }
            // A final call cut off before its closing tag still counts when its JSON is whole.
            let end = rest.range(of: close, range: start.upperBound..<rest.endIndex)
            let body = rest[start.upperBound..<(end?.lowerBound ?? rest.endIndex)]
            guard let value = try? JSONValue.parse(String(body)), let call = call(value) else { return nil }
            calls.append(call)
            rest = end.map { rest[$0.upperBound...] } ?? rest[rest.endIndex...]
        }
        guard rest.allSatisfy(\.isWhitespace) else { return nil }
        return (content(String(text[..<first.lowerBound])), calls)
    }

    private static func call(_ value: JSONValue) -> ToolCall? {
        guard let name = value["name"]?.stringValue, !name.isEmpty else { return nil }
        var arguments = value["arguments"] ?? value["parameters"] ?? .object([])
        if let text = arguments.stringValue, let parsed = try? JSONValue.parse(text) { arguments = parsed }
        guard arguments.objectValue != nil else { return nil }
        return ToolCall(id: value["id"]?.stringValue, name: name, arguments: arguments)
    }

    private static func content(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }
}
