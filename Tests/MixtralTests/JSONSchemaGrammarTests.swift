import Foundation
import Testing
@testable import Mixtral

/// JSON Schema -> GBNF (JSONSchemaGrammar), checked against the `jsonschema` package's verdicts
/// (Fixtures/schemas/vectors.json, made by scripts/constraints/make_schema_vectors.py).
@Suite("JSONSchemaGrammar")
struct JSONSchemaGrammarTests {
    static func vectors() throws -> [JSONValue] {
        let text = try String(contentsOfFile: Fixtures.root + "/schemas/vectors.json", encoding: .utf8)
        return try #require(try JSONValue.parse(text).arrayValue)
    }

    static func schema(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }

    /// Every instance: the grammar accepts it exactly when jsonschema does, except the
    /// documented restrictions the vectors list (property order, no undeclared members when
    /// additionalProperties is absent, ...), which the grammar must reject.
    @Test func referenceVectors() throws {
        var checked = 0, stricter = 0
        let cases = try Self.vectors()
        #expect(cases.count >= 25)
        for vector in cases {
            let name = vector["name"]?.stringValue ?? "?"
            let schema = try #require(vector["schema"])
            let matcher = try GrammarMatcher(try JSONSchemaGrammar.grammar(schema))
            for instance in vector["instances"]?.arrayValue ?? [] {
                let text = try #require(instance["text"]?.stringValue)
                let valid = try #require(instance["valid"]?.boolValue)
                let expected = try #require(instance["grammar"]?.boolValue)
                if expected != valid {
                    stricter += 1
                    #expect(instance["why"]?.stringValue != nil, "\(name): \(text)")
                }
                #expect(matcher.accepts(text) == expected, "\(name): \(text) (jsonschema: \(valid))")
                checked += 1
            }
        }
        #expect(checked >= 400)
        #expect(stricter < 30)
    }

