#!/usr/bin/env python3
"""Structured output and tool calls through a real `mixtral serve`, driven by the official
`openai` client:

- on the default model (SmolLM2-135M-Instruct, whose chat template has no tools: calls in
  the Hermes `<tool_call>` style): `response_format` json_schema for a set of schemas
  (validated with `jsonschema`), streamed and not, greedy and sampled, n > 1;
  json_object; llama-server's `json_schema` and `grammar` fields with the grammars/ files
  (outputs checked by parsers written here); `chat.completions.parse` with a pydantic model;
  `tools` with `tool_choice` "required" and a named function, streamed and not (arguments
  validated against the parameters schema); a round trip with a `tool` message; bad
  schemas and conflicting constraints get a 400 naming the field;
- on a tiny random Mixtral with the v3 tokenizer (Mistral's tool format): the prompt with
  tools and tool results equals mistral-common's encoding, and forced calls parse.

    python scripts/server/test_structured.py [--mixtral .build/release/mixtral] [--model GGUF]
"""
import argparse
import json
import os
import re
import sys
import tempfile

import jsonschema
import openai
import pydantic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_server import Server, Suite, http, extra  # noqa: E402

SCHEMAS = {
    "nested object": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                         "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                        "required": ["city", "zip"]},
        },
        "required": ["name", "age", "address"],
    },
    "array of objects": {
        "type": "object",
        "properties": {"fruits": {"type": "array", "minItems": 2, "maxItems": 4,
                                  "items": {"type": "object", "properties": {
                                      "name": {"type": "string", "maxLength": 20},
                                      "color": {"enum": ["red", "green", "yellow", "orange"]}},
                                            "required": ["name", "color"]}}},
        "required": ["fruits"],
    },
    "enum and const": {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no", "maybe"]}, "version": {"const": 2},
                       "confidence": {"type": "number"}},
        "required": ["answer", "version", "confidence"],
    },
    "anyOf": {
        "type": "object",
        "properties": {"value": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 10}, {"type": "null"}]},
                       "flag": {"type": "boolean"}},
        "required": ["value", "flag"],
    },
    "refs": {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                            "required": ["x", "y"]}},
        "type": "object",
        "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"},
                       "label": {"type": "string", "maxLength": 15}},
        "required": ["start", "end"],
    },
    "formats": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}, "id": {"type": "string", "format": "uuid"}},
        "required": ["day", "id"],
    },
}

