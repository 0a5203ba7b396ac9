/// Errors of mistral-common style request validation and encoding.
public enum MistralInstructError: Error, CustomStringConvertible, Equatable {
    case invalidRequest(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidRequest(let message): return "invalid chat request: \(message)"
        case .unsupported(let message): return "unsupported by this instruct version: \(message)"
        }
    }
}

/// mistral-common's instruct encoding (`MistralTokenizer.encode_chat_completion`) for the
/// SentencePiece tokenizers of Mixtral: v1 (tokenizer.model.v1: "[INST] ... [/INST]" as text)
/// and v3 (mistral_instruct_tokenizer_240323.model.v3: control tokens, tools).
///
/// The request is validated like mistral-common's validator in its default (test) mode, then
/// normalised: system messages become one system prompt (joined by blank lines), consecutive
/// user / assistant messages merge (blank line between contents), tool call arguments and tool
/// results are parsed as JSON when they are JSON. Encoding, after BOS:
/// - v1: user -> text "[INST] {system prompt on the first user turn}{content} [/INST]";
///   assistant -> content + EOS.
/// - v3: user -> [AVAILABLE_TOOLS] tools JSON [/AVAILABLE_TOOLS] before the last user turn only,
///   then [INST] content [/INST], the system prompt prepended to the last user turn;
///   assistant -> content (trailing spaces removed) + EOS, or [TOOL_CALLS] calls JSON + EOS;
///   tool -> [TOOL_RESULTS] {"content": ..., "call_id": ...} [/TOOL_RESULTS].
public struct MistralInstructEncoder: Sendable {
    public enum Version: Sendable { case v1, v3 }

    public let tokenizer: SentencePieceTokenizer
    public let version: Version
    private let controls: [String: Int]

