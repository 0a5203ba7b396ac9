import Testing
@testable import Mixtral

/// The grammar of forced tool calls: calls in the model's format whose arguments match the
/// function's parameters.
@Suite("Tool call grammar")
struct ToolCallGrammarTests {
    static let tools: [JSONValue] = [
        try! JSONValue.parse(#"{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}}}"#),
        try! JSONValue.parse(##"{"type": "function", "function": {"name": "move", "parameters": {"$defs": {"p": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}, "type": "object", "properties": {"to": {"$ref": "#/$defs/p"}}, "required": ["to"]}}}"##),
        try! JSONValue.parse(#"{"type": "function", "function": {"name": "ping"}}"#),
    ]

    @Test func hermes() throws {
        let matcher = try GrammarMatcher(try ToolCallGrammar.grammar(tools: Self.tools, only: nil, parallel: true, format: .hermes(templateRendersTools: false)))
        let weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>"
        let move = "<tool_call>\n{\"name\": \"move\", \"arguments\": {\"to\": {\"x\": 3}}}\n</tool_call>"
        let ping = "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"
        for good in [weather, move, ping, weather + "\n" + move] { #expect(matcher.accepts(good), "\(good)") }
        let nine = Array(repeating: ping, count: 9).joined(separator: "\n")
        for bad in ["", "text", weather.replacingOccurrences(of: "\"c\"", with: "\"k\""),
                    move.replacingOccurrences(of: "3", with: "\"3\""), ping.replacingOccurrences(of: "ping", with: "pong"),
                    weather + move, nine] {
            #expect(!matcher.accepts(bad), "\(bad)")
        }
        // Eight parallel calls at most.
        #expect(matcher.accepts(Array(repeating: ping, count: 8).joined(separator: "\n")))
        let single = try GrammarMatcher(try ToolCallGrammar.grammar(tools: Self.tools, only: "move", parallel: false, format: .hermes(templateRendersTools: true)))
        #expect(single.accepts(move))
        #expect(!single.accepts(ping))
        #expect(!single.accepts(move + "\n" + move))
    }

    @Test func mistral() throws {
        let matcher = try GrammarMatcher(try ToolCallGrammar.grammar(tools: Self.tools, only: nil, parallel: true, format: .mistral(toolCallsTokenID: 5)))
        for good in [#"[{"name": "ping", "arguments": {}}]"#, #" [{"name": "get_weather", "arguments": {"city": "Rome", "unit": "f"}}, {"name": "ping", "arguments": {}}]"#] {
            #expect(matcher.accepts(good), "\(good)")
        }
        for bad in ["[]", #"{"name": "ping", "arguments": {}}"#, #"[{"name": "ping"}]"#] { #expect(!matcher.accepts(bad), "\(bad)") }
    }

    @Test func errorsNameTheCause() {
        #expect(throws: GrammarError.self) { try ToolCallGrammar.grammar(tools: Self.tools, only: "nope", parallel: false, format: .hermes(templateRendersTools: false)) }
        let bad = try! JSONValue.parse(#"{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "not": {}}}}"#)
        #expect(throws: GrammarError.self) { try ToolCallGrammar.grammar(tools: [bad], only: nil, parallel: false, format: .hermes(templateRendersTools: false)) }
    }
}