PROMPTS = {
    "nested object": "Describe a person with a name, an age and an address, as JSON.",
    "array of objects": "List some fruits and their colors as JSON.",
    "enum and const": "Is the sky blue? Answer as JSON.",
    "anyOf": "Give me a value and a flag as JSON.",
    "refs": "Give a line segment from (1, 2) to (3, 4) as JSON.",
    "formats": "Give today's date and a random uuid as JSON.",
}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
SEARCH = {"type": "function", "function": {
    "name": "search_flights", "description": "Search flights between two airports",
    "parameters": {"type": "object", "properties": {
        "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        "dates": {"type": "array", "items": {"type": "string", "format": "date"}, "minItems": 1, "maxItems": 2}},
        "required": ["origin", "destination", "dates"]}}}
TOOLS = [WEATHER, SEARCH]


def validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def check_json(text, schema):
    value = json.loads(text)
    validator(schema).validate(value)
    return value


def check_calls(calls, tools, only=None):
    assert calls, "no tool calls"
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    ids = set()
    for call in calls:
        assert call.type == "function", call
        assert call.function.name in by_name, call
        assert only is None or call.function.name == only, call
        check_json(call.function.arguments, by_name[call.function.name])
        assert re.fullmatch(r"[A-Za-z0-9]{9}", call.id), call.id
        ids.add(call.id)
    assert len(ids) == len(calls), "call ids repeat"


def streamed_chat(client, **kwargs):
    """Content, tool calls (accumulated by index as OpenAI's clients do) and finish reasons."""
    content, calls, finish = {}, {}, {}
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            content[choice.index] = content.get(choice.index, "") + (choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(choice.index, {}).setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    return content, calls, finish


# Parsers for the grammars/ files, independent of the grammar engine.
def parse_arithmetic(text):
    """grammars/arithmetic.gbnf: lines `expr = num`, expr of terms (ident, num, parens)."""
    position = 0

    def ws():
        nonlocal position
        while position < len(text) and text[position] in " \t\n":
            position += 1

    def term():
        nonlocal position
        if position < len(text) and text[position] == "(":
            position += 1
            ws()
            expr()
            assert text[position] == ")", text[position:]
            position += 1
            ws()
        elif position < len(text) and text[position].isdigit():
            m = re.compile(r"[0-9]+").match(text, position)
            position = m.end()
            ws()
        else:
            m = re.compile(r"[a-z][a-z0-9_]*").match(text, position)
            assert m, text[position:]
            position = m.end()
            ws()

    def expr():
        nonlocal position
        term()
        while position < len(text) and text[position] in "-+*/":
            position += 1
            term()

    lines = 0
    while position < len(text):
        expr()
        assert text[position] == "=", text[position:]
        position += 1
        ws()
        m = re.compile(r"[0-9]+").match(text, position)
        assert m, text[position:]
        position = m.end()
        ws()
        lines += 1
    assert text.endswith("\n") and lines >= 1


def parse_list(text):
    lines = text.split("\n")
    assert lines[-1] == "" and 1 <= len(lines) - 1 <= 10, text
    for line in lines[:-1]:
        assert line.startswith("- ") and 1 <= len(line) - 2 <= 200, line


GRAMMARS = [("json.gbnf", "Describe a cat as a JSON object.", lambda text: json.loads(text)),
            ("arithmetic.gbnf", "Write three sums, one per line.", parse_arithmetic),
            ("list.gbnf", "List three colors.", parse_list)]


def run_default_model_tests(suite, server):
    client = server.client()
    name = suite.model_name

    def chat(**kwargs):
        kwargs.setdefault("max_tokens", 300)
        return client.chat.completions.create(model=name, **kwargs)

    def response_format_json_schema():
        for label, schema in SCHEMAS.items():
            messages = [{"role": "user", "content": PROMPTS[label]}]
            response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
            for sampling in [{"temperature": 0}, {"temperature": 1.0, "seed": 5}]:
                response = chat(messages=messages, response_format=response_format, **sampling)
                choice = response.choices[0]
                assert choice.finish_reason == "stop", (label, choice.finish_reason, choice.message.content)
                check_json(choice.message.content, schema)
                content, _, finish = streamed_chat(client, model=name, messages=messages, max_tokens=300,
                                                   response_format=response_format, **sampling)
                assert finish[0] == "stop", (label, finish)
                # Streamed and whole answers are the same sequence.
                assert content[0] == choice.message.content, (label, content[0], choice.message.content)

    def json_schema_with_n_and_logprobs():
        schema = SCHEMAS["enum and const"]
        response = chat(messages=[{"role": "user", "content": PROMPTS["enum and const"]}], n=3, temperature=1.2, seed=9,
                        logprobs=True, top_logprobs=2,
                        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
        assert len(response.choices) == 3
        for choice in response.choices:
            check_json(choice.message.content, schema)
            assert choice.logprobs.content and all(e.logprob > -9999 for e in choice.logprobs.content), choice.logprobs

    def response_format_json_object():
        for prompt in ["Describe a cat as a JSON object with a name and an age.", "Give a JSON object with two keys."]:
            response = chat(messages=[{"role": "user", "content": prompt}], response_format={"type": "json_object"},
                            temperature=0, max_tokens=400)
            choice = response.choices[0]
            assert choice.finish_reason == "stop", choice
            assert isinstance(json.loads(choice.message.content), dict), choice.message.content

    def llama_server_json_schema_field():
        schema = SCHEMAS["array of objects"]
        response = client.completions.create(model=name, prompt="Fruits as JSON:", max_tokens=300, temperature=0,
                                             extra_body={"json_schema": schema})
        assert response.choices[0].finish_reason == "stop", response.choices[0]
        check_json(response.choices[0].text, schema)

    def gbnf_grammars():
        for file_name, prompt, check in GRAMMARS:
            with open(os.path.join(ROOT, "grammars", file_name)) as f:
                gbnf = f.read()
            for sampling in [{"temperature": 0}, {"temperature": 0.9, "seed": 3}]:
                response = chat(messages=[{"role": "user", "content": prompt}], extra_body={"grammar": gbnf},
                                max_tokens=1500, **sampling)
                choice = response.choices[0]
                # The grammars are bounded, so every answer ends with a whole match.
                assert choice.finish_reason == "stop", (file_name, choice)
                check(choice.message.content)

    def pydantic_parse():
        class Address(pydantic.BaseModel):
            city: str = pydantic.Field(max_length=30)
            country: str = pydantic.Field(max_length=30)

        class Person(pydantic.BaseModel):
            name: str = pydantic.Field(max_length=40)
            age: int
            address: Address

        parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
        completion = parse(model=name, messages=[{"role": "user", "content": "Describe a person as JSON."}],
                           response_format=Person, temperature=0, max_tokens=300)
        person = completion.choices[0].message.parsed
        assert isinstance(person, Person) and isinstance(person.address, Address), completion

    def tools_required():
        messages = [{"role": "user", "content": "What is the weather in Paris? And find flights from CDG to JFK."}]
        for sampling in [{"temperature": 0}, {"temperature": 1.0, "seed": 11}, {"temperature": 0, "parallel_tool_calls": False}]:
            # Parallel calls are at most 8; a small model that repeats itself makes 8.
            response = chat(messages=messages, tools=TOOLS, tool_choice="required", max_tokens=1000, **sampling)
            choice = response.choices[0]
            assert choice.finish_reason == "tool_calls", choice
            check_calls(choice.message.tool_calls, TOOLS)
            assert len(choice.message.tool_calls) <= (1 if "parallel_tool_calls" in sampling else 8)
            _, calls, finish = streamed_chat(client, model=name, messages=messages, tools=TOOLS, tool_choice="required",
                                             max_tokens=1000, **sampling)
            assert finish[0] == "tool_calls", finish
            streamed = [calls[0][i] for i in sorted(calls[0])]
            assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == \
                [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls]
            for call in streamed:
                check_json(call["arguments"], {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}[call["name"]])

    def tools_named_function():
        messages = [{"role": "user", "content": "I want to fly from Paris to New York next week."}]
        choice_ = {"type": "function", "function": {"name": "search_flights"}}
        response = chat(messages=messages, tools=TOOLS, tool_choice=choice_, temperature=0)
        choice = response.choices[0]
        assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1, choice
        check_calls(choice.message.tool_calls, TOOLS, only="search_flights")
        response = chat(messages=messages, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, temperature=0)
        assert len(response.choices[0].message.tool_calls) == 1

    def tool_round_trip():
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = chat(messages=messages, tools=[WEATHER], tool_choice="required", temperature=0)
        call = first.choices[0].message.tool_calls[0]
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21, "sky": "clear"})}]
        second = chat(messages=messages, tools=[WEATHER], temperature=0, max_tokens=60,
                      extra_body={"return_token_ids": True})
        choice = second.choices[0]
        assert choice.finish_reason in ("stop", "length", "tool_calls"), choice
        assert choice.message.content or choice.message.tool_calls, choice
        # The call and its result are in the prompt, in Hermes's form.
        prompt = http("POST", server.url + "/detokenize", json_body={"tokens": extra(choice, "prompt_token_ids")}).json()["prompt"]
        assert "<tool_call>" in prompt and '"name": "get_weather"' in prompt and "<tool_response>" in prompt, prompt
        assert '"sky": "clear"' in prompt and "<tools>" in prompt, prompt

    def tools_none_and_auto():
        messages = [{"role": "user", "content": "Say hello."}]
        response = chat(messages=messages, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=20,
                        extra_body={"return_token_ids": True})
        assert response.choices[0].message.tool_calls is None
        prompt = http("POST", server.url + "/detokenize", json_body={"tokens": extra(response.choices[0], "prompt_token_ids")}).json()
        assert "<tools>" not in prompt["prompt"], prompt
        response = chat(messages=messages, tools=TOOLS, temperature=0, max_tokens=40)
        choice = response.choices[0]
        # Auto: text or calls, whichever the model writes; either way well formed.
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            check_calls(choice.message.tool_calls, TOOLS)
        else:
            assert choice.finish_reason in ("stop", "length") and "<tool_call>" not in (choice.message.content or "")

    def bad_requests():
        def status(**kwargs):
            try:
                chat(messages=[{"role": "user", "content": "x"}], max_tokens=5, **kwargs)
            except openai.BadRequestError as error:
                return error.body
            raise AssertionError(f"accepted: {kwargs}")

        body = status(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "not": {}}}})
        assert body["param"] == "response_format" and "not" in body["message"], body
        body = status(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"$ref": "#/$defs/missing"}}})
        assert body["param"] == "response_format" and "missing" in body["message"], body
        body = status(response_format={"type": "json_schema", "json_schema": {"name": "a"}})
        assert body["param"] == "response_format", body
        body = status(response_format={"type": "xml"})
        assert body["param"] == "response_format", body
        body = status(response_format={"type": "json_object"}, extra_body={"grammar": "root ::= \"a\""})
        assert "both" in body["message"], body
        body = status(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
        assert body["param"] == "tool_choice", body
        body = status(tools=[{"type": "function", "function": {"name": "bad name!"}}])
        assert body["param"] == "tools", body
        body = status(tool_choice="required")
        assert body["param"] == "tool_choice", body

    for test in [response_format_json_schema, json_schema_with_n_and_logprobs, response_format_json_object,
                 llama_server_json_schema_field, gbnf_grammars, pydantic_parse, tools_required, tools_named_function,
                 tool_round_trip, tools_none_and_auto, bad_requests]:
        suite.run(test.__name__, test)


def run_mistral_tests(suite, server, model):
    """Mistral's v3 tool format on a tiny random Mixtral: prompts equal mistral-common's."""
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    import mistral_common
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    reference = MistralTokenizer.from_file(os.path.join(data, "mistral_instruct_tokenizer_240323.model.v3"))
    client = server.client()
    name = os.path.basename(os.path.normpath(model))

    def reference_ids(messages, tools):
        return reference.encode_chat_completion(ChatCompletionRequest(messages=messages, tools=tools)).tokens

    def forced_call_prompt_and_parse():
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        for stream in [False, True]:
            kwargs = dict(model=name, messages=messages, tools=TOOLS, tool_choice="required", max_tokens=200,
                          temperature=0)
            if stream:
                _, calls, finish = streamed_chat(client, **kwargs)
                assert finish[0] == "tool_calls", finish
                for call in calls[0].values():
                    params = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}[call["name"]]
                    check_json(call["arguments"], params)
            else:
                response = client.chat.completions.create(extra_body={"return_token_ids": True}, **kwargs)
                choice = response.choices[0]
                # The prompt is mistral-common's, then the [TOOL_CALLS] control token (id 5).
                assert extra(choice, "prompt_token_ids") == reference_ids(messages, TOOLS) + [5], extra(choice, "prompt_token_ids")
                assert choice.finish_reason == "tool_calls", choice
                check_calls(choice.message.tool_calls, TOOLS)

    def round_trip_prompt():
        messages = [{"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "abcDEF123", "type": "function",
                         "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}]},
                    {"role": "tool", "tool_call_id": "abcDEF123", "content": json.dumps({"temperature": 21})},
                    {"role": "user", "content": "And in Rome?"}]
        response = client.chat.completions.create(model=name, messages=messages, tools=TOOLS, max_tokens=5, temperature=0,
                                                  extra_body={"return_token_ids": True})
        assert extra(response.choices[0], "prompt_token_ids") == reference_ids(messages, TOOLS)

    for test in [forced_call_prompt_and_parse, round_trip_prompt]:
        suite.run("mistral v3: " + test.__name__, test)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtral", default=os.path.join(ROOT, ".build/release/mixtral"))
    parser.add_argument("--model", default=os.environ.get("GGUF_SMOLLM2") or os.path.expanduser(
        "~/.cache/swift-mixtral/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = parser.parse_args()
    suite = Suite(args.mixtral, args.model)
    # Without the prefix cache a streamed answer is the same sequence as the whole one: with
    # `--precision fast` a prompt resumed from a cached prefix takes other kernels.
    server = Server(args.mixtral, args.model, "--ctx", "4096", "--prefix-cache", "0")
    try:
        run_default_model_tests(suite, server)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as temporary:
        from make_test_model import make
        model = make(os.path.join(temporary, "tiny-mixtral-v3"), "v3")
        server = Server(args.mixtral, model, "--ctx", "1024")
        try:
            run_mistral_tests(suite, server, model)
        finally:
            server.stop()
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
