#!/usr/bin/env python3
# Requirements: pip install "jsonschema>=4.18" rfc3339-validator
#   (rfc3339-validator is what jsonschema checks the "date-time" and "time" formats with;
#   without it jsonschema silently accepts any string for them, so this script refuses to run.)
"""Reference vectors for JSONSchemaGrammar (Sources/Mixtral/Constraints/JSONSchemaGrammar.swift).

For each schema below, a list of JSON texts and the verdict of the `jsonschema` package
(Draft 2020-12, with format checking). Writes Tests/MixtralTests/Fixtures/schemas/vectors.json:

    [{"name": ..., "schema": {...}, "instances": [{"text": ..., "valid": bool, "grammar": bool,
                                                   "why": "..." (only where grammar != valid)}]}]

`grammar` is whether the grammar must accept the text; it equals `valid` except for the
grammar's documented restrictions, which are listed as STRICTER entries with the reason:
properties in the schema's order, no members beyond the declared ones when
additionalProperties is absent, integers written without a fraction, email as
local@domain.tld. Instances are written as json.dumps(x, ensure_ascii=False) writes them
(separators ", " and ": "), some also compactly (",", ":") or indented; their properties follow
the schema's order. Numbers avoid spellings where JSON and Python differ (1e400, -0).

    .venv-bench/bin/python scripts/constraints/make_schema_vectors.py
"""
import json
import os
import sys

try:
    import rfc3339_validator  # noqa: F401
except ImportError:
    sys.exit("rfc3339-validator is needed for jsonschema's date-time and time checks: pip install rfc3339-validator")
from jsonschema import Draft202012Validator

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "MixtralTests", "Fixtures", "schemas", "vectors.json")


class Stricter:
    """An instance JSON Schema accepts that the grammar deliberately does not."""

    def __init__(self, value, why):
        self.value, self.why = value, why


class Text:
    """An instance given as JSON text (whitespace the dumps forms do not show)."""

    def __init__(self, text):
        self.text = text


ORDER = "the grammar writes properties in the schema's order"
UNICODE_W = "\\w is ASCII in the grammar (ECMA-262); Python's re also takes Unicode letters"
NO_EXTRA = "additionalProperties is absent: the grammar writes no other members"

