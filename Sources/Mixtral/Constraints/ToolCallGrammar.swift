/// The grammar of a forced tool call (OpenAI's `tool_choice` "required" or a named
/// function): the answer is one call, or several when parallel calls are allowed, in the
/// model's tool format, and each call's arguments match its function's parameter schema.
public enum ToolCallGrammar {
    /// Calls in one answer when parallel calls are allowed: a bound, so that a model that
    /// repeats itself stops (OpenAI sets none; small models otherwise call until the limit).
    public static let maxParallelCalls = 8

    /// `tools` are OpenAI's `{"type": "function", "function": {"name", "parameters"}}`;
    /// `only` restricts the calls to one function. For the Mistral format the grammar
    /// matches what follows the `[TOOL_CALLS]` token, which the caller puts at the end of the
    /// prompt (the grammar works on text; the control token has none).
    public static func grammar(tools: [JSONValue], only: String?, parallel: Bool,
                               format: ToolCallFormat) throws(GrammarError) -> Grammar {
        // One call is an object {"name": const, "arguments": parameters}, one alternative
        // per function; the functions' $defs move to the top so that their refs resolve.
        var alternatives: [JSONValue] = []
        var definitions: [(key: String, value: JSONValue)] = []
        for tool in tools {
            guard let function = tool["function"], let name = function["name"]?.stringValue else {
                throw GrammarError("a tool without function.name")
            }
            guard only == nil || only == name else { continue }
            var parameters = function["parameters"] ?? .object([("type", .string("object")), ("properties", .object([]))])
            if case .object(var members) = parameters {
                for key in ["$defs", "definitions"] {
                    guard let index = members.firstIndex(where: { $0.key == key }) else { continue }
                    for definition in members[index].value.objectValue ?? [] {
                        if let existing = definitions.first(where: { $0.key == definition.key }), existing.value != definition.value {
                            throw GrammarError("tools '\(name)' and another define '\(definition.key)' differently")
                        }
                        definitions.append(definition)
                    }
                    members.remove(at: index)
                }
                parameters = .object(members)
            }
            alternatives.append(.object([
                ("type", .string("object")),
                ("properties", .object([("name", .object([("const", .string(name))])), ("arguments", parameters)])),
                ("required", .array([.string("name"), .string("arguments")])),
            ]))
        }
        guard !alternatives.isEmpty else { throw GrammarError("no tool named '\(only ?? "")'") }
        var schema: [(key: String, value: JSONValue)] = [("anyOf", .array(alternatives))]
        if !definitions.isEmpty {
            // Refs name "#/$defs/X" or "#/definitions/X": both lead to the merged table.
            schema.append(("$defs", .object(definitions)))
            schema.append(("definitions", .object(definitions)))
        }
        let call = try JSONSchemaGrammar.gbnf(.object(schema))
        let start = "tool-calls-start"
        let wrapper: String
        switch format {
        case .hermes:
            let one = #""<tool_call>\n" root "\n</tool_call>""#
            wrapper = "\(start) ::= \(one)" + (parallel ? " (\"\\n\" \(one)){0,\(maxParallelCalls - 1)}" : "")
        case .mistral:
            wrapper = "\(start) ::= \" \"? \"[\" root" + (parallel ? " (\", \" root){0,\(maxParallelCalls - 1)}" : "") + " \"]\""
        }
        return try Grammar(gbnf: call + "\n" + wrapper + "\n", start: start)
    }
}