    @Test func generatedNamesAndShape() throws {
        let text = try JSONSchemaGrammar.gbnf(try Self.schema(#"""
            {"type": "object", "properties": {"first name": {"type": "string", "maxLength": 3},
             "root": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
             "required": ["first name"]}
            """#))
        #expect(text.hasPrefix("root ::= \"{\" space first-name-kv"))
        #expect(text.contains("first-name ::= "))
        #expect(text.contains("tags-item ::= \"\\\"a\\\"\" | \"\\\"b\\\"\""))
        #expect(text.contains("root1-kv ::= ") || text.contains("root-kv ::= "))  // "root" the property is not the root rule
        #expect(text.contains("space ::= | \" \" | \"\\n\" [ \\t]{0,20}"))
        // Every line is a rule.
        for line in text.split(separator: "\n") { #expect(line.contains(" ::= "), "\(line)") }
    }

    @Test func jsonObjectGrammar() throws {
        let matcher = try GrammarMatcher(try Grammar(gbnf: JSONSchemaGrammar.jsonObjectGBNF))
        for good in ["{}", #"{"a": 1}"#, #"{"a": [1, {"b": null}], "c": "x\n", "d": -1.5e+10}"#, "{\n  \"k\": true\n}", "{ }"] {
            #expect(matcher.accepts(good), "\(good)")
        }
        for bad in ["[]", "[{}]", "1", "\"x\"", "null", "true", "{", #"{"a": }"#, #"{"a" 1}"#, " {}", "{\"a\": 1,}"] {
            #expect(!matcher.accepts(bad), "\(bad)")
        }
        // The same grammar as the schema {"type": "object"} gives.
        #expect(try JSONSchemaGrammar.gbnf(try Self.schema(#"{"type": "object"}"#)) == JSONSchemaGrammar.jsonObjectGBNF)
    }

    /// Errors name the keyword or construct and the JSON pointer of the schema at fault.
    @Test func errorsNameTheCauseAndPath() throws {
        let cases: [(String, String)] = [
            (#"{"properties": {"a": {"not": {"type": "string"}}}}"#, "unsupported keyword 'not' at #/properties/a"),
            (#"{"type": "array", "items": {"type": "object", "patternProperties": {}}}"#, "unsupported keyword 'patternProperties' at #/items"),
            (#"{"type": "array", "uniqueItems": true}"#, "unsupported keyword 'uniqueItems' at #"),
            (#"{"type": "integer", "multipleOf": 2}"#, "unsupported keyword 'multipleOf' at #"),
            (#"{"if": {}, "then": {}}"#, "unsupported keyword 'if' at #"),
            (#"{"properties": {"a": {"type": 3}}}"#, "'type' at #/properties/a must be a string"),
            (#"{"type": "strin"}"#, "unknown type 'strin' at #/type"),
            (#"{"type": "object", "properties": {"a": {}}, "required": "a"}"#, "'required' at # must be a list of strings"),
            (#"{"type": "object", "required": [1]}"#, "'required' at # must be a list of strings"),
            (##"{"$ref": "#/$defs/missing", "$defs": {}}"##, "$ref '#/$defs/missing' at #/$ref points to nothing (no 'missing')"),
            (#"{"properties": {"a": {"$ref": "https://example.com/s.json"}}}"#, "external $ref 'https://example.com/s.json' at #/properties/a/$ref"),
            (##"{"$ref": "#foo"}"##, "anchors are not supported"),
            (##"{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##, "left-recursive"),
            (#"{"type": "string", "pattern": "^(?=a)b$"}"#, "lookahead is not supported"),
            (#"{"type": "string", "pattern": "(?<!a)b"}"#, "lookbehind is not supported"),
            (#"{"type": "string", "pattern": "(a)\\1"}"#, "backreferences are not supported"),
            (#"{"type": "string", "pattern": "\\bword"}"#, "word boundaries"),
            (#"{"type": "string", "pattern": "(?i)abc"}"#, "inline flags"),
            (#"{"type": "string", "pattern": "a{2000}"}"#, "above 1000"),
            (#"{"type": "string", "pattern": "a(b"}"#, "missing ')'"),
            (#"{"type": "string", "pattern": "a)b"}"#, "unbalanced ')'"),
            (#"{"type": "string", "pattern": "*a"}"#, "nothing to repeat"),
            (#"{"type": "string", "pattern": "a**"}"#, "multiple repeat"),
            (#"{"type": "string", "pattern": "a^b"}"#, "'^' and '$' are supported only at the ends"),
            (#"{"type": "string", "pattern": "\\p{L}"}"#, "Unicode property escapes"),
            (#"{"properties": {"p": {"type": "string", "pattern": "(?=x)"}}}"#, "at #/properties/p/pattern"),
            (#"{"type": "string", "minLength": 5000}"#, "'minLength' 5000 at # is above 1000"),
            (#"{"type": "string", "minLength": -1}"#, "'minLength' at # must be a non-negative integer"),
            (#"{"type": "array", "minItems": 3, "maxItems": 2}"#, "no array satisfies"),
            (#"{"type": "integer", "minimum": 10, "maximum": 5}"#, "no integer of at most 16 digits satisfies the bounds at #"),
            (#"{"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1}"#, "no number"),
            (#"{"enum": ["a"], "minLength": 3}"#, "'enum' together with 'minLength' at # is not supported"),
            (#"{"type": "integer", "enum": ["a"]}"#, "no value satisfies 'enum' at #"),
            (#"{"allOf": [{"type": "string"}, {"type": "integer"}]}"#, "the types have nothing in common"),
            (#"{"allOf": [{"pattern": "a"}, {"pattern": "b"}]}"#, "conflicting values of 'pattern'"),
            (#"{"type": "string", "pattern": "a", "maxLength": 3}"#, "'pattern' together with 'maxLength'"),
            (#"{"type": "object", "properties": {"a": {}}, "required": ["b"], "additionalProperties": false}"#,
             "required property 'b' at # is not in 'properties'"),
            (#"{"anyOf": []}"#, "'anyOf' at # must be a non-empty list"),
            (#"false"#, "is false"),
            (#"[1]"#, "not an object or a boolean"),
        ]
        for (schema, expected) in cases {
            #expect {
                _ = try JSONSchemaGrammar.grammar(try Self.schema(schema))
            } throws: { error in
                (error as? GrammarError)?.description.contains(expected) == true
            }
            do {
                _ = try JSONSchemaGrammar.grammar(try Self.schema(schema))
            } catch let error as GrammarError {
                #expect(error.description.hasPrefix("grammar: "))
                #expect(error.description.contains(expected), "\(schema) -> \(error.description)")
            }
        }
    }

    /// Annotations and unknown keywords are ignored; upper bounds above the repetition
    /// limit are not enforced.
    @Test func ignoredKeywords() throws {
        let schema = try Self.schema(#"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "title": "T",
             "description": "d", "default": {}, "examples": [], "x-custom": 1, "nullable": true,
             "type": "object", "properties": {"a": {"type": "string", "format": "uri", "deprecated": true,
             "maxLength": 5000}, "b": {"type": "array", "uniqueItems": false, "maxItems": 100000}},
             "required": ["a"], "additionalProperties": false}
            """#)
        let matcher = try GrammarMatcher(try JSONSchemaGrammar.grammar(schema))
        #expect(matcher.accepts(#"{"a": "not a uri", "b": [1, 1]}"#))
        #expect(matcher.accepts(#"{"a": ""# + String(repeating: "x", count: 1200) + #""}"#))
        #expect(!matcher.accepts(#"{"b": []}"#))
    }

    /// Hostile schemas get an error or a small grammar, quickly.
    @Test func hostileSchemasStayBounded() throws {
        let clock = ContinuousClock()
        let start = clock.now
        // 200 levels of nested objects: refused past the depth limit.
        var nested = #"{"type": "string"}"#
        for _ in 0..<200 { nested = #"{"type": "object", "properties": {"a": "# + nested + "}}" }
        #expect(throws: GrammarError.self) { try JSONSchemaGrammar.grammar(try Self.schema(nested)) }
        // A 200,000-value enum: more GBNF than allowed.
        let values = (0..<200_000).map { "\"value-\($0)\"" }.joined(separator: ",")
        #expect(throws: GrammarError.self) { try JSONSchemaGrammar.grammar(try Self.schema(#"{"enum": ["# + values + "]}")) }
        // maxLength 10^9: not enforced beyond the repetition limit, so the grammar stays small.
        let text = try JSONSchemaGrammar.gbnf(try Self.schema(#"{"type": "string", "maxLength": 1000000000}"#))
        #expect(text.utf8.count < 2000)
        #expect(try GrammarMatcher(try Grammar(gbnf: text)).accepts("\"" + String(repeating: "y", count: 3000) + "\""))
        // 50 properties of maxLength ~1000: about 50,000 repetition rules, beyond Grammar's
        // limit (the same maxLength 50 times would share one rule).
        let wide = (0..<50).map { #""p\#($0)": {"type": "string", "maxLength": \#(1000 - $0)}"# }.joined(separator: ",")
        #expect {
            _ = try JSONSchemaGrammar.grammar(try Self.schema(#"{"type": "object", "properties": {"# + wide + "}}"))
        } throws: { error in
            (error as? GrammarError)?.description.contains("the schema's grammar was refused") == true
        }
        // allOf chains that double at every level: the merge bounds stop them.
        var defs: [String] = []
        for i in 0..<40 { defs.append(##""d\##(i)": {"allOf": [{"$ref": "#/$defs/d\##(i + 1)"}, {"$ref": "#/$defs/d\##(i + 1)"}]}"##) }
        defs.append(#""d40": {"type": "string"}"#)
        #expect(throws: GrammarError.self) {
            try JSONSchemaGrammar.grammar(try Self.schema(#"{"$defs": {"# + defs.joined(separator: ",") + ##"}, "$ref": "#/$defs/d0"}"##))
        }
        // Many references to one recursive definition: one rule for it.
        let tree = try JSONSchemaGrammar.gbnf(try Self.schema(#"""
            {"$defs": {"t": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/t"}]}}},
             "type": "object", "properties": {"a": {"$ref": "#/$defs/t"}, "b": {"$ref": "#/$defs/t"}}}
            """#))
        #expect(tree.split(separator: "\n").filter { $0.hasPrefix("t ::= ") }.count == 1)
        let matcher = try GrammarMatcher(try Grammar(gbnf: tree))
        #expect(matcher.accepts(#"{"a": [1, [2, [3, []]]], "b": []}"#))
        #expect(!matcher.accepts(#"{"a": [1, [2, ["x"]]]}"#))
        #expect(clock.now - start < .seconds(60))
    }

    /// Integer and number bounds against a brute-force check.
    @Test func numericRangesMatchBruteForce() throws {
        let ranges: [(String, (Double) -> Bool)] = [
            (#"{"type": "integer", "minimum": -123, "maximum": 4567}"#, { $0 >= -123 && $0 <= 4567 }),
            (#"{"type": "integer", "minimum": 95}"#, { $0 >= 95 }),
            (#"{"type": "integer", "exclusiveMaximum": -9}"#, { $0 < -9 }),
            (#"{"type": "integer", "minimum": 1.5, "maximum": 20.5}"#, { $0 >= 1.5 && $0 <= 20.5 }),
            (#"{"type": "integer", "minimum": 0, "maximum": 0}"#, { $0 == 0 }),
        ]
        for (schema, inRange) in ranges {
            let matcher = try GrammarMatcher(try JSONSchemaGrammar.grammar(try Self.schema(schema)))
            for n in -1100...5100 { #expect(matcher.accepts(String(n)) == inRange(Double(n)), "\(schema): \(n)") }
            #expect(!matcher.accepts("1.0") || schema.contains("number"))
        }
        let decimals: [(String, (Double) -> Bool)] = [
            (#"{"type": "number", "minimum": -1.25, "maximum": 3}"#, { $0 >= -1.25 && $0 <= 3 }),
            (#"{"type": "number", "exclusiveMinimum": 0.05, "exclusiveMaximum": 0.95}"#, { $0 > 0.05 && $0 < 0.95 }),
            (#"{"type": "number", "exclusiveMinimum": -10}"#, { $0 > -10 }),
            (#"{"type": "number", "minimum": 0.25, "maximum": 0.75}"#, { $0 >= 0.25 && $0 <= 0.75 }),
            (#"{"type": "number", "minimum": 1, "exclusiveMaximum": 2}"#, { $0 >= 1 && $0 < 2 }),
            (#"{"type": "number", "exclusiveMinimum": 0.1, "exclusiveMaximum": 0.1}"#, { _ in false }),
            (#"{"type": "number", "minimum": 3.5, "maximum": 3.5}"#, { $0 == 3.5 }),
            (#"{"type": "number", "maximum": -0.01}"#, { $0 <= -0.01 }),
        ]
        for (schema, inRange) in decimals {
            guard let grammar = try? JSONSchemaGrammar.grammar(try Self.schema(schema)) else {
                #expect(schema.contains("0.1, \"exclusiveMaximum\": 0.1"), "\(schema)")  // the empty range is refused
                continue
            }
            let matcher = try GrammarMatcher(grammar)
            for hundredths in -1200...1200 {
                let value = Double(hundredths) / 100
                for text in [String(format: "%.2f", value), String(format: "%.1f", value), String(format: "%.3f", value)]
                where Double(text) == value && !text.hasPrefix("-0.00") && text != "-0.0" && text != "-0.000" {
                    #expect(matcher.accepts(text) == inRange(value), "\(schema): \(text)")
                }
            }
        }
    }

    /// Keywords beside anyOf/oneOf go into each alternative; allOf merges; required names
    /// without a schema; type unions; keys that need escapes; pattern classes over escapes.
    @Test func unionsMergesAndEdgeKeys() throws {
        func check(_ schema: String, accepts good: [String], rejects bad: [String]) throws {
            let matcher = try GrammarMatcher(try JSONSchemaGrammar.grammar(try Self.schema(schema)))
            for text in good { #expect(matcher.accepts(text), "\(schema): \(text)") }
            for text in bad { #expect(!matcher.accepts(text), "\(schema): \(text)") }
        }
        try check(#"""
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
             "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
            """#, accepts: [#"{"a": 1}"#, #"{"b": 2}"#, #"{"a": 1, "b": 2}"#], rejects: ["{}", #"{"a": "x"}"#])
        try check(#"{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]}"#,
                  accepts: [#"{"a": "x", "b": [1]}"#, #"{"a": "x", "b": null}"#], rejects: [#"{"a": "x"}"#, #"{"b": 1}"#])
        try check(#"{"type": ["object", "null"], "properties": {"n": {"type": "number"}}, "additionalProperties": false}"#,
                  accepts: ["null", #"{"n": 1.5}"#, "{}"], rejects: [#"{"m": 1}"#, "1"])
        try check(#"{"properties": {"say \"x\"": {"type": "integer"}, "é": {"const": 1}}, "additionalProperties": true}"#,
                  accepts: [#"{"say \"x\"": 1}"#, #"{"say \"x\"": 1, "é": 1, "other": "y"}"#, #"{"éa": 2}"#,
                            #"{"say \"y\"": "z", "say \"x\\n": 0, "say \"x\"\"": [], "say \\u0022x": 3}"#],
                  rejects: [#"{"say \"x\"": "1"}"#, #"{"é": 2}"#, #"{"a": 1, "say \"x\"": "1"}"#, #"{"say \"x\q": 1}"#])
        try check(#"{"type": "array", "items": false}"#, accepts: ["[]", "[ ]"], rejects: ["[1]"])
        try check(##"""
            {"$defs": {"pos": {"type": "integer", "minimum": 1}},
             "anyOf": [{"$ref": "#/$defs/pos"}, {"type": "string", "format": "date"}]}
            """##, accepts: ["1", "42", #""2024-02-29""#], rejects: ["0", #""2023-02-29""#])
        try check(##"""
            {"$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
             "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"tag": {"enum": ["a", "b"]}}}]}
            """##, accepts: [#"{"id": 1}"#, #"{"id": 1, "tag": "b"}"#], rejects: [#"{"tag": "a"}"#, #"{"id": 1, "tag": "c"}"#])
        try check(##"{"$ref": "#/$defs/s", "maxLength": 2, "$defs": {"s": {"type": "string"}}}"##,
                  accepts: [#""ab""#], rejects: [#""abc""#, "1"])
        try check(#"{"type": "string", "pattern": "^\\d{3}(-\\d{2})?$|^x$"}"#,
                  accepts: [#""123""#, #""123-45""#, #""x""#], rejects: [#""12""#, #""123-4""#, #""xx""#])
        try check(#"{"type": "string", "pattern": "^[^a-z\\n]+$"}"#,
                  accepts: [#""ABC 1""#, #""\"\\\t""#], rejects: [#""AbC""#, #""A\nB""#, #""""#])
        try check(#"{"type": "string", "pattern": "^.{2}$"}"#,
                  accepts: [#""ab""#, #""\"\\""#, #""日本""#], rejects: [#""a\nb""#, #""a""#])
    }
}
