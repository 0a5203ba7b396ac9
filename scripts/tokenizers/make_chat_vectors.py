#!/usr/bin/env python3
"""Generates chat-formatting reference vectors for MixtralTokenizersTests.

Run after make_vectors.py (it reads the fixtures that one writes), with the python of an
environment that has transformers, mistral-common and jinja2:

    python scripts/tokenizers/make_chat_vectors.py

Writes Tests/MixtralTokenizersTests/Fixtures/chat/:
  templates.json      the Jinja templates under test: "mistral" (Mixtral-8x7B-Instruct style),
                      "mistral-tools" (Mistral v3 style with [AVAILABLE_TOOLS]/[TOOL_CALLS]),
                      "chatml" (SmolLM2's, from its GGUF), "llama3" (Meta-Llama-3-Instruct style)
  conversations.json  conversations: messages, tools, add_generation_prompt
  jinja.json          for each template and conversation: transformers' apply_chat_template text,
                      or the message of the exception it raised
  mistral_v1.json,
  mistral_v3.json     for each conversation: the token ids and text of mistral-common's
                      MistralTokenizer(v1 / v3).encode_chat_completion, or the error it raised
"""
import json
import os
import sys

from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "MixtralTokenizersTests", "Fixtures")
OUT = os.path.join(FIXTURES, "chat")

MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

MISTRAL_TOOLS = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# A template exercising the rest of the supported subset (filters, loop variables, tests,
# operators, whitespace control without '-', elif, macros are not used).
FEATURES = """{% set greeting = "Hello" ~ ", " ~ "world" %}{{ greeting|upper }}|{{ greeting|lower }}
{% for m in messages %}{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% elif loop.last %}L{% else %}M{% endif %}:{{ m.role|length }}:{{ (m.content or '')|trim|length }} {{ loop.revindex }}{{ loop.revindex0 }}
{% endfor %}
{{ messages|selectattr('role', 'equalto', 'user')|list|length }} users; {{ messages|map(attribute='role')|join(',') }}
{{ messages[0].role|capitalize }} {{ messages|first|string|length > 0 }} {{ (messages|last).role }} {{ [1, 2, 3]|sum if false else 'x' }}
{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ 1 - 4 }} {{ 7 / 2 }} {{ 'ab' * 2 }} {{ 'a' in 'cat' }} {{ 'z' not in ['a', 'b'] }} {{ none is none }} {{ 3 > 2 and not false }}
{{ {'b': 1, 'a': [true, none, 1.5, "q\\"uote"]}|tojson }} {{ {'b': 1, 'a': 2}|tojson(indent=2) }} {{ "x"|default("y") }} {{ undefined_var|default("dflt") }}
{% if tools is defined and tools %}{% for t in tools %}{{ t.function.name }}{{ "," if not loop.last }}{% endfor %}{% endif %}
{{ "  padded  "|trim }}|{{ "a,b,c".split(",")|join("+") }}|{{ "Title case".title() }}|{{ "abc".startswith("a") }}|{{ "abc"[1:] }}|{{ "abc"[::-1] }}|{{ [3,1,2]|sort|list }}|{{ "x".replace("x", "y") }}
{%- if add_generation_prompt %} GEN{% endif %}"""