CASES = [
    ("object-basic",
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
      "required": ["name"], "additionalProperties": False},
     [{"name": "Ann"}, {"name": "Ann", "age": 30}, {"name": "", "age": -1}, {"name": "Zo\u00eb \"Z\"\n\t\\", "age": 0},
      Text('{ "name" : "Ann", "age" : 3 }'), Stricter(Text('{"name": "Ann" , "age": 3}'), "the grammar writes no whitespace before a comma (as llama.cpp)"),
      Text('{"name": "Ann",\n  "age": 3\n}'),
      {}, {"age": 30}, {"name": "Ann", "age": "30"}, {"name": "Ann", "age": 30, "x": 1}, {"name": 5},
      {"name": "Ann", "age": 1.5}, [], "Ann", None,
      Stricter({"age": 30, "name": "Ann"}, ORDER),
      Stricter({"name": "Ann", "age": 30.0}, "the grammar writes integers without a fraction")]),

    ("object-nested",
     {"type": "object", "properties": {
         "id": {"type": "integer"},
         "address": {"type": "object", "properties": {
             "street": {"type": "string"}, "city": {"type": "string"},
             "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["street", "city"]}},
      "required": ["id", "address"]},
     [{"id": 1, "address": {"street": "Main St", "city": "X"}},
      {"id": 2, "address": {"street": "", "city": "Y", "zip": "12345"}},
      {"id": 1, "address": {"street": "Main", "city": "X", "zip": "1234"}},
      {"id": 1, "address": {"street": "Main", "city": "X", "zip": "123456"}},
      {"id": 1, "address": {"street": "Main", "city": "X", "zip": "abcde"}},
      {"id": 1, "address": {"street": "Main"}}, {"id": 1}, {"id": 1, "address": "Main St"},
      {"id": "1", "address": {"street": "Main", "city": "X"}},
      Stricter({"id": 1, "address": {"street": "Main", "city": "X", "country": "NL"}}, NO_EXTRA)]),

    ("array-bounds",
     {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
     [[1, 2], [1, 2, 3, 4], [-5, 0, 7], Text("[\n  1,\n  2\n]"), Text("[ 1, 2 ]"),
      [], [1], [1, 2, 3, 4, 5], [1, "2"], [1, 2.5], {}, "[1, 2]"]),

    ("enum-strings",
     {"enum": ["red", "green", "blue"]},
     ["red", "green", "blue", "Red", "yellow", "", 1, None, ["red"], "red "]),

    ("enum-mixed",
     {"enum": ["a", 1, None, True, {"k": [1, 2]}, [1, "x"]]},
     ["a", 1, None, True, {"k": [1, 2]}, [1, "x"], "b", 2, False, {"k": [1]}, [1], {"k": [1, 2], "j": 0}]),

    ("const-object",
     {"const": {"a": [1, 2], "b": "x"}},
     [{"a": [1, 2], "b": "x"}, {"a": [1, 2]}, {"a": [2, 1], "b": "x"}, {"a": [1, 2], "b": "y"}, "x",
      Stricter({"b": "x", "a": [1, 2]}, ORDER)]),

    ("const-escapes",
     {"type": "string", "const": "say \"hi\"\n\u00e9\\"},
     ["say \"hi\"\n\u00e9\\", "say hi", "say \"hi\"", "", 0]),

    ("any-of",
     {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 0}]},
     ["abc", "", 0, 42, 1000000, "abcd", -1, 1.5, None, True, []]),

    ("one-of-shapes",
     {"oneOf": [
         {"type": "object", "properties": {"kind": {"const": "circle"}, "radius": {"type": "number"}},
          "required": ["kind", "radius"], "additionalProperties": False},
         {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
          "required": ["kind", "side"], "additionalProperties": False}]},
     [{"kind": "circle", "radius": 1.5}, {"kind": "square", "side": 2}, {"kind": "circle", "radius": 1e-07},
      {"kind": "circle", "side": 2}, {"kind": "triangle", "side": 2}, {"kind": "circle"}, {},
      {"kind": "square", "side": 2, "radius": 1}]),

    ("ref-tree",
     {"$defs": {"node": {"type": "object", "properties": {
         "value": {"type": "integer"},
         "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
         "required": ["value"], "additionalProperties": False}},
      "$ref": "#/$defs/node"},
     [{"value": 1}, {"value": 1, "children": []},
      {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 4}]},
      {"value": 1, "children": [{}]}, {"value": 1, "children": [{"value": "x"}]}, {"children": []},
      {"value": 1, "children": {"value": 2}}, {"value": 1, "children": [{"value": 2, "children": [{"value": 3, "x": 0}]}]}]),

    ("ref-definitions",
     {"definitions": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                                "required": ["x", "y"], "additionalProperties": False}},
      "type": "object", "properties": {"start": {"$ref": "#/definitions/point"}, "end": {"$ref": "#/definitions/point"}},
      "required": ["start", "end"], "additionalProperties": False},
     [{"start": {"x": 0, "y": 1.5}, "end": {"x": -2, "y": 1e+20}},
      {"start": {"x": 0.25, "y": -1e-07}, "end": {"x": 3, "y": 4}},
      {"start": {"x": 0}, "end": {"x": 1, "y": 2}}, {"start": {"x": "0", "y": 0}, "end": {"x": 1, "y": 2}},
      {"start": {"x": 0, "y": 0}}, {"start": {"x": 0, "y": 0}, "end": {"x": 1, "y": 2}, "mid": None}]),

    ("required-interleaved",
     {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"},
                                       "d": {"type": "string"}},
      "required": ["b", "d"], "additionalProperties": False},
     [{"b": "1", "d": "2"}, {"a": "0", "b": "1", "d": "2"}, {"a": "0", "b": "1", "c": "x", "d": "2"},
      {"b": "1", "c": "x", "d": "2"}, {"a": "0", "b": "1"}, {"a": "0", "d": "2"}, {}, {"b": "1", "d": "2", "e": "3"},
      {"b": "1", "d": 2}, Stricter({"d": "2", "b": "1"}, ORDER)]),

    ("all-optional",
     {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}, "z": {"type": "boolean"}},
      "additionalProperties": False},
     [{}, {"x": 1}, {"y": 2}, {"z": True}, {"x": 1, "z": False}, {"x": 1, "y": 2, "z": True},
      Text("{ }"), {"w": 1}, {"x": "1"}, {"x": 1, "y": 2, "z": True, "q": 0}, Stricter({"z": True, "x": 1}, ORDER)]),

    ("additional-true",
     {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": True},
     [{"id": 1}, {"id": 1, "extra": "x"}, {"id": 1, "a": [1, {"b": None}], "c": True}, {"id": 1, "ids": 2},
      {"id": 1, "i": 2}, {"id": 1, "": 0}, {"extra": 1}, {"id": "1"}, {"id": 1.5},
      Stricter({"extra": 1, "id": 1}, ORDER)]),

    ("additional-schema",
     {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
     [{}, {"name": "n"}, {"name": "n", "a": 1, "b": -2}, {"a": 1}, {"a": "x"}, {"name": "n", "a": 1.5},
      {"name": 1}, {"names": 3}]),

    ("map-of-integers",
     {"type": "object", "additionalProperties": {"type": "integer"}},
     [{}, {"a": 1}, {"a": 1, "b": -2}, {"a": "x"}, {"a": 1.5}, [], {"\u00e9\u65e5": 3}]),

    ("no-properties",
     {"type": "object", "properties": {}, "additionalProperties": False},
     [{}, Text("{\n}"), {"a": 1}, [], None]),

    ("string-length",
     {"type": "string", "minLength": 2, "maxLength": 5},
     ["ab", "abcde", "\u00e9\u65e5\u672c", "a\"b", "a\nb", "\U0001F600\U0001F600", "a", "", "abcdef",
      "\u65e5\u672c\u8a9e\u65e5\u672c\u8a9e", 12]),

    ("pattern-code",
     {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
     ["AB-123", "ZZ-000", "ab-123", "AB-12", "AB-1234", "xAB-123", "AB_123", "", 12]),

    ("pattern-unanchored",
     {"type": "string", "pattern": "ab+c"},
     ["abc", "xxabbbcyy", "abbc", "a b abc", "ac", "abx", "", "ABC", "a\"bc"]),

    ("pattern-groups",
     {"type": "string", "pattern": "^(foo|bar)(-[0-9]+)?$"},
     ["foo", "bar", "bar-12", "foo-0", "baz", "foo-", "foobar", "foo-1a", "-1"]),

    ("pattern-dotted",
     {"type": "string", "pattern": "^(?:[a-z]+\\.)*[a-z]+$"},
     ["abc", "a.b.c", "com.example", "a..b", ".a", "a.", "A.b", ""]),

    ("pattern-quotes",
     {"type": "string", "pattern": "^say \"[^\"]*\"\\s*$"},
     ["say \"hi\"", "say \"\"", "say \"hi there\"  ", "say \"hi\"\t", "say hi", "say \"h\"i\"", "say \"hi"]),

    ("pattern-classes",
     {"type": "string", "pattern": "^\\w+(\\s\\w+)*[.!?]?$|^[\u00e0-\u00ff]{2,3}$"},
     ["hello", "hello world!", "a_1 b_2?", "\u00e9\u00e0", "\u00e9\u00e0\u00ef", "hello  world", " hello", "!",
      "hello world!!", Stricter("abc\u00e9", UNICODE_W), Stricter("\u00e9\u00e0\u00ef\u00ef", UNICODE_W), Stricter("\u00e9", UNICODE_W)]),

    ("format-date",
     {"type": "string", "format": "date"},
     ["2024-02-29", "2023-12-31", "0001-01-01", "2000-02-29", "1999-04-30", "2023-02-29", "1900-02-29",
      "2024-13-01", "2024-04-31", "2024-1-01", "0000-01-01", "24-01-01", "2024-01-01T00:00:00Z", "2024-00-10"]),

    ("format-time",
     {"type": "string", "format": "time"},
     ["12:34:56Z", "23:59:59.123+05:30", "00:00:00-00:00", "12:34:56z", "08:00:00.5Z", "24:00:00Z", "12:60:00Z",
      "12:34:56", "12:34Z", "12:34:56+5:30", "12:34:60Z", "12:34:56+24:00"]),

    ("format-date-time",
     {"type": "string", "format": "date-time"},
     ["2024-02-29T12:00:00Z", "2024-01-01t00:00:00.5+01:00", "1999-12-31T23:59:59-08:00",
      "2023-02-29T12:00:00Z", "2024-01-01 12:00:00Z", "2024-01-01T12:00:00", "2024-01-01", "2024-06-31T00:00:00Z"]),

    ("format-uuid",
     {"type": "string", "format": "uuid"},
     ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000",
      "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-42661417400g",
      "{123e4567-e89b-12d3-a456-426614174000}", ""]),

    ("format-email",
     {"type": "string", "format": "email"},
     ["a@b.co", "first.last+tag@example.org", "ab.co", "", Stricter("a@b", "the grammar writes email as local@domain.tld")]),

    ("integer-range",
     {"type": "integer", "minimum": -5, "maximum": 120},
     [-5, -1, 0, 7, 99, 100, 119, 120, -6, 121, 1000, -10, 5.5, "7",
      Stricter(7.0, "the grammar writes integers without a fraction")]),

    ("integer-exclusive",
     {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1000},
     [1, 9, 10, 999, 500, 0, 1000, -1, 10000]),

    ("integer-minimum",
     {"type": "integer", "minimum": 37},
     [37, 38, 40, 99, 100, 12345, 36, 0, -37, 9, 30]),

    ("integer-maximum-negative",
     {"type": "integer", "maximum": -3},
     [-3, -4, -10, -100, -2, 0, 3, -1]),

    ("number-unit",
     {"type": "number", "minimum": 0, "maximum": 1},
     [0, 1, 0.5, 1.0, 0.999, 0.0, 0.000125, -0.1, 1.01, 2, -1, 1.5]),

    ("number-fractional-bounds",
     {"type": "number", "exclusiveMinimum": 0.5, "maximum": 10.25},
     [0.51, 0.6, 1, 10, 10.25, 10.2, 10.125, 0.5, 0.49, 10.26, 11, 0, 10.3]),

    ("number-negative",
     {"type": "number", "minimum": -2.5, "exclusiveMaximum": -1},
     [-2.5, -2, -1.5, -1.01, -1.999, -1, -0.5, -2.51, 0, 3, -3]),

    ("boolean", {"type": "boolean"}, [True, False, "true", 1, None]),

    ("null", {"type": "null"}, [None, 0, "null", False]),

    ("type-list",
     {"type": ["string", "null"], "maxLength": 3},
     ["abc", "", None, "abcd", 1, True]),

    ("type-list-integer-boolean",
     {"type": ["integer", "boolean"]},
     [1, -20, True, 1.5, "1", None]),

    ("prefix-items",
     {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
     [[], ["a"], ["a", 1], [1], ["a", "b"], ["a", 1, 2]]),

    ("prefix-items-rest",
     {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"}, "minItems": 2, "maxItems": 3},
     [["a", True], ["a", True, False], ["a"], [], ["a", True, False, True], ["a", 1], [True, True]]),

    ("all-of",
     {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer", "minimum": 1}}, "required": ["b"]}]},
     [{"a": "x", "b": 1}, {"a": "x", "b": 25}, {"a": "x"}, {"b": 1}, {"a": 1, "b": 1}, {"a": "x", "b": 0},
      Stricter({"a": "x", "b": 1, "c": 2}, NO_EXTRA)]),

    ("any-value", {}, [1, "x", None, True, [1, {"a": []}], {"a": {"b": [True, -1.5e-07]}}, Text("[ ]")]),

    ("annotated-any", {"description": "anything", "title": "T", "examples": [1]}, [1, "x", {"k": None}]),

    ("board",
     {"type": "array", "minItems": 3, "maxItems": 3,
      "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"enum": ["x", "o", " "]}}},
     [[["x", "o", " "], [" ", "x", "o"], ["o", " ", "x"]], [["x", "o"], [" ", "x", "o"], ["o", " ", "x"]],
      [["x", "o", " "], [" ", "x", "o"]], [["x", "o", "X"], [" ", "x", "o"], ["o", " ", "x"]]]),

    ("order",
     {"type": "object", "properties": {
         "items": {"type": "array", "minItems": 1, "items": {
             "type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{2,4}$"},
                                              "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
             "required": ["sku", "qty"], "additionalProperties": False}},
         "note": {"type": "string", "maxLength": 10},
         "priority": {"enum": ["low", "high"]}},
      "required": ["items"], "additionalProperties": False},
     [{"items": [{"sku": "ABC12", "qty": 1}]}, {"items": [{"sku": "ABC1234", "qty": 99}, {"sku": "XYZ00", "qty": 5}], "note": "asap"},
      {"items": [{"sku": "ABC12", "qty": 1}], "priority": "high"}, {"items": []}, {"items": [{"sku": "AB12", "qty": 1}]},
      {"items": [{"sku": "ABC12", "qty": 100}]}, {"items": [{"sku": "ABC12", "qty": 0}]},
      {"items": [{"sku": "ABC12", "qty": 1}], "note": "this is far too long"},
      {"items": [{"sku": "ABC12", "qty": 1}], "priority": "urgent"}, {"note": "x"}]),
]


def texts(index, value):
    """The instance's JSON texts: json.dumps's default form, and for every other one also compact."""
    if isinstance(value, Text):
        return [value.text]
    out = [json.dumps(value, ensure_ascii=False)]
    if index % 2 == 1 and isinstance(value, (dict, list)):
        compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if compact not in out:
            out.append(compact)
    if index % 5 == 2 and isinstance(value, (dict, list)) and value:
        out.append(json.dumps(value, ensure_ascii=False, indent=2))
    return out


def main():
    result = []
    total = valid_count = stricter_count = 0
    for name, schema, instances in CASES:
        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        entries = []
        for index, instance in enumerate(instances):
            why = None
            if isinstance(instance, Stricter):
                why, instance = instance.why, instance.value
            for text in texts(index, instance):
                valid = validator.is_valid(json.loads(text))
                entry = {"text": text, "valid": valid, "grammar": valid if why is None else False}
                if why is not None:
                    assert valid, f"{name}: {text} is meant to be valid (stricter case) but jsonschema rejects it"
                    entry["why"] = why
                    stricter_count += 1
                entries.append(entry)
                total += 1
                valid_count += valid
        assert any(e["valid"] for e in entries) and any(not e["valid"] for e in entries) or name in ("any-value", "annotated-any"), name
        result.append({"name": name, "schema": schema, "instances": entries})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(result)} schemas, {total} instances ({valid_count} valid, {stricter_count} stricter) -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
