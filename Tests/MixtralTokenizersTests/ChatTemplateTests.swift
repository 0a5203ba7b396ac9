import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct ChatTemplateTests {
    static let templateNames = ["mistral", "mistral-tools", "chatml", "llama3", "features", "llama31", "features2"]

    /// Every conversation through every template, against transformers' apply_chat_template.
    @Test(arguments: templateNames)
    func matchesTransformers(name: String) throws {
        let templates = try Fixtures.json("chat/templates.json")
        let conversations = try #require(Fixtures.json("chat/conversations.json").arrayValue)
        let reference = try #require(Fixtures.json("chat/jinja.json")[name])
        let results = try #require(reference["results"]?.arrayValue)
        let template = try ChatTemplate(try #require(templates[name]?.stringValue))
        #expect(conversations.count >= 20 && results.count == conversations.count)
        var textsCompared = 0
        for (index, (conversation, expected)) in zip(conversations, results).enumerated() {
            let messages = try #require(conversation["messages"]?.arrayValue)
            let rendered = Result {
                try template.render(jsonMessages: messages, tools: conversation["tools"]?.arrayValue,
                                    addGenerationPrompt: conversation["add_generation_prompt"]?.boolValue ?? false,
                                    bosToken: reference["bos_token"]?.stringValue, eosToken: reference["eos_token"]?.stringValue)
            }
            switch (rendered, expected["text"]?.stringValue, expected["error"]?.stringValue) {
            case (.success(let text), let want?, _):
                #expect(text == want, "\(name) conversation \(index)")
                textsCompared += 1
            case (.failure(let error), _, let message?):
                // raise_exception messages must match; other Jinja errors only need to be errors.
                if case ChatTemplateError.raised(let raised) = error { #expect(raised == message, "\(name) conversation \(index)") }
            case (.success(let text), nil, let message):
                Issue.record("\(name) conversation \(index): rendered \(text.debugDescription), expected error \(message ?? "")")
            case (.failure(let error), let want, _):
                Issue.record("\(name) conversation \(index): \(error), expected \(want?.debugDescription ?? "")")
            }
        }
        // The reference renders at least 13 of the conversations with every template.
        #expect(textsCompared == results.filter { $0["text"] != nil }.count && textsCompared >= 13)
    }

    @Test func typedMessagesRenderLikeJSON() throws {
        let template = try ChatTemplate(try #require(Fixtures.json("chat/templates.json")["mistral-tools"]?.stringValue))
        let messages: [ChatMessage] = [
            .user("Weather?"),
            ChatMessage(role: "assistant", content: nil,
                        toolCalls: [ToolCall(id: "abcDEF123", name: "get_weather", arguments: .object([("city", .string("Paris"))]))]),
            ChatMessage(role: "tool", content: "22", toolCallID: "abcDEF123", name: "get_weather"),
        ]
        let text = try template.render(messages: messages, bosToken: "<s>", eosToken: "</s>")
        #expect(text == #"<s>[INST] Weather?[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]</s>[TOOL_RESULTS] {"content": 22, "call_id": "abcDEF123"}[/TOOL_RESULTS]"#)
    }

    @Test func unsupportedConstructsAreNamed() throws {
        #expect(throws: ChatTemplateError.unsupported(construct: "{% include %}", line: 1)) { try ChatTemplate("{% include 'x' %}") }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ x | nosuchfilter }}").render(messages: []) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{% if x %}unterminated") }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ 'a' + }}") }
        #expect(throws: ChatTemplateError.raised("boom")) { try ChatTemplate("{{ raise_exception('boom') }}").render(messages: []) }
        do {
            _ = try ChatTemplate("{{ messages | nosuchfilter }}").render(messages: [])
            Issue.record("expected an error")
        } catch let error as ChatTemplateError {
            #expect(error.description.contains("nosuchfilter"))
        }
    }

    @Test func whitespaceControlAndLoops() throws {
        let template = try ChatTemplate("""
            {% for m in messages %}
              {{- m.role }}={{ m.content }}{{ ',' if not loop.last }}
            {% endfor %}
            {%- set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}[{{ ns.n }}]
            """)
        let text = try template.render(messages: [.user("a"), .assistant("b")])
        #expect(text == "user=a,\nassistant=b\n[2]")
    }
}

@Suite struct ChatTemplateRobustnessTests {
    /// Hostile templates end in typed errors or values, never in a trap.
    @Test(arguments: [
        "{{ 9223372036854775807 + 1 }}", "{{ (-9223372036854775807 - 1) // -1 }}", "{{ (-9223372036854775807 - 1) % -1 }}",
        "{{ 'a' * 10**12 }}", "{{ range(10**9)|length }}", "{{ (1e308 * 10)|int }}", "{{ 2 ** 200 }}",
        "{{ [1] * -3 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ ((-9223372036854775807 - 1))|abs }}",
        "{{ 1 / 0 }}", "{{ 'abc'[::0] }}", "{{ x.y.z }}", "{{ none.attr }}", "{{ 'x' + 1 }}", "{{ {'a': 1}|tojson(indent=2) }}",
    ])
    func noTraps(source: String) throws {
        let template = try ChatTemplate(source)
        _ = try? template.render(messages: [])
    }

    @Test func undefinedSemantics() throws {
        #expect(try ChatTemplate("[{{ nothing }}]").render(messages: []) == "[]")
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ nothing.attr }}").render(messages: []) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ nothing + 'x' }}").render(messages: []) }
        #expect(try ChatTemplate("{{ nothing ~ 'x' }}|{{ nothing|length }}|{{ nothing is defined }}").render(messages: []) == "x|0|False")
    }
}

/// Hostile templates (the hostile-input issue's reproducers): each ends in a
/// ChatTemplateError within JinjaLimits, not a stack overflow, an abort or a hang.
@Suite struct HostileChatTemplateTests {
    static let templates: [String] = [
        "{{ " + Array(repeating: "1", count: 100_000).joined(separator: " + ") + " }}",
        "{{ " + String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000) + " }}",
        "{{ " + String(repeating: "not ", count: 10_000) + "x }}",
        String(repeating: "{% if true %}", count: 1_000) + "x" + String(repeating: "{% endif %}", count: 1_000),
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(100000) }}",
        "{% set s = namespace(v='ab') %}{% for i in range(40) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v | length }}",
        "{% set s = namespace(v='ab') %}{% for i in range(40) %}{% set s.v = s.v + s.v %}{% endfor %}{{ s.v | length }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ messages | tojson(indent=10**9) }}",
    ]

    @Test(arguments: templates.indices)
    func endsInATypedError(index: Int) {
        #expect(throws: ChatTemplateError.self) {
            try ChatTemplate(Self.templates[index]).render(messages: [ChatMessage(role: "user", content: "hi")])
        }
    }

    @Test func ordinaryTemplatesStayWithinTheLimits() throws {
        let loop = try ChatTemplate("{% for i in range(1000) %}{{ i % 10 }}{% endfor %}").render(messages: [])
        #expect(loop.count == 1000)
        let sum = try ChatTemplate("{{ " + Array(repeating: "1", count: 200).joined(separator: " + ") + " }}").render(messages: [])
        #expect(sum == "200")
    }
}