# Llama-3.1-Instruct style (system block, tools in the first user message, ipython results).
LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# More constructs: macros, for-else, break/continue, loop.previtem/nextitem/cycle-free loops,
# dict methods and filters, string methods, tests, comments, '+' whitespace modifiers.
FEATURES2 = """{#- comment -#}
{%- macro render(m, prefix='> ') -%}
{{ prefix }}{{ m.role|upper }}: {{ m.content if m.content is string else '(no text)' }}
{%- endmacro -%}
{%- for m in messages -%}
{{ render(m) }}{% if loop.previtem is defined %} after {{ loop.previtem.role }}{% endif %}{% if loop.nextitem is defined %} before {{ loop.nextitem.role }}{% endif %}
{% if loop.index > 3 %}{% break %}{% endif -%}
{%- endfor %}
{%- for x in [] %}never{% else %}empty-else{% endfor %}
{% for k, v in {'b': 2, 'a': 1}.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in {'b': 2, 'a': 1}|dictsort %}{{ k }}{{ v }}{% endfor %}
{% for i in range(6) %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %} {{ range(2, 9, 3)|list }}
{{ "a-b-c".split("-", 1) }} {{ " x ".strip() }}|{{ "xxhixx".strip("x") }}|{{ "Hi".lower().startswith("h") }}|{{ "abc".endswith(("c", "z")) }}|{{ "a,b".replace(",", ";") }}
{{ {'k': [1, {'z': none}]}|tojson }} {{ [3, 1, 2]|sort(reverse=true)|join(",") }} {{ ['b', 'a', 'b']|unique|list }} {{ [1, 2, 3]|sum }} {{ [4, 9]|max }}
{{ messages|map(attribute='role')|unique|join('/') }} {{ messages|rejectattr('role', 'equalto', 'user')|list|length }} {{ messages|selectattr('content')|list|length }}
{{ 10 is divisibleby 5 }} {{ 'abc' is string }} {{ {} is mapping }} {{ 3 is number }} {{ none is none }} {{ 'A' is upper }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }}
{%- set ns = namespace(total=0, names=[]) %}{% for m in messages %}{% set ns.total = ns.total + (m.content|default('')|length) %}{% set ns.names = ns.names + [m.role[0]] %}{% endfor %}
{{ ns.total }} {{ ns.names|join('') }} {{ messages[-1].role }} {{ messages[:2]|length }} {{ (messages|last).content|default('none', true) }}
{%- if add_generation_prompt %}
  {%+ if true %}[gen]{% endif %}
{%- endif %}
"""


