import Mixtral

/// The tool fields of a chat request: `tools`, `tool_choice`, `parallel_tool_calls`
/// (OpenAI's chat completions API).
struct ToolRequest: Sendable {
    enum Choice: Sendable, Equatable {
        case auto, none, required
        case function(String)
    }

    let tools: [JSONValue]
    let choice: Choice
    let parallel: Bool

    /// Whether the answer must be a call (then decoding is constrained to one).
    var forced: Bool { choice != .auto && choice != .none }

    static let maxTools = 128

    /// nil when the request has no tools.
    init?(_ fields: RequestFields) throws(APIError) {
        let choiceValue = fields["tool_choice"]
        guard let value = fields["tools"] else {
            if let choiceValue, choiceValue.stringValue != "none", choiceValue.stringValue != "auto" {
                throw .invalidValue("tool_choice", "'tool_choice' needs 'tools'")
            }
            return nil
        }
        guard let list = value.arrayValue else { throw .wrongType("tools", expected: "a list of tools") }
        guard list.count <= Self.maxTools else { throw .invalidValue("tools", "at most \(Self.maxTools) tools per request") }
        var names: Set<String> = []
        for (index, tool) in list.enumerated() {
            guard tool["type"]?.stringValue ?? "function" == "function" else {
                throw .invalidValue("tools", "tools[\(index)]: only tools of type 'function' are supported")
            }
            guard let function = tool["function"], function.objectValue != nil else {
                throw .invalidValue("tools", "tools[\(index)] has no 'function' object")
            }
            guard let name = function["name"]?.stringValue, !name.isEmpty, name.utf8.count <= 64,
                  name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "_-".unicodeScalars.contains($0)) })
            else {
                throw .invalidValue("tools", "tools[\(index)].function.name must be 1 to 64 letters, digits, '_' or '-'")
            }
            guard names.insert(name).inserted else { throw .invalidValue("tools", "two tools are named '\(name)'") }
            if let parameters = function["parameters"], parameters.objectValue == nil {
                throw .invalidValue("tools", "tools[\(index)].function.parameters must be a JSON Schema object")
            }
        }
        tools = list
        switch choiceValue {
        case nil: choice = .auto
        case .string("auto"): choice = .auto
        case .string("none"): choice = .none
        case .string("required"): choice = .required
        case .some(let other):
            guard let name = other["function"]?["name"]?.stringValue, other["type"]?.stringValue ?? "function" == "function" else {
                throw .invalidValue("tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")
            }
            guard names.contains(name) else { throw .invalidValue("tool_choice", "'tool_choice' names '\(messageText(name))', which is not in 'tools'") }
            choice = .function(name)
        }
        parallel = try fields.bool("parallel_tool_calls") ?? true
    }

    /// The grammar a forced call is decoded under.
    func grammar(format: ToolCallFormat) throws(APIError) -> Grammar {
        let only: String? = if case .function(let name) = choice { name } else { nil }
        // A named function is one call, as OpenAI answers it.
        do {
            return try ToolCallGrammar.grammar(tools: tools, only: only, parallel: parallel && only == nil, format: format)
        } catch {
            throw .invalidValue("tools", "the tools' parameters cannot be turned into a grammar: \(messageText(error.description))")
        }
    }
}

/// Tool call ids: nine letters and digits, the form mistral-common requires, so that a call
/// sent back in the conversation renders for every format.
func newToolCallID() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return String((0..<9).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
}
