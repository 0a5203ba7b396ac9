import Foundation
import Testing
@testable import MixtralTokenizers

/// Tool calls: which format a model's chat encoding uses, the Hermes prompt for templates
/// without tools, and reading calls back out of answers.
@Suite("Tool calls")
struct ToolCallTests {
    static let weather: JSONValue = .object([("type", .string("function")), ("function", .object([
        ("name", .string("get_weather")),
        ("parameters", .object([("type", .string("object")), ("properties", .object([("city", .object([("type", .string("string"))]))]))])),
    ]))])

    @Test func formatOfEachEncoding() throws {
        // mistral-common's v3 encoding: [TOOL_CALLS] is id 5.
        let v3 = try ChatEncoder(tokenizer: try TokenizerLoader.load(path: Fixtures.path("v3/tokenizer.model")), template: nil)
        #expect(v3.toolCallFormat == .mistral(toolCallsTokenID: 5))
        // v1 has no tool tokens.
        let v1 = try ChatEncoder(tokenizer: try TokenizerLoader.load(path: Fixtures.path("v1/tokenizer.model")), template: nil)
        #expect(v1.toolCallFormat == .hermes(templateRendersTools: false))
        // SmolLM2's template has no tools: Hermes, in a system message of ours.
        let smol = try ChatEncoder(loaded: try TokenizerLoader.loadWithConfiguration(path: Fixtures.path("smollm2")))
        #expect(smol.toolCallFormat == .hermes(templateRendersTools: false))
        // A template that writes [TOOL_CALLS] over a tokenizer that has it.
        let templates = try Fixtures.json("chat/templates.json")
        let mistralTools = try #require(templates["mistral-tools"]?.stringValue)
        let hf = try ChatEncoder(tokenizer: try TokenizerLoader.load(path: Fixtures.path("v3-hf")), template: mistralTools)
        #expect(hf.toolCallFormat == .mistral(toolCallsTokenID: 5))
    }

    @Test func hermesPromptForTemplatesWithoutTools() throws {
        let messages: [ChatMessage] = [
            .system("Be brief."),
            .user("Weather in Paris?"),
            ChatMessage(role: "assistant", content: nil, toolCalls: [ToolCall(id: "abcDEF123", name: "get_weather",
                                                                              arguments: .object([("city", .string("Paris"))]))]),
            ChatMessage(role: "tool", content: "{\"temperature\": 21}", toolCallID: "abcDEF123"),
            ChatMessage(role: "tool", content: "{\"sky\": \"clear\"}", toolCallID: "abcDEF124"),
        ]
        let out = HermesTools.messages(messages, tools: [Self.weather])
        #expect(out.map(\.role) == ["system", "user", "assistant", "user"])
        let system = try #require(out[0].content)
        #expect(system.hasPrefix("Be brief.\n\nYou are a function calling AI model."))
        #expect(system.contains("<tools>\n{\"name\": \"get_weather\", \"parameters\": "))
        #expect(out[2].content == "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
        #expect(out[3].content == "<tool_response>\n{\"temperature\": 21}\n</tool_response>\n<tool_response>\n{\"sky\": \"clear\"}\n</tool_response>")
        // Without tools the conversation is unchanged apart from the call and result forms.
        #expect(HermesTools.messages([.user("hi")], tools: []) == [.user("hi")])
    }

    @Test func hermesAnswers() {
        let one = ToolCallParser.hermes("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
        #expect(one?.content == nil)
        #expect(one?.calls == [ToolCall(name: "get_weather", arguments: .object([("city", .string("Paris"))]))])
        let two = ToolCallParser.hermes("Let me check.\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>\n")
        #expect(two?.content == "Let me check.")
        #expect(two?.calls.map(\.name) == ["a", "b"])
        #expect(two?.calls.last?.arguments == .object([("x", .integer(1))]))
        // Unclosed but whole: counts. Broken JSON, text after the calls, no name: not calls.
        #expect(ToolCallParser.hermes("<tool_call>{\"name\": \"a\", \"arguments\": {}}")?.calls.count == 1)
        for text in ["plain text", "<tool_call>{\"name\": \"a\", \"arguments\": {</tool_call>",
                     "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> and more", "<tool_call>{\"arguments\": {}}</tool_call>",
                     "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>"] {
            #expect(ToolCallParser.hermes(text) == nil, "\(text)")
        }
    }

    @Test func mistralAnswers() {
        let format = ToolCallFormat.mistral(toolCallsTokenID: 5)
        let text = "Sure. [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}]"
        // Ids 9 and 10 wrote "Sure. ", then [TOOL_CALLS] (no text), then the list.
        let parsed = ToolCallParser.parse(text, format: format, generatedIDs: [9, 10, 5, 11]) { count in
            count >= 2 ? "Sure. " : ""
        }
        #expect(parsed?.content == "Sure.")
        #expect(parsed?.calls == [ToolCall(id: "abcDEF123", name: "get_weather", arguments: .object([("city", .string("Paris"))]))])
        // No [TOOL_CALLS] token: text, even if it looks like a call.
        #expect(ToolCallParser.parse(text, format: format, generatedIDs: [9, 10, 11]) { _ in "" } == nil)
        #expect(ToolCallParser.mistralCalls("[]") == nil)
        #expect(ToolCallParser.mistralCalls(" [{\"name\": \"f\", \"arguments\": {}}]")?.count == 1)
    }
}