    public init(tokenizer: SentencePieceTokenizer, version: Version) throws {
        self.tokenizer = tokenizer
        self.version = version
        var controls: [String: Int] = [:]
        if version == .v3 {
            for name in ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"] {
                guard let id = (0..<tokenizer.vocabularySize).first(where: { tokenizer.isSpecial($0) && tokenizer.piece(for: $0) == name }) else {
                    throw MistralInstructError.unsupported("the tokenizer has no control token \(name) (not a v3 tokenizer)")
                }
                controls[name] = id
            }
        }
        guard tokenizer.bosTokenID != nil, tokenizer.eosTokenIDs.first != nil else {
            throw MistralInstructError.unsupported("the tokenizer has no BOS or EOS token")
        }
        self.controls = controls
    }

    /// Encodes a conversation; `tools` are OpenAI-style {"type": "function", "function":
    /// {"name", "description", "parameters"}} objects.
    public func encode(messages: [ChatMessage], tools: [JSONValue]? = nil) throws -> [Int] {
        try validate(messages, tools: tools ?? [])
        let (normalized, systemPrompt) = normalize(messages)
        let lastUser = normalized.lastIndex { $0.role == "user" } ?? -1
        let firstUser = normalized.firstIndex { $0.role == "user" } ?? -1
        var ids: [Int] = []
        if let bos = tokenizer.bosTokenID { ids.append(bos) }
        let eos = tokenizer.eosTokenIDs.first ?? 2
        for (index, message) in normalized.enumerated() {
            switch (version, message.role) {
            case (.v1, "user"):
                var content = message.content ?? ""
                if index == firstUser, let systemPrompt, !systemPrompt.isEmpty { content = systemPrompt + "\n\n" + content }
                ids += try text("[INST] \(content) [/INST]")
            case (.v1, "assistant"):
                guard message.toolCalls.isEmpty else { throw MistralInstructError.unsupported("tools are not supported by v1") }
                guard let content = message.content, !content.isEmpty else {
                    throw MistralInstructError.invalidRequest("assistant message without content")
                }
                ids += try text(content) + [eos]
            case (.v1, _):
                throw MistralInstructError.unsupported("tools are not supported by v1")
            case (.v3, "user"):
                if index == lastUser, let tools, !tools.isEmpty {
                    let dumped = JSONValue.array(try tools.map(Self.toolDump)).serialized()
                    ids += [control("[AVAILABLE_TOOLS]")] + (try text(dumped)) + [control("[/AVAILABLE_TOOLS]")]
                }
                var content = message.content ?? ""
                if index == lastUser, let systemPrompt, !systemPrompt.isEmpty { content = systemPrompt + "\n\n" + content }
                ids += [control("[INST]")] + (try text(content)) + [control("[/INST]")]
            case (.v3, "assistant"):
                if !message.toolCalls.isEmpty {
                    let calls = JSONValue.array(message.toolCalls.map { call in
                        // Arguments given as text are parsed when they are JSON (as mistral-common does).
                        let arguments = call.arguments.stringValue.map(Self.parsedJSON) ?? call.arguments
                        var fields: [(key: String, value: JSONValue)] = [("name", .string(call.name)), ("arguments", arguments)]
                        if let id = call.id, id != "null" { fields.append(("id", .string(id))) }
                        return .object(fields)
                    })
                    ids += [control("[TOOL_CALLS]")] + (try text(calls.serialized())) + [eos]
                } else if let content = message.content, !content.isEmpty {
                    var trimmed = Substring(content)
                    while trimmed.hasSuffix(" ") { trimmed = trimmed.dropLast() }
                    ids += try text(String(trimmed)) + [eos]
                } else {
                    throw MistralInstructError.invalidRequest("assistant message without content or tool calls")
                }
            case (.v3, "tool"):
                let result = JSONValue.object([("content", Self.parsedJSON(message.content ?? "")),
                                               ("call_id", .string(message.toolCallID ?? ""))])
                ids += [control("[TOOL_RESULTS]")] + (try text(result.serialized())) + [control("[/TOOL_RESULTS]")]
            default:
                throw MistralInstructError.invalidRequest("unknown role \(message.role)")
            }
        }
        return ids
    }

    private func control(_ name: String) -> Int { controls[name] ?? 0 }

    private func text(_ string: String) throws -> [Int] {
        try tokenizer.encode(string, addSpecialTokens: false)
    }

    /// mistral-common's Tool.model_dump(): type, then function {name, description, parameters}.
    static func toolDump(_ tool: JSONValue) throws -> JSONValue {
        guard let function = tool["function"], let name = function["name"]?.stringValue else {
            throw MistralInstructError.invalidRequest("tool without function.name")
        }
        guard let parameters = function["parameters"] else {
            throw MistralInstructError.invalidRequest("tool \(name) has no parameters")
        }
        return .object([
            ("type", .string(tool["type"]?.stringValue ?? "function")),
            ("function", .object([("name", .string(name)),
                                  ("description", .string(function["description"]?.stringValue ?? "")),
                                  ("parameters", parameters)])),
        ])
    }

    /// json.loads(text) when it parses, else the text itself; empty text counts as "{}".
    static func parsedJSON(_ text: String) -> JSONValue {
        if text.isEmpty { return .object([]) }
        return (try? JSONValue.parse(text)) ?? .string(text)
    }

    // MARK: Validation (mistral-common's MistralRequestValidatorV3, test mode)

    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil)) || $0 == "_" || $0 == "-"
        }
    }

    private static func isValidCallID(_ id: String) -> Bool {
        id.unicodeScalars.count == 9 && id.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil) }
    }

    private func validate(_ messages: [ChatMessage], tools: [JSONValue]) throws {
        for tool in tools {
            let name = tool["function"]?["name"]?.stringValue ?? ""
            guard Self.isValidName(name) else { throw MistralInstructError.invalidRequest("invalid tool name \(name.debugDescription)") }
        }
        guard let first = messages.first else { throw MistralInstructError.invalidRequest("conversation must have at least one message") }
        if messages.count == 1 && first.role != "user" && first.role != "system" {
            throw MistralInstructError.invalidRequest("conversation must start with a user message or system message")
        }
        let allowed: [String: Set<String>] = [
            "system": ["user", "assistant", "system"], "user": ["assistant", "system", "user"],
            "assistant": ["assistant", "user", "tool"], "tool": ["assistant", "tool", "user"],
        ]
        for (previous, current) in zip(messages, messages.dropFirst()) {
            guard let next = allowed[previous.role], next.contains(current.role) else {
                throw MistralInstructError.invalidRequest("unexpected role '\(current.role)' after role '\(previous.role)'")
            }
        }
        if messages.count > 1, let last = messages.last, last.role != "user" && last.role != "tool" {
            throw MistralInstructError.invalidRequest("expected last role user or tool but got \(last.role)")
        }
        for message in messages {
            switch message.role {
            case "system":
                guard message.content != nil else { throw MistralInstructError.invalidRequest("system prompt must have content") }
            case "user":
                break
            case "assistant":
                let hasContent = !(message.content ?? "").isEmpty
                guard hasContent != !message.toolCalls.isEmpty else {
                    throw MistralInstructError.invalidRequest("assistant message must have either content or tool_calls, but not both")
                }
                for call in message.toolCalls {
                    guard Self.isValidName(call.name) else { throw MistralInstructError.invalidRequest("invalid function name \(call.name.debugDescription)") }
                    if version == .v3, let id = call.id, id != "null", !Self.isValidCallID(id) {
                        throw MistralInstructError.invalidRequest("tool call id \(id.debugDescription) must be 9 characters a-z, A-Z, 0-9")
                    }
                }
            case "tool":
                if let name = message.name, !Self.isValidName(name) {
                    throw MistralInstructError.invalidRequest("invalid tool name \(name.debugDescription)")
                }
                if version == .v3 {
                    guard let id = message.toolCallID else { throw MistralInstructError.invalidRequest("tool call id has to be defined") }
                    guard Self.isValidCallID(id) else {
                        throw MistralInstructError.invalidRequest("tool call id \(id.debugDescription) must be 9 characters a-z, A-Z, 0-9")
                    }
                }
            default:
                throw MistralInstructError.invalidRequest("unknown role \(message.role)")
            }
        }
    }

    // MARK: Normalisation (mistral-common's InstructRequestNormalizer)

    private func normalize(_ messages: [ChatMessage]) -> ([ChatMessage], String?) {
        let systemParts = messages.filter { $0.role == "system" }.compactMap(\.content).filter { !$0.isEmpty }
        let systemPrompt = systemParts.isEmpty ? nil : systemParts.joined(separator: "\n\n")
        var result: [ChatMessage] = []
        var group: [ChatMessage] = []

        func joinedContent(_ group: [ChatMessage]) -> String {
            group.compactMap(\.content).filter { !$0.isEmpty }.joined(separator: "\n\n")
        }
        func flush() {
            guard let role = group.first?.role else { return }
            switch role {
            case "user":
                result.append(ChatMessage(role: "user", content: joinedContent(group)))
            case "assistant":
                let content = joinedContent(group)
                result.append(ChatMessage(role: "assistant", content: content.isEmpty ? nil : content,
                                          toolCalls: group.flatMap(\.toolCalls)))
            case "tool":
                result.append(contentsOf: group)
            default:
                break  // system messages became the system prompt
            }
            group.removeAll()
        }
        for message in messages {
            if let role = group.first?.role, role != message.role { flush() }
            group.append(message)
        }
        flush()
        return (result, systemPrompt)
    }
}