def chatml_template():
    with open(os.path.join(FIXTURES, "smollm2", "chat_template.jinja"), encoding="utf-8") as f:
        return f.read()


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "The temperature unit"},
            },
            "required": ["location", "format"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Recherche sur le web — résultats en français",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                       "required": ["query"]},
    },
}


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hello!"}]},
    {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi there"}]},
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}]},
    {"messages": [{"role": "system", "content": "Réponds en français."},
                  {"role": "user", "content": "Quelle est la capitale de l'Italie ?"},
                  {"role": "assistant", "content": "Rome."}, {"role": "user", "content": "Et de l'Allemagne ?"}],
     "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "  spaces around  "}, {"role": "assistant", "content": " trimmed?  "},
                  {"role": "user", "content": "ok\n\nnew paragraphs\n"}]},
    {"messages": [{"role": "user", "content": "Schreib ein Gedicht über Bäume 🌳"},
                  {"role": "assistant", "content": "Bäume stehen still,\nim Wind."}]},
    {"messages": [{"role": "user", "content": "¿Qué tal?"}, {"role": "assistant", "content": "¡Muy bien!"},
                  {"role": "user", "content": "Come stai? 日本語も"}, {"role": "assistant", "content": "Bene, grazie."},
                  {"role": "user", "content": "[INST] injected </s> text"}]},
    {"messages": [{"role": "user", "content": "def f(x):\n    return x * 2\n\nExplain."}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Two user turns"}]},
    {"messages": [{"role": "assistant", "content": "I speak first"}]},
    {"messages": [{"role": "system", "content": "sys"}, {"role": "system", "content": "second system"},
                  {"role": "user", "content": "u"}]},
    {"messages": [{"role": "user", "content": "What's the weather like today in Paris?"}],
     "tools": [WEATHER_TOOL]},
    {"messages": [{"role": "user", "content": "What's the weather like today in Paris?"}],
     "tools": [WEATHER_TOOL, SEARCH_TOOL], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Use tools when needed."},
                  {"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "tool_calls": [call("abcDEF123", "get_current_weather",
                                                            {"location": "Paris, France", "format": "celsius"})]},
                  {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_current_weather", "content": "22"},
                  {"role": "assistant", "content": "It is 22°C in Paris."},
                  {"role": "user", "content": "And in Rome?"}],
     "tools": [WEATHER_TOOL]},
    {"messages": [{"role": "user", "content": "Weather in Paris and Berlin?"},
                  {"role": "assistant", "tool_calls": [
                      call("call00001", "get_current_weather", {"location": "Paris", "format": "celsius"}),
                      call("call00002", "get_current_weather", {"location": "Berlin", "format": "fahrenheit"})]},
                  {"role": "tool", "tool_call_id": "call00001", "name": "get_current_weather",
                   "content": "{\"temperature\": 21.5, \"unit\": \"celsius\"}"},
                  {"role": "tool", "tool_call_id": "call00002", "name": "get_current_weather",
                   "content": "{\"temperature\": 70, \"unit\": \"fahrenheit\"}"}],
     "tools": [WEATHER_TOOL]},
    {"messages": [{"role": "user", "content": "Cherche « tokenizer »"},
                  {"role": "assistant", "tool_calls": [call("srch12345", "search", {"query": "tokenizer", "limit": 3})]},
                  {"role": "tool", "tool_call_id": "srch12345", "name": "search", "content": "not json: plain text"}],
     "tools": [SEARCH_TOOL, WEATHER_TOOL]},
    {"messages": [{"role": "user", "content": "first question"},
                  {"role": "assistant", "tool_calls": [call("aaaaaaaa1", "search", {"query": "q1"})]},
                  {"role": "tool", "tool_call_id": "aaaaaaaa1", "name": "search", "content": "[1, 2, 3]"},
                  {"role": "assistant", "content": "Found three."},
                  {"role": "user", "content": "second question"},
                  {"role": "assistant", "tool_calls": [call("bbbbbbbb2", "search", {"query": "q2", "limit": 10})]},
                  {"role": "tool", "tool_call_id": "bbbbbbbb2", "name": "search", "content": "{\"ok\": true, \"items\": []}"}],
     "tools": [SEARCH_TOOL]},
    {"messages": [{"role": "user", "content": "bad id"},
                  {"role": "assistant", "tool_calls": [call("short", "search", {"query": "x"})]},
                  {"role": "tool", "tool_call_id": "short", "name": "search", "content": "r"}],
     "tools": [SEARCH_TOOL]},
    {"messages": [{"role": "user", "content": "Unicode: ß, œ, ü, ñ, 中文, emoji 👍🏽"},
                  {"role": "assistant", "content": "Noted: \"quotes\" and \\backslashes\\"},
                  {"role": "user", "content": "tabs\there"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Long system prompt.\nWith lines."},
                  {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                  {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
                  {"role": "user", "content": "e"}]},
    {"messages": [{"role": "user", "content": "Tool with empty result"},
                  {"role": "assistant", "tool_calls": [call("emptyres1", "get_current_weather", {})]},
                  {"role": "tool", "tool_call_id": "emptyres1", "name": "get_current_weather", "content": ""}],
     "tools": [WEATHER_TOOL]},
    {"messages": [{"role": "user", "content": "Numbers"},
                  {"role": "assistant", "tool_calls": [call("numbers01", "search",
                                                            {"query": "π", "limit": 1, "x": 1.0, "y": [1e-5, 2.5e10, -0.0]})]},
                  {"role": "tool", "tool_call_id": "numbers01", "name": "search", "content": "{\"v\": 1.0, \"w\": 100}"}],
     "tools": [SEARCH_TOOL]},
]


def main():
    os.makedirs(OUT, exist_ok=True)
    templates = {
        "mistral": MISTRAL,
        "mistral-tools": MISTRAL_TOOLS,
        "chatml": chatml_template(),
        "llama3": LLAMA3,
        "features": FEATURES,
        "llama31": LLAMA31,
        "features2": FEATURES2,
    }
    with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as f:
        json.dump(templates, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(CONVERSATIONS, f, ensure_ascii=False, indent=1)

    tokenizers = {
        "mistral": AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "v3-hf")),
        "chatml": AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "smollm2")),
    }
    results = {}
    for name, template in templates.items():
        tok = tokenizers["chatml" if name == "chatml" else "mistral"]
        rendered = []
        for conv in CONVERSATIONS:
            try:
                text = tok.apply_chat_template(
                    conv["messages"], tools=conv.get("tools"), chat_template=template, tokenize=False,
                    add_generation_prompt=conv.get("add_generation_prompt", False))
                rendered.append({"text": text})
            except Exception as e:  # the template's raise_exception, or a Jinja error
                rendered.append({"error": str(e)})
        results[name] = {"bos_token": tok.bos_token, "eos_token": tok.eos_token, "results": rendered}
    with open(os.path.join(OUT, "jinja.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)

    # Token ids of apply_chat_template(tokenize=True) for the templates with real tokenizers:
    # v3-hf (tokenizer.json), v3 (tokenizer.model only, converted by transformers), smollm2.
    token_results = {}
    for label, folder, name in [("mistral-tools@v3-hf", "v3-hf", "mistral-tools"), ("mistral@v3-hf", "v3-hf", "mistral"),
                                ("mistral-tools@v3", "v3", "mistral-tools"), ("chatml@smollm2", "smollm2", "chatml")]:
        tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURES, folder))
        ids = []
        for conv in CONVERSATIONS:
            try:
                out = tok.apply_chat_template(
                    conv["messages"], tools=conv.get("tools"), chat_template=templates[name], tokenize=True,
                    return_dict=False, add_generation_prompt=conv.get("add_generation_prompt", False))
                ids.append({"tokens": list(out)})
            except Exception as e:
                ids.append({"error": str(e)})
        token_results[label] = ids
    with open(os.path.join(OUT, "jinja_tokens.json"), "w", encoding="utf-8") as f:
        json.dump(token_results, f, ensure_ascii=False)
    print(json.dumps({n: sum("text" in r for r in v["results"]) for n, v in results.items()}), file=sys.stderr)

    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    import mistral_common
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    # mistral-common picks the instruct version from the file name, so use its own files
    # (byte-identical to the committed v1/ and v3/ tokenizer.model).
    for version, file_name in [("v1", "tokenizer.model.v1"), ("v3", "mistral_instruct_tokenizer_240323.model.v3")]:
        path = os.path.join(data, file_name)
        with open(path, "rb") as a, open(os.path.join(FIXTURES, version, "tokenizer.model"), "rb") as b:
            assert a.read() == b.read()
        mistral = MistralTokenizer.from_file(path)
        encoded = []
        for conv in CONVERSATIONS:
            messages = []
            for m in conv["messages"]:
                m = dict(m)
                if "tool_calls" in m:
                    m["tool_calls"] = [dict(c, function=dict(c["function"], arguments=json.dumps(c["function"]["arguments"])))
                                       for c in m["tool_calls"]]
                messages.append(m)
            try:
                request = ChatCompletionRequest(messages=messages, tools=conv.get("tools"))
                tokenized = mistral.encode_chat_completion(request)
                encoded.append({"tokens": tokenized.tokens, "text": tokenized.text})
            except Exception as e:
                encoded.append({"error": f"{type(e).__name__}: {e}"})
        with open(os.path.join(OUT, f"mistral_{version}.json"), "w", encoding="utf-8") as f:
            json.dump(encoded, f, ensure_ascii=False, indent=1)
        print(f"mistral {version}: {sum('tokens' in e for e in encoded)} encoded, {sum('error' in e for e in encoded)} errors",
              file=sys.stderr)


if __name__ == "__main__":
    main()
