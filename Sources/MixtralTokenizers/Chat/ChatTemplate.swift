/// A tool call made by the assistant.
public struct ToolCall: Sendable, Equatable {
    public var id: String?
    public var name: String
    /// The arguments object (templates and mistral-common serialise it as JSON).
    public var arguments: JSONValue

    public init(id: String? = nil, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A chat message, as transformers' apply_chat_template and mistral-common take them.
public struct ChatMessage: Sendable, Equatable {
    /// "system", "user", "assistant" or "tool".
    public var role: String
    public var content: String?
    public var toolCalls: [ToolCall]
    /// For role "tool": the id of the call this message answers.
    public var toolCallID: String?
    /// For role "tool": the function name.
    public var name: String?

    public init(role: String, content: String?, toolCalls: [ToolCall] = [], toolCallID: String? = nil, name: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.name = name
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }

    /// The dictionary a template sees: role, content (absent when nil), tool_calls (OpenAI format:
    /// id, type "function", function {name, arguments}), tool_call_id, name.
    public var json: JSONValue {
        var members: [(key: String, value: JSONValue)] = [("role", .string(role))]
        if let content { members.append(("content", .string(content))) }
        if !toolCalls.isEmpty {
            members.append(("tool_calls", .array(toolCalls.map { call in
                var fields: [(key: String, value: JSONValue)] = []
                if let id = call.id { fields.append(("id", .string(id))) }
                fields.append(("type", .string("function")))
                fields.append(("function", .object([("name", .string(call.name)), ("arguments", call.arguments)])))
                return .object(fields)
            })))
        }
        if let toolCallID { members.append(("tool_call_id", .string(toolCallID))) }
        if let name { members.append(("name", .string(name))) }
        return .object(members)
    }

    /// Reads the dictionary form (the inverse of `json`; `arguments` may also be a JSON string).
    public init(json: JSONValue) throws {
        guard let role = json["role"]?.stringValue else {
            throw ChatTemplateError.runtime("message without a role")
        }
        self.role = role
        content = json["content"]?.stringValue
        toolCallID = json["tool_call_id"]?.stringValue
        name = json["name"]?.stringValue
        toolCalls = try (json["tool_calls"]?.arrayValue ?? []).map { call in
            guard let function = call["function"], let name = function["name"]?.stringValue else {
                throw ChatTemplateError.runtime("tool call without a function name")
            }
            var arguments = function["arguments"] ?? .object([])
            if let text = arguments.stringValue, let parsed = try? JSONValue.parse(text) { arguments = parsed }
            return ToolCall(id: call["id"]?.stringValue, name: name, arguments: arguments)
        }
    }
}

/// A Jinja chat template (tokenizer_config.json's `chat_template`, chat_template.jinja or GGUF's
/// `tokenizer.chat_template`), rendered like transformers' `apply_chat_template(tokenize=False)`.
///
/// Supported: text, `{{ }}`, `{# #}`, whitespace control (`-`, `+`) with trim_blocks and
/// lstrip_blocks on (as transformers sets them), if/elif/else, for (with `else`, loop filters,
/// tuple unpacking, loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem),
/// set (names, namespace attributes, block set), macro, break/continue, generation blocks;
/// literals, lists, dicts, attribute/subscript/slice access, arithmetic, `~` and `+` concatenation,
/// comparisons, in / not in, and / or / not, inline if; filters trim, tojson, length, count,
/// selectattr, rejectattr, select, reject, map, list, string, upper, lower, capitalize, title,
/// first, last, join, default, items, dictsort, sort, unique, reverse, sum, min, max, abs, int,
/// float, round, replace, indent, wordcount, safe, escape; tests defined, undefined, none, string,
/// number, integer, float, boolean, mapping, sequence, iterable, true, false, equalto/eq, ne,
/// lt/gt/le/ge, in, divisibleby, odd, even, lower, upper; functions raise_exception, namespace,
/// range, dict, strftime_now; string methods strip/lstrip/rstrip/split/startswith/endswith/
/// upper/lower/title/capitalize/replace/find/count/join, dict methods items/keys/values/get.
/// Anything else fails with ChatTemplateError.unsupported naming the construct.
public struct ChatTemplate: Sendable {
    public let source: String
    // Parsed nodes hold only value types and immutable classes.
    private nonisolated(unsafe) let nodes: [JinjaNode]

    public init(_ source: String) throws {
        self.source = source
        nodes = try JinjaParser.parse(source)
    }

    /// Renders with typed messages.
    public func render(messages: [ChatMessage], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = false,
                       bosToken: String? = nil, eosToken: String? = nil, unkToken: String? = nil, padToken: String? = nil,
                       extraContext: [String: JSONValue] = [:]) throws -> String {
        try render(jsonMessages: messages.map(\.json), tools: tools, addGenerationPrompt: addGenerationPrompt,
                   bosToken: bosToken, eosToken: eosToken, unkToken: unkToken, padToken: padToken, extraContext: extraContext)
    }

    /// Renders with messages as JSON dictionaries (any extra keys are visible to the template).
    public func render(jsonMessages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = false,
                       bosToken: String? = nil, eosToken: String? = nil, unkToken: String? = nil, padToken: String? = nil,
                       extraContext: [String: JSONValue] = [:]) throws -> String {
        var globals: [String: JinjaValue] = [
            "messages": .list(jsonMessages.map(JinjaValue.fromJSON)),
            "tools": tools.map { .list($0.map(JinjaValue.fromJSON)) } ?? .none,
            "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        if let bosToken { globals["bos_token"] = .string(bosToken) }
        if let eosToken { globals["eos_token"] = .string(eosToken) }
        if let unkToken { globals["unk_token"] = .string(unkToken) }
        if let padToken { globals["pad_token"] = .string(padToken) }
        for (key, value) in extraContext { globals[key] = JinjaValue.fromJSON(value) }
        return try JinjaRenderer.render(nodes, globals: globals)
    }
}
