/// JSON Schema to GBNF, modelled on llama.cpp's json-schema-to-grammar
/// (examples/json_schema_to_grammar.py and common/json-schema-to-grammar.cpp): the grammar
/// generates JSON text that the schema accepts, written the way a model (and Python's
/// `json.dumps`) writes it.
///
///     let grammar = try JSONSchemaGrammar.grammar(try JSONValue.parse(#"{"type": "object", ...}"#))
///
/// What the grammar allows, as llama.cpp's does:
/// - Whitespace: after `{`, `[`, `,` and `:`, before `:`, `]` and `}`, and nowhere else;
///   at most one space or one newline and 20 spaces or tabs (`space`), so a model cannot
///   loop on whitespace. None before or after the value.
/// - Objects: the properties in the schema's order. Required ones must appear, optional ones
///   may be left out (JSON Schema allows any order; the grammar fixes one, as llama.cpp
///   does, though llama.cpp puts the required properties first and this keeps the schema's
///   order). `additionalProperties` absent or false: no other members (llama.cpp's choice:
///   JSON Schema allows them when absent); true or a schema: other members, after the
///   declared ones, whose keys are none of the declared names (as spelled canonically: a
///   declared name re-spelled with `\u` escapes, or one holding a control character, is not
///   excluded). A schema with no `properties`, `required` or restrictive
///   `additionalProperties` is any object; one with `required` but no `properties` also
///   allows other members. A required name missing from `properties` may have any value
///   (or the additionalProperties schema's).
/// - Without `type`, the type follows the keywords present, as llama.cpp (`properties` means
///   an object, `items` an array, `pattern` a string, `minimum` a number...); with none, any
///   JSON value. (JSON Schema would also accept values of other types.)
/// - Strings: JSON string characters and escapes, no raw control characters or DEL.
///   `minLength`/`maxLength` count characters, an escape being one (a surrogate pair
///   written as two `\u` escapes counts as two).
/// - Numbers: JSON number syntax with at most 16 integral and 16 fractional digits and a
///   3-digit exponent; integers are written without a fraction or exponent (JSON Schema
///   also takes `1.0` as an integer; the grammar does not write it).
/// - `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` are enforced for integers (as
///   llama.cpp) and for numbers (which llama.cpp does not); a bounded number is written
///   without an exponent, and a negative zero is not written for a range that holds 0.
/// - `format`: date, time, date-time (RFC 3339, with real month lengths and leap years, as
///   the `jsonschema` package checks them), uuid (8-4-4-4-12 hex digits) and email
///   (`local@domain.tld` in ASCII: stricter than JSON Schema's "contains an @"). Other
///   formats are annotations and are not enforced. minLength/maxLength beside a format are
///   accepted only when the format's own lengths satisfy them.
/// - `pattern`: see `RegexParser` below for the subset. The pattern is searched for, as JSON
///   Schema says (an unanchored side may have any characters), and it matches the
///   characters' canonical JSON spelling (`\"`, `\\`, raw non-ASCII). A pattern beside
///   minLength, maxLength or a format is refused (the grammar cannot intersect them).
/// - `enum`/`const`: exactly the values' JSON text (`json.dumps` spelling for scalars, any
///   allowed whitespace inside arrays and objects), less the values of other types when
///   `type` is given; beside any other constraining keyword they are refused.
/// - Arrays: `items`, `prefixItems` (or draft 7's `items` list with `additionalItems`),
///   `minItems`, `maxItems`.
/// - `$ref` within the document (`#/$defs/Name`, `#/definitions/Name`, any JSON pointer):
///   one rule per target, so recursive schemas work. A schema that refers to itself before
///   anything is written (left recursion) is refused.
/// - `anyOf` and `oneOf` are alternatives (`oneOf`'s "exactly one" is not enforced, as in
///   llama.cpp); keywords beside them are merged into each alternative. `allOf` is merged
///   into one schema (types, properties, required, bounds, enums; conflicting keywords are
///   refused). A type list is a union.
/// - Keywords that only annotate (title, description, default, examples, $schema, $id,
///   $comment, deprecated, readOnly, writeOnly, content*) and unknown keywords are ignored,
///   as JSON Schema ignores them. Constraining keywords not supported (not, if/then/else,
///   patternProperties, propertyNames, min/maxProperties, dependentRequired,
///   dependentSchemas, dependencies, unevaluated*, contains, min/maxContains,
///   uniqueItems: true, multipleOf, $dynamicRef, $recursiveRef) are refused with a
///   `GrammarError` that names the keyword and its JSON pointer, e.g.
///   "grammar: unsupported keyword 'not' at #/properties/a".
///
/// Bounds, so that a hostile schema gets an error rather than a blow-up: subschemas nested
/// at most `maxSchemaDepth` deep, at most 100,000 subschemas visited, GBNF text at most
/// `maxGrammarBytes`, and the resulting `Grammar`'s own limits (20,000 rules; a bounded
/// repetition x{0,n} costs n rules). Repetition counts are at most 1,000 (GBNF's limit): a
/// larger lower bound (`minLength`, `minItems`, a pattern's `{m,n}`) is refused; a larger
/// `maxLength`/`maxItems` is not enforced (the grammar lets the string or array be longer).
public enum JSONSchemaGrammar {
    /// The largest GBNF text a schema may produce.
    public static let maxGrammarBytes = 1 << 20
    /// How deep subschemas (properties, items, alternatives...) may nest.
    public static let maxSchemaDepth = 64
    static let maxSubschemas = 100_000
    static let maxCount = Grammar.maxRepetition

    /// The GBNF text for a schema (its rules: `root` first, then by name). Checked by
    /// parsing it as a `Grammar`.
    public static func gbnf(_ schema: JSONValue) throws(GrammarError) -> String { try build(schema).text }

    /// The parsed grammar for a schema.
    public static func grammar(_ schema: JSONValue) throws(GrammarError) -> Grammar { try build(schema).grammar }

    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`): `root ::= object`
    /// with llama.cpp's generic object, array, string, number and whitespace rules.
    public static let jsonObjectGBNF: String = SchemaConverter.primitiveGrammar(root: "object")

    static func build(_ schema: JSONValue) throws(GrammarError) -> (text: String, grammar: Grammar) {
        var converter = SchemaConverter(document: schema)
        let text = try converter.convert()
        do throws(GrammarError) {
            return (text, try Grammar(gbnf: text))
        } catch {
            let inner = error.description.hasPrefix("grammar: ") ? String(error.description.dropFirst(9)) : error.description
            throw GrammarError("the schema's grammar was refused: \(inner)")
        }
    }
}

// The machinery, inside the namespace.
extension JSONSchemaGrammar {
    /// A set of Unicode code points as sorted, disjoint, non-adjacent ranges.
    struct CharSet: Equatable {
        private(set) var ranges: [ClosedRange<UInt32>]

        init(_ ranges: [ClosedRange<UInt32>]) {
            let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
            var merged: [ClosedRange<UInt32>] = []
            for range in sorted {
                if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                    merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
                } else {
                    merged.append(range)
                }
            }
            self.ranges = merged
        }

        init(scalar: UInt32) { ranges = [scalar...scalar] }

        static let all = CharSet([0...0x10FFFF])
        static let digits = CharSet([0x30...0x39])
        static let word = CharSet([0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
        /// ECMA-262's \s (JSON Schema's regular expressions are ECMA-262's).
        static let space = CharSet([0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A,
                                    0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF])
        /// ECMA-262's `.`: any character but a line terminator.
        static let dot = CharSet([0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029]).complement()
        /// Characters a JSON string may hold unescaped (llama.cpp also escapes DEL).
        static let raw = CharSet([0x20...0x21, 0x23...0x5B, 0x5D...0x7E, 0x80...0x10FFFF])
        static let controls = CharSet([0x00...0x1F, 0x7F...0x7F])

        var isEmpty: Bool { ranges.isEmpty }
        var single: UInt32? { ranges.count == 1 && ranges[0].lowerBound == ranges[0].upperBound ? ranges[0].lowerBound : nil }
        func contains(_ c: UInt32) -> Bool { ranges.contains { $0.contains(c) } }
        func union(_ other: CharSet) -> CharSet { CharSet(ranges + other.ranges) }

        func complement() -> CharSet {
            var result: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for range in ranges {
                if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
                next = range.upperBound &+ 1
            }
            if next <= 0x10FFFF { result.append(next...0x10FFFF) }
            return CharSet(result)
        }

        func intersection(_ other: CharSet) -> CharSet { complement().union(other.complement()).complement() }
        func subtracting(_ other: CharSet) -> CharSet { intersection(other.complement()) }
    }

    /// GBNF spelling of literals and classes.
    enum GBNFText {
        static func literal(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar.value {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x00..<0x20, 0x7F: out += hex(scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }

        static func classText(_ set: CharSet) -> String {
            "[" + set.ranges.map { $0.lowerBound == $0.upperBound ? classChar($0.lowerBound) : classChar($0.lowerBound) + "-" + classChar($0.upperBound) }.joined() + "]"
        }

        static func classChar(_ c: UInt32) -> String {
            switch c {
            case 0x5C: return "\\\\"
            case 0x5D: return "\\]"
            case 0x5B: return "\\["
            case 0x2D: return "\\-"
            case 0x5E: return "\\^"
            case 0x20...0x7E: return Unicode.Scalar(c).map { String($0) } ?? hex(c)
            default: return hex(c)
            }
        }

        static func hex(_ c: UInt32) -> String {
            let digits = String(c, radix: 16, uppercase: true)
            if c <= 0xFF { return "\\x" + String(repeating: "0", count: 2 - digits.count) + digits }
            if c <= 0xFFFF { return "\\u" + String(repeating: "0", count: 4 - digits.count) + digits }
            return "\\U" + String(repeating: "0", count: 8 - digits.count) + digits
        }

        /// A class that matches no character.
        static let nothing = "[^\\x00-\\U0010FFFF]"

        /// Groups alternatives into one item.
        static func group(_ alternatives: [String]) -> String {
            alternatives.count == 1 && !alternatives[0].isEmpty ? alternatives[0] : "( " + alternatives.joined(separator: " | ") + " )"
        }

        /// The JSON spelling of a string, as json.dumps(s, ensure_ascii=False) writes it.
        static func json(_ s: String) -> String { JSONValue.string(s).serialized() }
    }

    /// The conversion itself: rules by name, one rule per `$ref` target, and the bounds.
    struct SchemaConverter {
        enum Rendered { case ref(String), body(String) }

        let document: JSONValue
        private(set) var rules: [String: String] = [:]
        private var taken: Set<String>
        private var nameByBody: [String: String] = [:]
        private var refNames: [String: String] = [:]
        private var bytes = 0
        private var subschemas = 0

        init(document: JSONValue) {
            self.document = document
            taken = Set(Self.primitives.keys).union(["root"])
        }

        // MARK: Keywords

        static let supported: Set<String> = [
            "type", "properties", "required", "additionalProperties", "enum", "const", "items", "prefixItems",
            "additionalItems", "minItems", "maxItems", "anyOf", "oneOf", "allOf", "$ref", "minLength", "maxLength",
            "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        ]
        static let unsupported: Set<String> = [
            "not", "if", "then", "else", "patternProperties", "propertyNames", "minProperties", "maxProperties",
            "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems",
            "contains", "minContains", "maxContains", "uniqueItems", "multipleOf", "$dynamicRef", "$recursiveRef",
        ]
        static let typeNames: Set<String> = ["object", "array", "string", "number", "integer", "boolean", "null"]

        // MARK: Primitive rules (llama.cpp's PRIMITIVE_RULES and STRING_FORMAT_RULES, with real calendars)

        static let primitives: [String: (body: String, deps: [String])] = [
            "space": (#"| " " | "\n" [ \t]{0,20}"#, []),
            "char": (#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#, []),
            "string": (#""\"" char* "\"""#, ["char"]),
            "integral-part": (#"[0] | [1-9] [0-9]{0,15}"#, []),
            "decimal-part": (#"[0-9]{1,16}"#, []),
            "number": (#""-"? integral-part ("." decimal-part)? ([eE] [-+]? [0-9]{1,3})?"#, ["integral-part", "decimal-part"]),
            "integer": (#""-"? integral-part"#, ["integral-part"]),
            "boolean": (#""true" | "false""#, []),
            "null": (#""null""#, []),
            "value": ("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
            "object": (#""{" space ( string space ":" space value ( "," space string space ":" space value )* )? space "}""#, ["space", "string", "value"]),
            "array": (#""[" space ( value ( "," space value )* )? space "]""#, ["space", "value"]),
            // Years 0001-9999; leap years are divisible by 4, and centuries by 400.
            "date-year": (#""000" [1-9] | "00" [1-9] [0-9] | "0" [1-9] [0-9]{2} | [1-9] [0-9]{3}"#, []),
            "date-leap-year": (#"[0-9]{2} ( [02468] [48] | [2468] "0" | [13579] [26] ) | ( [02468] [48] | [2468] "0" | [13579] [26] ) "00""#, []),
            "date-month-day": (#"( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] )"#, []),
            "date": (#"date-year "-" date-month-day | date-leap-year "-02-29""#, ["date-year", "date-month-day", "date-leap-year"]),
            // RFC 3339 full-time without leap seconds, as rfc3339-validator (jsonschema) checks it.
            "time": (#"( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,16} )? ( [Zz] | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )"#, []),
            "date-time": (#"date [Tt] time"#, ["date", "time"]),
            "uuid": (#"[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}"#, []),
            "email": (#"[A-Za-z0-9._%+\-]+ "@" [A-Za-z0-9\-]+ ( "." [A-Za-z0-9\-]+ )+"#, []),
            "date-string": (#""\"" date "\"""#, ["date"]),
            "time-string": (#""\"" time "\"""#, ["time"]),
            "date-time-string": (#""\"" date-time "\"""#, ["date-time"]),
            "uuid-string": (#""\"" uuid "\"""#, ["uuid"]),
            "email-string": (#""\"" email "\"""#, ["email"]),
        ]

        /// The characters each format writes, for checking minLength/maxLength beside it.
        static let formatLengths: [String: (Int, Int?)] = [
            "date": (10, 10), "time": (9, 31), "date-time": (20, 42), "uuid": (36, 36), "email": (5, nil),
        ]

        /// A grammar of primitive rules only (for `jsonObjectGBNF`).
        static func primitiveGrammar(root: String) -> String {
            var converter = SchemaConverter(document: .null)
            let name = converter.primitive(root)
            converter.define("root", name)
            return converter.text()
        }

        /// Defines a primitive rule and the rules it uses; returns its name.
        @discardableResult
        mutating func primitive(_ name: String) -> String {
            guard rules[name] == nil, let entry = Self.primitives[name] else { return name }
            define(name, entry.body)
            for dep in entry.deps { primitive(dep) }
            return name
        }

        // MARK: Rules

        mutating func define(_ name: String, _ body: String) {
            rules[name] = body
            taken.insert(name)
            if nameByBody[body] == nil { nameByBody[body] = name }
            bytes += name.utf8.count + body.utf8.count + 6
        }

        /// A name derived from `base` (sanitized to [a-zA-Z0-9-]) that no rule has.
        mutating func reserveName(_ base: String) -> String {
            var sanitized = ""
            var lastWasDash = false
            for scalar in base.unicodeScalars {
                let ok = (scalar.value >= 0x30 && scalar.value <= 0x39) || (scalar.value >= 0x41 && scalar.value <= 0x5A)
                    || (scalar.value >= 0x61 && scalar.value <= 0x7A)
                if ok {
                    sanitized.unicodeScalars.append(scalar)
                    lastWasDash = false
                } else if !lastWasDash {
                    sanitized += "-"
                    lastWasDash = true
                }
            }
            while sanitized.hasPrefix("-") { sanitized.removeFirst() }
            while sanitized.hasSuffix("-") { sanitized.removeLast() }
            if sanitized.count > 48 { sanitized = String(sanitized.suffix(48)).trimmingDashes() }
            if sanitized.isEmpty { sanitized = "rule" }
            var name = sanitized
            var counter = 1
            while taken.contains(name) {
                name = sanitized + String(counter)
                counter += 1
            }
            taken.insert(name)
            return name
        }

        /// A rule with this body: an existing one with the same body, or a new one named after `base`.
        mutating func addRule(_ base: String, _ body: String) throws(GrammarError) -> String {
            if let existing = nameByBody[body] { return existing }
            let name = reserveName(base)
            define(name, body)
            guard bytes <= JSONSchemaGrammar.maxGrammarBytes else {
                throw GrammarError("the schema's grammar would be larger than \(JSONSchemaGrammar.maxGrammarBytes) bytes")
            }
            return name
        }

        func text() -> String {
            var lines: [String] = []
            if let root = rules["root"] { lines.append("root ::= " + root) }
            for name in rules.keys.sorted() where name != "root" {
                if let body = rules[name] { lines.append(name + " ::= " + body) }
            }
            return lines.joined(separator: "\n") + "\n"
        }

        static func child(_ name: String, _ suffix: String) -> String { name.isEmpty ? suffix : name + "-" + suffix }

        /// `path` with JSON-pointer tokens appended (~ as ~0, / as ~1).
        static func pointer(_ path: String, _ tokens: String...) -> String {
            var out = path
            for token in tokens {
                out += "/"
                for c in token {
                    switch c {
                    case "~": out += "~0"
                    case "/": out += "~1"
                    default: out.append(c)
                    }
                }
            }
            return out
        }

        // MARK: Conversion

        mutating func convert() throws(GrammarError) -> String {
            switch try render(document, name: "", path: "#", depth: 0) {
            case .ref(let name): define("root", name)
            case .body(let body): define("root", body)
            }
            guard bytes <= JSONSchemaGrammar.maxGrammarBytes else {
                throw GrammarError("the schema's grammar would be larger than \(JSONSchemaGrammar.maxGrammarBytes) bytes")
            }
            return text()
        }

        /// A reference to the rule for `schema` (a new rule named after `name` unless it is a primitive).
        mutating func visit(_ schema: JSONValue, name: String, path: String, depth: Int) throws(GrammarError) -> String {
            switch try render(schema, name: name, path: path, depth: depth) {
            case .ref(let rule): return rule
            case .body(let body): return try addRule(name.isEmpty ? "root-value" : name, body)
            }
        }

        mutating func render(_ schema: JSONValue, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            subschemas += 1
            guard subschemas <= JSONSchemaGrammar.maxSubschemas else {
                throw GrammarError("the schema has more than \(JSONSchemaGrammar.maxSubschemas) subschemas (at \(path))")
            }
            guard depth <= JSONSchemaGrammar.maxSchemaDepth else {
                throw GrammarError("the schema is nested deeper than \(JSONSchemaGrammar.maxSchemaDepth) at \(path)")
            }
            switch schema {
            case .bool(true): return .ref(primitive("value"))
            case .bool(false): throw GrammarError("the schema at \(path) is false: no value satisfies it")
            case .object(let members): return try renderObject(members, name: name, path: path, depth: depth)
            default: throw GrammarError("the schema at \(path) is not an object or a boolean")
            }
        }

        typealias Members = [(key: String, value: JSONValue)]

        func checkKeywords(_ members: Members, path: String) throws(GrammarError) {
            var seen = Set<String>()
            for (key, value) in members {
                guard seen.insert(key).inserted else { throw GrammarError("keyword '\(key)' appears twice at \(path)") }
                if Self.unsupported.contains(key) {
                    if key == "uniqueItems", value == .bool(false) { continue }
                    throw GrammarError("unsupported keyword '\(key)' at \(path)")
                }
            }
        }

        /// The members that constrain (supported keywords), less those named.
        static func constraining(_ members: Members, except: Set<String> = []) -> Members {
            members.filter { supported.contains($0.key) && !except.contains($0.key) }
        }

        mutating func renderObject(_ members: Members, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            try checkKeywords(members, path: path)
            let schema = JSONValue.object(members)
            if let ref = schema["$ref"] {
                guard case .string(let target) = ref else { throw GrammarError("'$ref' at \(path) is not a string") }
                if Self.constraining(members, except: ["$ref"]).isEmpty {
                    return .ref(try refRule(target, path: Self.pointer(path, "$ref"), depth: depth))
                }
                let merged = try flatten(schema, path: path, depth: depth)
                return try renderObject(merged, name: name, path: path, depth: depth + 1)
            }
            if schema["allOf"] != nil {
                let merged = try flatten(schema, path: path, depth: depth)
                return try renderObject(merged, name: name, path: path, depth: depth + 1)
            }
            if schema["anyOf"] != nil || schema["oneOf"] != nil {
                return try renderUnion(members, name: name, path: path, depth: depth)
            }
            if schema["const"] != nil || schema["enum"] != nil {
                return try renderEnum(members, path: path, depth: depth)
            }
            var types = try Self.types(schema, path: path) ?? Self.inferredTypes(schema)
            if types.isEmpty { return .ref(primitive("value")) }
            if types.contains("number") { types.removeAll { $0 == "integer" } }
            if types.count == 1 { return try renderType(types[0], schema, name: name, path: path, depth: depth) }
            var alternatives: [String] = []
            for type in types {
                let typeName = name.isEmpty ? "root-" + type : name + "-" + type
                switch try renderType(type, schema, name: typeName, path: path, depth: depth) {
                case .ref(let rule): alternatives.append(rule)
                case .body(let body): alternatives.append(try addRule(typeName, body))
                }
            }
            return .body(alternatives.joined(separator: " | "))
        }

        static func types(_ schema: JSONValue, path: String) throws(GrammarError) -> [String]? {
            guard let type = schema["type"] else { return nil }
            var names: [String] = []
            switch type {
            case .string(let name): names = [name]
            case .array(let list) where !list.isEmpty:
                for item in list {
                    guard case .string(let name) = item else { throw GrammarError("'type' at \(path) must be a string or a list of strings") }
                    if !names.contains(name) { names.append(name) }
                }
            default: throw GrammarError("'type' at \(path) must be a string or a non-empty list of strings")
            }
            for name in names where !typeNames.contains(name) {
                throw GrammarError("unknown type '\(name)' at \(Self.pointer(path, "type"))")
            }
            return names
        }

        /// Without `type`, the types the keywords present are about (as llama.cpp: `properties`
        /// means an object); none: any value.
        static func inferredTypes(_ schema: JSONValue) -> [String] {
            var types: [String] = []
            let has = { (keys: [String]) in keys.contains { schema[$0] != nil } }
            if has(["properties", "required", "additionalProperties"]) { types.append("object") }
            if has(["items", "prefixItems", "additionalItems", "minItems", "maxItems"]) { types.append("array") }
            if has(["minLength", "maxLength", "pattern", "format"]) { types.append("string") }
            if has(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) { types.append("number") }
            return types
        }

        mutating func renderType(_ type: String, _ schema: JSONValue, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            switch type {
            case "object": return try renderObjectType(schema, name: name, path: path, depth: depth)
            case "array": return try renderArray(schema, name: name, path: path, depth: depth)
            case "string": return try renderString(schema, name: name, path: path)
            case "number": return try renderNumber(schema, integer: false, path: path)
            case "integer": return try renderNumber(schema, integer: true, path: path)
            case "boolean": return .ref(primitive("boolean"))
            default: return .ref(primitive("null"))
            }
        }

        // MARK: anyOf / oneOf / enum / const

        mutating func renderUnion(_ members: Members, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            let schema = JSONValue.object(members)
            if schema["anyOf"] != nil && schema["oneOf"] != nil {
                throw GrammarError("'anyOf' and 'oneOf' together at \(path) are not supported")
            }
            let keyword = schema["anyOf"] != nil ? "anyOf" : "oneOf"
            guard let list = schema[keyword]?.arrayValue, !list.isEmpty else {
                throw GrammarError("'\(keyword)' at \(path) must be a non-empty list of schemas")
            }
            let siblings = members.filter { $0.key != keyword }
            let constrained = !Self.constraining(siblings).isEmpty
            var alternatives: [String] = []
            var seen = Set<String>()
            for (index, alternative) in list.enumerated() {
                let altPath = Self.pointer(path, keyword, String(index))
                if alternative == .bool(false) { continue }
                let altName = name.isEmpty ? "alternative-\(index)" : "\(name)-\(index)"
                var altSchema = alternative
                if constrained {
                    let base = try flatten(.object(siblings), path: path, depth: depth)
                    altSchema = .object(try merge(base, try flatten(alternative, path: altPath, depth: depth), path: altPath))
                }
                let rule = try visit(altSchema, name: altName, path: altPath, depth: depth + 1)
                if seen.insert(rule).inserted { alternatives.append(rule) }
            }
            guard !alternatives.isEmpty else { throw GrammarError("every alternative of '\(keyword)' at \(path) is false") }
            return .body(alternatives.joined(separator: " | "))
        }

        mutating func renderEnum(_ members: Members, path: String, depth: Int) throws(GrammarError) -> Rendered {
            let schema = JSONValue.object(members)
            var values: [JSONValue]
            if let constant = schema["const"] {
                values = [constant]
                if let list = schema["enum"] {
                    guard let list = list.arrayValue else { throw GrammarError("'enum' at \(path) must be a list") }
                    if !list.contains(constant) { values = [] }
                }
            } else {
                guard let list = schema["enum"]?.arrayValue else { throw GrammarError("'enum' at \(path) must be a list") }
                values = list
            }
            let keyword = schema["const"] != nil ? "const" : "enum"
            if let other = Self.constraining(members, except: ["const", "enum", "type"]).first {
                throw GrammarError("'\(keyword)' together with '\(other.key)' at \(path) is not supported")
            }
            if let types = try Self.types(schema, path: path) {
                values = values.filter { value in types.contains { Self.value(value, hasType: $0) } }
            }
            guard !values.isEmpty else { throw GrammarError("no value satisfies '\(keyword)' at \(path)") }
            var alternatives: [String] = []
            var seen = Set<String>()
            var size = 0
            for value in values {
                let text = try constant(value, path: Self.pointer(path, keyword), depth: depth)
                size += text.utf8.count + 3
                guard size <= JSONSchemaGrammar.maxGrammarBytes else {
                    throw GrammarError("'\(keyword)' at \(path) would make the grammar larger than \(JSONSchemaGrammar.maxGrammarBytes) bytes")
                }
                if seen.insert(text).inserted { alternatives.append(text) }
            }
            return .body(alternatives.joined(separator: " | "))
        }

        static func value(_ value: JSONValue, hasType type: String) -> Bool {
            switch (type, value) {
            case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null): return true
            case ("number", .integer), ("number", .number), ("integer", .integer): return true
            case ("integer", .number(let d)): return d.isFinite && d.rounded() == d
            default: return false
            }
        }

        /// The grammar for exactly this JSON value.
        mutating func constant(_ value: JSONValue, path: String, depth: Int) throws(GrammarError) -> String {
            guard depth <= JSONSchemaGrammar.maxSchemaDepth else { throw GrammarError("a constant at \(path) is nested too deep") }
            switch value {
            case .null: return GBNFText.literal("null")
            case .bool(let b): return GBNFText.literal(b ? "true" : "false")
            case .integer(let i): return GBNFText.literal(String(i))
            case .number(let d):
                guard d.isFinite else { throw GrammarError("a constant at \(path) is not a finite number") }
                return GBNFText.literal("\(d)")
            case .string(let s): return GBNFText.literal(GBNFText.json(s))
            case .array(let elements):
                primitive("space")
                var parts: [String] = []
                for element in elements { parts.append(try constant(element, path: path, depth: depth + 1)) }
                return parts.isEmpty ? #""[" space "]""# : #""[" space "# + parts.joined(separator: #" "," space "#) + #" space "]""#
            case .object(let members):
                primitive("space")
                var parts: [String] = []
                for (key, member) in members {
                    parts.append(GBNFText.literal(GBNFText.json(key)) + #" space ":" space "# + (try constant(member, path: path, depth: depth + 1)))
                }
                return parts.isEmpty ? #""{" space "}""# : #""{" space "# + parts.joined(separator: #" "," space "#) + #" space "}""#
            }
        }

        // MARK: $ref and allOf

        /// The target of a reference within the document (a JSON pointer after '#').
        func resolve(_ ref: String, path: String) throws(GrammarError) -> (pointer: String, tokens: [String], target: JSONValue) {
            guard ref.hasPrefix("#") else {
                throw GrammarError("external $ref '\(ref)' at \(path) is not supported (only references within the schema, like #/$defs/Name)")
            }
            let fragment = String(ref.dropFirst()).removingPercentEncodingIfPossible()
            if fragment.isEmpty { return ("#", [], document) }
            guard fragment.hasPrefix("/") else { throw GrammarError("$ref '\(ref)' at \(path) is not a JSON pointer (anchors are not supported)") }
            var tokens: [String] = []
            for part in fragment.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                var token = "", tilde = false
                for c in part {
                    if tilde {
                        token += c == "1" ? "/" : c == "0" ? "~" : "~" + String(c)
                        tilde = false
                    } else if c == "~" {
                        tilde = true
                    } else {
                        token.append(c)
                    }
                }
                if tilde { token += "~" }
                tokens.append(token)
            }
            var target = document
            for token in tokens {
                switch target {
                case .object:
                    guard let next = target[token] else { throw GrammarError("$ref '\(ref)' at \(path) points to nothing (no '\(token)')") }
                    target = next
                case .array(let list):
                    guard let index = Int(token), list.indices.contains(index) else {
                        throw GrammarError("$ref '\(ref)' at \(path) points to nothing (no '\(token)')")
                    }
                    target = list[index]
                default: throw GrammarError("$ref '\(ref)' at \(path) points to nothing (no '\(token)')")
                }
            }
            return ("#" + fragment, tokens, target)
        }

        /// One rule per reference target, named after the definition; recursion refers to the
        /// rule before its body is known.
        mutating func refRule(_ ref: String, path: String, depth: Int) throws(GrammarError) -> String {
            let (pointer, tokens, target) = try resolve(ref, path: path)
            if let name = refNames[pointer] { return name }
            var nameTokens = tokens
            if let first = nameTokens.first, first == "$defs" || first == "definitions" { nameTokens.removeFirst() }
            let name = reserveName(nameTokens.isEmpty ? "schema" : nameTokens.joined(separator: "-"))
            refNames[pointer] = name
            switch try render(target, name: name, path: pointer, depth: depth + 1) {
            case .ref(let rule): define(name, rule)
            case .body(let body): define(name, body)
            }
            return name
        }

        /// The schema as one keyword list: its top-level `$ref` and `allOf` merged in.
        mutating func flatten(_ schema: JSONValue, path: String, depth: Int) throws(GrammarError) -> Members {
            subschemas += 1
            guard subschemas <= JSONSchemaGrammar.maxSubschemas, depth <= JSONSchemaGrammar.maxSchemaDepth else {
                throw GrammarError("the schema at \(path) is too deep or too large to merge")
            }
            switch schema {
            case .bool(true): return []
            case .bool(false): throw GrammarError("the schema at \(path) is false: no value satisfies it")
            case .object(let members):
                try checkKeywords(members, path: path)
                var result = members.filter { $0.key != "$ref" && $0.key != "allOf" }
                if let ref = schema["$ref"] {
                    guard case .string(let target) = ref else { throw GrammarError("'$ref' at \(path) is not a string") }
                    let resolved = try resolve(target, path: Self.pointer(path, "$ref"))
                    result = try merge(try flatten(resolved.target, path: resolved.pointer, depth: depth + 1), result, path: path)
                }
                if let allOf = schema["allOf"] {
                    guard let list = allOf.arrayValue, !list.isEmpty else { throw GrammarError("'allOf' at \(path) must be a non-empty list of schemas") }
                    for (index, part) in list.enumerated() {
                        let partPath = Self.pointer(path, "allOf", String(index))
                        result = try merge(result, try flatten(part, path: partPath, depth: depth + 1), path: partPath)
                    }
                }
                return result
            default: throw GrammarError("the schema at \(path) is not an object or a boolean")
            }
        }

        /// Both schemas' constraints as one schema, for the keywords that merge plainly.
        func merge(_ a: Members, _ b: Members, path: String) throws(GrammarError) -> Members {
            var result = a
            let aSchema = JSONValue.object(a), bSchema = JSONValue.object(b)
            func index(_ key: String) -> Int? { result.firstIndex { $0.key == key } }
            for (key, value) in b {
                guard let i = index(key) else {
                    result.append((key, value))
                    continue
                }
                let old = result[i].value
                if old == value || !Self.supported.contains(key) { continue }
                switch key {
                case "type":
                    let ta = try Self.types(aSchema, path: path) ?? [], tb = try Self.types(bSchema, path: path) ?? []
                    var common: [String] = []
                    for t in ta {
                        if tb.contains(t) { common.append(t) } else if t == "number", tb.contains("integer") { common.append("integer") } else if t == "integer", tb.contains("number") { common.append("integer") }
                    }
                    guard !common.isEmpty else { throw GrammarError("'allOf' at \(path): the types have nothing in common") }
                    result[i].value = common.count == 1 ? .string(common[0]) : .array(common.map { .string($0) })
                case "required":
                    guard let ra = old.arrayValue, let rb = value.arrayValue else { throw GrammarError("'required' at \(path) must be a list of strings") }
                    result[i].value = .array(ra + rb.filter { !ra.contains($0) })
                case "properties":
                    guard let pa = old.objectValue, let pb = value.objectValue else { throw GrammarError("'properties' at \(path) must be an object") }
                    var merged = pa
                    for (name, schema) in pb {
                        if let j = merged.firstIndex(where: { $0.key == name }) {
                            merged[j].value = .object([("allOf", .array([merged[j].value, schema]))])
                        } else {
                            merged.append((name, schema))
                        }
                    }
                    result[i].value = .object(merged)
                case "enum":
                    guard let ea = old.arrayValue, let eb = value.arrayValue else { throw GrammarError("'enum' at \(path) must be a list") }
                    result[i].value = .array(ea.filter { eb.contains($0) })
                case "minLength", "minItems", "minimum", "exclusiveMinimum":
                    if let x = old.doubleValue, let y = value.doubleValue, y > x { result[i].value = value }
                case "maxLength", "maxItems", "maximum", "exclusiveMaximum":
                    if let x = old.doubleValue, let y = value.doubleValue, y < x { result[i].value = value }
                case "items", "additionalItems":
                    if old == .bool(false) || value == .bool(true) { continue }
                    if value == .bool(false) || old == .bool(true) { result[i].value = value; continue }
                    result[i].value = .object([("allOf", .array([old, value]))])
                case "additionalProperties":
                    break  // below
                default:
                    throw GrammarError("'allOf' at \(path): conflicting values of '\(key)' cannot be merged")
                }
            }
            // additionalProperties of one side applies to the other side's properties too: merge
            // only when it does not exclude or constrain them.
            let namesA = Set((aSchema["properties"]?.objectValue ?? []).map(\.key))
            let namesB = Set((bSchema["properties"]?.objectValue ?? []).map(\.key))
            for (extra, own, other) in [(aSchema["additionalProperties"], namesA, namesB), (bSchema["additionalProperties"], namesB, namesA)] {
                guard let extra, extra != .bool(true) else { continue }
                if let name = other.subtracting(own).sorted().first {
                    throw GrammarError("'allOf' at \(path): property '\(name)' of one schema is constrained by the other's additionalProperties (not supported)")
                }
            }
            if let x = aSchema["additionalProperties"], let y = bSchema["additionalProperties"], x != y, let i = index("additionalProperties") {
                if x == .bool(false) || y == .bool(false) {
                    result[i].value = .bool(false)
                } else if x == .bool(true) {
                    result[i].value = y
                } else if y != .bool(true) {
                    result[i].value = .object([("allOf", .array([x, y]))])
                }
            }
            return result
        }

        // MARK: Objects

        mutating func renderObjectType(_ schema: JSONValue, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            var properties: Members = []
            if let value = schema["properties"] {
                guard let list = value.objectValue else { throw GrammarError("'properties' at \(path) must be an object") }
                var seen = Set<String>()
                for member in list {
                    guard seen.insert(member.key).inserted else { throw GrammarError("property '\(member.key)' appears twice at \(path)") }
                }
                properties = list
            }
            var required: [String] = []
            if let value = schema["required"] {
                guard let list = value.arrayValue else { throw GrammarError("'required' at \(path) must be a list of strings") }
                for item in list {
                    guard let s = item.stringValue else { throw GrammarError("'required' at \(path) must be a list of strings") }
                    if !required.contains(s) { required.append(s) }
                }
            }
            let additional = schema["additionalProperties"]
            if let additional {
                switch additional {
                case .bool, .object: break
                default: throw GrammarError("'additionalProperties' at \(path) must be a boolean or a schema")
                }
            }
            if schema["properties"] == nil && required.isEmpty && (additional == nil || additional == .bool(true)) {
                return .ref(primitive("object"))
            }
            primitive("space")
            // Required names without a property schema: the additional schema, or any value.
            for key in required where !properties.contains(where: { $0.key == key }) {
                if additional == .bool(false) {
                    throw GrammarError("required property '\(key)' at \(path) is not in 'properties' and additionalProperties is false")
                }
                properties.append((key, additional ?? .bool(true)))
            }
            let declared = properties.map(\.key)
            var keyValues: [(rule: String, required: Bool)] = []
            for (key, propertySchema) in properties {
                let isRequired = required.contains(key)
                if propertySchema == .bool(false) {
                    if isRequired { throw GrammarError("required property '\(key)' at \(path) has the schema false") }
                    continue
                }
                let propertyName = Self.child(name, key)
                let value = try visit(propertySchema, name: propertyName, path: Self.pointer(path, "properties", key), depth: depth + 1)
                let rule = try addRule(propertyName + "-kv", GBNFText.literal(GBNFText.json(key)) + #" space ":" space "# + value)
                keyValues.append((rule, isRequired))
            }
            // Other members: after the declared ones, with keys that are none of the declared names.
            var extra: String? = nil
            let allowsExtra: Bool
            switch additional {
            case nil: allowsExtra = schema["properties"] == nil  // only `required`: JSON Schema's default
            case .bool(let b)?: allowsExtra = b
            default: allowsExtra = true
            }
            if allowsExtra {
                let extraName = Self.child(name, "additional")
                let value: String
                if let additional, case .object = additional {
                    value = try visit(additional, name: extraName + "-value", path: Self.pointer(path, "additionalProperties"), depth: depth + 1)
                } else {
                    value = primitive("value")
                }
                let key = declared.isEmpty ? primitive("string") : try addRule(extraName + "-k", try otherKeys(declared, path: path))
                extra = try addRule(extraName + "-kv", key + #" space ":" space "# + value)
            }

            // rest(i): what may follow once something was written, from property i on; each
            // member after a comma. first: the members when none is written yet, one alternative
            // per property that may come first (those up to the first required one).
            let n = keyValues.count
            let firstRequired = keyValues.firstIndex { $0.required }
            let extraTail = extra.map { #"( "," space "# + $0 + " )*" } ?? ""
            func piece(_ i: Int) -> String {
                keyValues[i].required ? #""," space "# + keyValues[i].rule : #"( "," space "# + keyValues[i].rule + " )?"
            }
            // Inline from the first required property on (each rest is used once there).
            let lastAlternative = firstRequired ?? (n - 1)
            var inlineRest = extraTail
            var index = n - 1
            while index > lastAlternative {
                inlineRest = piece(index) + (inlineRest.isEmpty ? "" : " " + inlineRest)
                index -= 1
            }
            var restRefs = [String](repeating: "", count: n + 1)
            if n > 0 && !inlineRest.isEmpty {
                // Used once when the first property is required: inline it then.
                restRefs[lastAlternative + 1] = lastAlternative == 0 ? inlineRest : try addRule(Self.child(name, "rest-\(lastAlternative + 1)"), inlineRest)
            }
            if lastAlternative >= 1 {
                for i in stride(from: lastAlternative, through: 1, by: -1) {
                    let body = piece(i) + (restRefs[i + 1].isEmpty ? "" : " " + restRefs[i + 1])
                    restRefs[i] = try addRule(Self.child(name, "rest-\(i)"), body)
                }
            }
            var alternatives: [String] = []
            if n > 0 {
                for i in 0...lastAlternative {
                    alternatives.append(keyValues[i].rule + (restRefs[i + 1].isEmpty ? "" : " " + restRefs[i + 1]))
                }
            }
            if firstRequired == nil {
                if let extra { alternatives.append(extra + (extraTail.isEmpty ? "" : " " + extraTail)) }
                alternatives.append("")
            }
            let members: String
            if alternatives == [""] {
                return .body(#""{" space "}""#)
            } else if alternatives.count == 1 {
                members = alternatives[0] + " "
            } else {
                members = "( " + alternatives.joined(separator: " | ") + " ) "
            }
            return .body(#""{" space "# + members + #"space "}""#)
        }

        /// A JSON string that is none of `names` (in their canonical spelling): a trie of the
        /// names, leaving it at the first character that differs, as llama.cpp's _not_strings.
        /// The trie is over the names' JSON text, so after a backslash come escape letters.
        mutating func otherKeys(_ names: [String], path: String) throws(GrammarError) -> String {
            primitive("char")
            struct Node { var children: [(UInt32, Int)] = []; var isEnd = false }
            var nodes = [Node()]
            for name in names {
                let spelled = String(GBNFText.json(name).dropFirst().dropLast())
                // A control character spelled \u00XX: not excluded (its name stays allowed as another key).
                if spelled.contains("\\u") { continue }
                guard spelled.unicodeScalars.count <= 256 else {
                    throw GrammarError("property name at \(path) is longer than 256 characters (with additionalProperties)")
                }
                var node = 0
                for scalar in spelled.unicodeScalars {
                    if let next = nodes[node].children.first(where: { $0.0 == scalar.value })?.1 {
                        node = next
                    } else {
                        nodes.append(Node())
                        nodes[node].children.append((scalar.value, nodes.count - 1))
                        node = nodes.count - 1
                    }
                }
                nodes[node].isEnd = true
            }
            let escapeLetters = CharSet(Array("\"\\/bfnrt".unicodeScalars).map { $0.value...$0.value })
            let hexEscape = #""u" [0-9a-fA-F]{4}"#
            func expression(_ node: Int, afterBackslash: Bool) -> String {
                var alternatives: [String] = []
                var childChars = CharSet([])
                for (c, child) in nodes[node].children.sorted(by: { $0.0 < $1.0 }) {
                    childChars = childChars.union(CharSet(scalar: c))
                    let head = GBNFText.literal(String(Unicode.Scalar(c).map(Character.init) ?? " "))
                    let rest = nodes[child].children.isEmpty ? "char+" : expression(child, afterBackslash: !afterBackslash && c == 0x5C)
                    alternatives.append(head + " " + rest)
                }
                // A character (or escape) no name has here, then anything.
                var other: [String] = []
                if afterBackslash {
                    let letters = escapeLetters.subtracting(childChars)
                    if !letters.isEmpty { other.append(GBNFText.classText(letters)) }
                    other.append(hexEscape)
                } else {
                    let raw = CharSet.raw.subtracting(childChars)
                    if !raw.isEmpty { other.append(GBNFText.classText(raw)) }
                    if !childChars.contains(0x5C) { other.append(#""\\" ( "# + GBNFText.classText(escapeLetters) + " | " + hexEscape + " )") }
                }
                alternatives.append("( " + other.joined(separator: " | ") + " ) char*")
                if !afterBackslash && !nodes[node].isEnd { alternatives.append("") }
                return "( " + alternatives.joined(separator: " | ") + " )"
            }
            return #""\"" "# + expression(0, afterBackslash: false) + #" "\"""#
        }

        // MARK: Arrays

        func count(_ schema: JSONValue, _ key: String, path: String) throws(GrammarError) -> Int? {
            guard let value = schema[key] else { return nil }
            switch value {
            case .integer(let i) where i >= 0: return i
            case .number(let d) where d >= 0 && d.rounded() == d: return d > 1e15 ? Int(1e15) : Int(d)
            default: throw GrammarError("'\(key)' at \(path) must be a non-negative integer")
            }
        }

        /// item{low,high} in GBNF; `item` must be one item (a name, a class or a group).
        static func repetition(_ item: String, _ low: Int, _ high: Int?, keyword: String, path: String) throws(GrammarError) -> String {
            guard low <= JSONSchemaGrammar.maxCount else {
                throw GrammarError("'\(keyword)' \(low) at \(path) is above \(JSONSchemaGrammar.maxCount), the grammar's repetition limit")
            }
            let high = high.flatMap { $0 > JSONSchemaGrammar.maxCount ? nil : $0 }  // not enforced above the limit
            switch (low, high) {
            case (_, 0?): return ""
            case (0, 1?): return item + "?"
            case (0, nil): return item + "*"
            case (1, nil): return item + "+"
            case (let l, nil): return item + "{\(l),}"
            case (let l, let h?) where l == h: return l == 1 ? item : item + "{\(l)}"
            case (let l, let h?): return item + "{\(l),\(h)}"
            }
        }

        mutating func renderArray(_ schema: JSONValue, name: String, path: String, depth: Int) throws(GrammarError) -> Rendered {
            var prefix: [JSONValue] = []
            var rest: JSONValue? = schema["items"]
            var restKeyword = "items"
            if let prefixItems = schema["prefixItems"] {
                guard let list = prefixItems.arrayValue else { throw GrammarError("'prefixItems' at \(path) must be a list of schemas") }
                prefix = list
            } else if let items = schema["items"], let list = items.arrayValue {
                prefix = list  // draft 7's tuple form
                rest = schema["additionalItems"]
                restKeyword = "additionalItems"
            }
            let minItems = try count(schema, "minItems", path: path) ?? 0
            var maxItems = try count(schema, "maxItems", path: path)
            if schema["minItems"] == nil && schema["maxItems"] == nil && prefix.isEmpty && (rest == nil || rest == .bool(true)) {
                return .ref(primitive("array"))
            }
            primitive("space")
            if rest == .bool(false) { maxItems = min(maxItems ?? prefix.count, prefix.count) }
            if let maxItems, minItems > maxItems {
                throw GrammarError("no array satisfies minItems \(minItems) and the maximum of \(maxItems) items at \(path)")
            }
            if let maxItems, prefix.count > maxItems { prefix = Array(prefix.prefix(maxItems)) }
            var prefixRules: [String] = []
            for (i, item) in prefix.enumerated() {
                prefixRules.append(try visit(item, name: Self.child(name, "tuple-\(i)"), path: Self.pointer(path, "prefixItems", String(i)), depth: depth + 1))
            }
            // Items after the prefix, each after a comma.
            let k = prefix.count
            let extraLow = max(0, minItems - k)
            let extraHigh = maxItems.map { $0 - k }
            var restRule = ""
            if extraHigh.map({ $0 > 0 }) ?? true {
                if let rest, rest != .bool(true) {
                    restRule = try visit(rest, name: Self.child(name, "item"), path: Self.pointer(path, restKeyword), depth: depth + 1)
                } else {
                    restRule = primitive("value")
                }
            }
            var elements: String
            if k == 0 {
                let more = try Self.repetition(#"( "," space "# + restRule + " )", max(0, minItems - 1), extraHigh.map { max(0, $0 - 1) },
                                               keyword: minItems > 0 ? "minItems" : "maxItems", path: path)
                elements = restRule + (more.isEmpty ? "" : " " + more)
                if extraHigh == 0 {
                    elements = ""
                } else if minItems == 0 {
                    elements = "( " + elements + " )?"
                }
            } else {
                elements = try Self.repetition(#"( "," space "# + restRule + " )", extraLow, extraHigh, keyword: "minItems", path: path)
                for i in stride(from: k - 1, through: 0, by: -1) {
                    let item = (i == 0 ? "" : #""," space "#) + prefixRules[i] + (elements.isEmpty ? "" : " " + elements)
                    elements = i < minItems ? item : "( " + item + " )?"
                }
            }
            return .body(#""[" space "# + (elements.isEmpty ? "" : elements + " ") + #"space "]""#)
        }

        // MARK: Strings

        mutating func renderString(_ schema: JSONValue, name: String, path: String) throws(GrammarError) -> Rendered {
            let minLength = try count(schema, "minLength", path: path)
            let maxLength = try count(schema, "maxLength", path: path)
            var format: String? = nil
            if let value = schema["format"] {
                guard let s = value.stringValue else { throw GrammarError("'format' at \(path) must be a string") }
                format = Self.formatLengths[s] != nil ? s : nil  // other formats are annotations
            }
            if let value = schema["pattern"] {
                guard let pattern = value.stringValue else { throw GrammarError("'pattern' at \(path) must be a string") }
                if minLength != nil || maxLength != nil || format != nil {
                    throw GrammarError("'pattern' together with '\(format != nil ? "format" : minLength != nil ? "minLength" : "maxLength")' at \(path) is not supported")
                }
                return .body(try patternRule(pattern, name: name, path: Self.pointer(path, "pattern")))
            }
            if let format, let lengths = Self.formatLengths[format] {
                let (low, high) = lengths
                let fits = (minLength ?? 0) <= low && (maxLength == nil || (high.map { $0 <= (maxLength ?? 0) } ?? false))
                guard fits else {
                    throw GrammarError("'format' \(format) together with minLength/maxLength at \(path) is not supported")
                }
                return .ref(primitive(format + "-string"))
            }
            if minLength == nil && maxLength == nil { return .ref(primitive("string")) }
            let chars = try Self.repetition(primitive("char"), minLength ?? 0, maxLength, keyword: "minLength", path: path)
            return .body(#""\"" "# + (chars.isEmpty ? "" : chars + " ") + #""\"""#)
        }

        /// A pattern as a rule over the string's JSON text (between the quotes).
        mutating func patternRule(_ pattern: String, name: String, path: String) throws(GrammarError) -> String {
            var parser = RegexParser(pattern: pattern, path: path)
            let alternatives = try parser.parse()
            primitive("char")
            var texts: [String] = []
            for var sequence in alternatives {
                var anchoredStart = false, anchoredEnd = false
                if case .start? = sequence.first { anchoredStart = true; sequence.removeFirst() }
                if case .end? = sequence.last { anchoredEnd = true; sequence.removeLast() }
                for node in sequence where node.hasAnchor {
                    throw GrammarError("pattern at \(path): '^' and '$' are supported only at the ends of the pattern")
                }
                var parts: [String] = []
                if !anchoredStart { parts.append("char*") }
                let body = try emit(.sequence(sequence), name: name, path: path)
                if !body.isEmpty { parts.append(body) }
                if !anchoredEnd { parts.append("char*") }
                texts.append(parts.joined(separator: " "))
            }
            let group = texts.count == 1 ? texts[0] : "( " + texts.joined(separator: " | ") + " )"
            return #""\"" "# + (group.isEmpty ? "" : group + " ") + #""\"""#
        }

        /// GBNF for a regex node over JSON string text.
        mutating func emit(_ node: RegexNode, name: String, path: String) throws(GrammarError) -> String {
            switch node {
            case .chars(let set): return try unit(set, name: name)
            case .start, .end: return ""
            case .sequence(let items):
                var parts: [String] = []
                var literal = ""
                for item in items {
                    if case .chars(let set) = item, let c = set.single, CharSet.raw.contains(c) || c == 0x22 || c == 0x5C,
                       let scalar = Unicode.Scalar(c) {
                        literal += String(GBNFText.json(String(scalar)).dropFirst().dropLast())
                        continue
                    }
                    if !literal.isEmpty { parts.append(GBNFText.literal(literal)); literal = "" }
                    let text = try emit(item, name: name, path: path)
                    if !text.isEmpty { parts.append(text) }
                }
                if !literal.isEmpty { parts.append(GBNFText.literal(literal)) }
                return parts.joined(separator: " ")
            case .alternation(let sequences):
                var texts: [String] = []
                for sequence in sequences { texts.append(try emit(sequence, name: name, path: path)) }
                return "( " + texts.joined(separator: " | ") + " )"
            case .repeated(let inner, let low, let high):
                let text = try emit(inner, name: name, path: path)
                let item: String
                if case .chars = inner { item = text } else { item = "( " + (text.isEmpty ? "\"\"" : text) + " )" }
                return try Self.repetition(item, low, high, keyword: "pattern", path: path)
            }
        }

        /// One JSON string character of the set: raw, or escaped where JSON needs it.
        mutating func unit(_ set: CharSet, name: String) throws(GrammarError) -> String {
            if set == CharSet.all { return primitive("char") }
            var alternatives: [String] = []
            let raw = set.intersection(CharSet.raw)
            if !raw.isEmpty {
                alternatives.append(raw.single.flatMap { Unicode.Scalar($0) }.map { GBNFText.literal(String($0)) } ?? GBNFText.classText(raw))
            }
            if set.contains(0x22) { alternatives.append(#""\\\"""#) }
            if set.contains(0x5C) { alternatives.append(#""\\\\""#) }
            if set.contains(0x2F) { alternatives.append(#""\\/""#) }
            let short: [(UInt32, String)] = [(0x08, "b"), (0x0C, "f"), (0x0A, "n"), (0x0D, "r"), (0x09, "t")]
            let letters = short.filter { set.contains($0.0) }.map(\.1).joined()
            if !letters.isEmpty { alternatives.append(#""\\" ["# + letters + "]") }
            let controls = set.intersection(CharSet.controls)
            if controls == CharSet.controls {
                alternatives.append(#""\\u00" ( [01] [0-9a-fA-F] | "7" [fF] )"#)
            } else {
                for range in controls.ranges {
                    for c in range {
                        // \u00XX with either case of hex letters.
                        let digits = String(c, radix: 16)
                        var literal = "\\u00" + (digits.count == 1 ? "0" : "")
                        var parts: [String] = []
                        for digit in digits {
                            if digit.isNumber {
                                literal.append(digit)
                            } else {
                                parts.append(GBNFText.literal(literal))
                                literal = ""
                                parts.append("[" + String(digit) + digit.uppercased() + "]")
                            }
                        }
                        if !literal.isEmpty { parts.append(GBNFText.literal(literal)) }
                        alternatives.append(parts.joined(separator: " "))
                    }
                }
            }
            if alternatives.isEmpty { return GBNFText.nothing }
            if alternatives.count == 1 { return alternatives[0] }
            return try addRule((name.isEmpty ? "pattern" : name) + "-char", alternatives.joined(separator: " | "))
        }

        // MARK: Numbers

        /// A bound: its value and whether it is inclusive.
        typealias Bound = (value: Double, inclusive: Bool)

        func bounds(_ schema: JSONValue, path: String) throws(GrammarError) -> (lower: Bound?, upper: Bound?) {
            func number(_ key: String) throws(GrammarError) -> Double? {
                guard let value = schema[key] else { return nil }
                switch value {
                case .integer(let i): return Double(i)
                case .number(let d) where d.isFinite: return d
                default: throw GrammarError("'\(key)' at \(path) must be a number")
                }
            }
            var lower: Bound? = try number("minimum").map { ($0, true) }
            if let x = try number("exclusiveMinimum"), lower.map({ x >= $0.value }) ?? true { lower = (x, false) }
            var upper: Bound? = try number("maximum").map { ($0, true) }
            if let x = try number("exclusiveMaximum"), upper.map({ x <= $0.value }) ?? true { upper = (x, false) }
            return (lower, upper)
        }

        static let maxMagnitude = 9_999_999_999_999_999  // 16 digits, as integral-part

        mutating func renderNumber(_ schema: JSONValue, integer: Bool, path: String) throws(GrammarError) -> Rendered {
            let (lower, upper) = try bounds(schema, path: path)
            if lower == nil && upper == nil { return .ref(primitive(integer ? "integer" : "number")) }
            let limit = Double(Self.maxMagnitude)
            var alternatives: [String] = []
            if integer {
                var low = -Self.maxMagnitude, high = Self.maxMagnitude
                if let lower {
                    let v = lower.inclusive ? lower.value.rounded(.up) : lower.value.rounded(.down) + 1
                    low = v > limit ? Self.maxMagnitude + 1 : max(low, Int(max(v, -limit)))
                }
                if let upper {
                    let v = upper.inclusive ? upper.value.rounded(.down) : upper.value.rounded(.up) - 1
                    high = v < -limit ? -Self.maxMagnitude - 1 : min(high, Int(min(v, limit)))
                }
                if low <= high {
                    if low < 0 { alternatives.append(#""-" "# + GBNFText.group(Self.magnitudes(max(1, -high), -low))) }
                    if high >= 0 { alternatives += Self.magnitudes(max(0, low), high) }
                }
            } else {
                let zero = Decimal(int: "0", frac: "")
                // Values >= 0 (a negative zero is not written), then values < 0 by magnitude.
                if upper.map({ $0.value > 0 || ($0.value == 0 && $0.inclusive) }) ?? true {
                    let low = lower.flatMap { $0.value >= 0 ? (Decimal($0.value), $0.inclusive) : nil } ?? (zero, true)
                    alternatives += Self.magnitudes(from: low, to: upper.map { (Decimal($0.value), $0.inclusive) })
                }
                if lower.map({ $0.value < 0 }) ?? true {
                    let low = upper.flatMap { $0.value < 0 ? (Decimal(-$0.value), $0.inclusive) : nil } ?? (zero, false)
                    let negative = Self.magnitudes(from: low, to: lower.map { (Decimal(-$0.value), $0.inclusive) })
                    if !negative.isEmpty { alternatives.insert(#""-" "# + GBNFText.group(negative), at: 0) }
                }
            }
            guard !alternatives.isEmpty else {
                throw GrammarError("no \(integer ? "integer" : "number") of at most 16 digits satisfies the bounds at \(path)")
            }
            return .body(alternatives.joined(separator: " | "))
        }

        /// Integers a...b (0 <= a), written without leading zeros: alternatives, one or more
        /// per digit count.
        static func magnitudes(_ a: Int, _ b: Int) -> [String] {
            guard a <= b else { return [] }
            var alternatives: [String] = []
            var power = 1  // 10^(digits - 1)
            var fullRun: (first: Int, last: Int)? = nil  // digit counts with every number in range
            func flushRun() {
                guard let run = fullRun else { return }
                let (m, n) = (run.first - 1, run.last - 1)
                alternatives.append("[1-9] [0-9]" + (m == n ? (m == 1 ? "" : "{\(m)}") : "{\(m),\(n)}"))
                fullRun = nil
            }
            for digits in 1...16 {
                let low = max(a, digits == 1 ? 0 : power), high = min(b, power * 10 - 1)
                if digits > 1 && low == power && high == power * 10 - 1 {
                    fullRun = (fullRun?.first ?? digits, digits)
                } else if low <= high {
                    flushRun()
                    alternatives.append(sameLength(Array(String(low)), Array(String(high))))
                }
                if power * 10 - 1 >= b { break }
                power *= 10
            }
            flushRun()
            return alternatives
        }

        /// Digit strings of one length from x to y: a common prefix, then the first digit below,
        /// between or at y's, as llama.cpp's _generate_min_max_int.
        static func sameLength(_ x: [Character], _ y: [Character]) -> String {
            var p = 0
            while p < x.count && x[p] == y[p] { p += 1 }
            let head = p > 0 ? GBNFText.literal(String(x[..<p])) : ""
            if p == x.count { return head }
            let x0 = Int(String(x[p])) ?? 0, y0 = Int(String(y[p])) ?? 9
            let m = x.count - p - 1
            let xr = Array(x[(p + 1)...]), yr = Array(y[(p + 1)...])
            let anyDigits = m == 0 ? "" : m == 1 ? " [0-9]" : " [0-9]{\(m)}"
            var alternatives: [String] = []
            var low = x0, high = y0
            let lowFull = xr.allSatisfy { $0 == "0" }, highFull = yr.allSatisfy { $0 == "9" }
            if !lowFull {
                alternatives.append("\"\(x0)\" " + sameLength(xr, Array(repeating: "9", count: m)))
                low += 1
            }
            if !highFull { high -= 1 }
            if low <= high { alternatives.append((low == high ? "\"\(low)\"" : "[\(low)-\(high)]") + anyDigits) }
            if !highFull { alternatives.append("\"\(y0)\" " + sameLength(Array(repeating: "0", count: m), yr)) }
            let tail = alternatives.count == 1 ? alternatives[0] : "( " + alternatives.joined(separator: " | ") + " )"
            return head.isEmpty ? tail : head + " " + tail
        }

        /// A non-negative decimal as digit strings: `int` without leading zeros, `frac` without
        /// trailing zeros.
        struct Decimal {
            var int: String
            var frac: String

            init(int: String, frac: String) {
                self.int = int
                self.frac = frac
            }

            /// From Swift's shortest round-trip spelling of |value| ("12.5", "1e-07", "1.5e+20").
            init(_ value: Double) {
                let text = "\(abs(value))"
                var mantissa = Substring(text), exponent = 0
                if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                    mantissa = text[..<e]
                    exponent = Int(text[text.index(after: e)...].filter { $0 != "+" }) ?? 0
                }
                let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
                let intPart = parts.first.map(String.init) ?? "0"
                var digits = intPart + (parts.count > 1 ? String(parts[1]) : "")
                var point = intPart.count + exponent
                if point < 0 {
                    digits = String(repeating: "0", count: -point) + digits
                    point = 0
                }
                if point > digits.count { digits += String(repeating: "0", count: point - digits.count) }
                var int = String(digits.prefix(point))
                var frac = String(digits.dropFirst(point))
                while int.hasPrefix("0") { int.removeFirst() }
                while frac.hasSuffix("0") { frac.removeLast() }
                self.int = int.isEmpty ? "0" : int
                self.frac = frac
            }
        }

        /// Non-negative decimals from `low` to `high` (nil: any), written as an integral part of at
        /// most 16 digits and an optional fraction, without an exponent: alternatives.
        static func magnitudes(from low: (Decimal, Bool), to high: (Decimal, Bool)?) -> [String] {
            guard low.0.int.count <= 16, let a = Int(low.0.int) else { return [] }
            let high = high.flatMap { $0.0.int.count <= 16 ? $0 : nil }
            let anyFraction = #"( "." [0-9]{1,16} )?"#
            var alternatives: [String] = []
            func add(_ int: Int, _ fraction: [String]?) {
                guard let fraction else { return }
                alternatives.append(GBNFText.literal(String(int)) + (fraction == [""] ? "" : " " + GBNFText.group(fraction)))
            }
            // A lower bound with no fraction, inclusive, leaves the fraction free.
            let lowFraction: (String, Bool)? = low.0.frac.isEmpty && low.1 ? nil : (low.0.frac, low.1)
            guard let high, let b = Int(high.0.int) else {
                add(a, fractions(low: lowFraction, high: nil))
                if a < maxMagnitude { alternatives.append(GBNFText.group(magnitudes(a + 1, maxMagnitude)) + " " + anyFraction) }
                return alternatives
            }
            if a == b {
                add(a, fractions(low: lowFraction, high: (high.0.frac, high.1)))
            } else if a < b {
                add(a, fractions(low: lowFraction, high: nil))
                if a + 1 <= b - 1 { alternatives.append(GBNFText.group(magnitudes(a + 1, b - 1)) + " " + anyFraction) }
                add(b, fractions(low: nil, high: (high.0.frac, high.1)))
            }
            return alternatives
        }

        /// The optional fraction ("." digits) whose digits, compared as decimals, are above `low`
        /// and below `high` (inclusive or not): alternatives, nil when none. A walk over the
        /// digits that stays "tight" to a bound while it copies the bound's digits.
        static func fractions(low: (String, Bool)?, high: (String, Bool)?) -> [String]? {
            let g = Array(low?.0 ?? "").compactMap(\.wholeNumberValue), h = Array(high?.0 ?? "").compactMap(\.wholeNumberValue)
            let limit = max(16, g.count, h.count)
            func endAllowed(_ i: Int, _ tightLow: Bool, _ tightHigh: Bool) -> Bool {
                (!tightLow || (i >= g.count && (low?.1 ?? true))) && (!tightHigh || i < h.count || (high?.1 ?? true))
            }
            func free(_ i: Int) -> String { limit - i > 0 ? " [0-9]{0,\(limit - i)}" : "" }
            // Digits from position i on (more digits, or the end where allowed).
            func zeros(_ low: Int, _ high: Int) -> String { "\"0\"" + (low == high ? "{\(low)}" : "{\(low),\(high)}") }
            func step(_ i: Int, _ tightLow: Bool, _ tightHigh: Bool, allowEnd: Bool) -> [String] {
                let left = limit - i  // digits that may still come
                let lowDone = tightLow && i >= g.count, highDone = tightHigh && i >= h.count
                if lowDone || highDone {
                    // Equal to a bound so far, which has no more digits: more zeros keep it equal.
                    let lowIncl = low?.1 ?? true, highIncl = high?.1 ?? true
                    if highDone && !highIncl { return [] }
                    if lowDone && !tightHigh {
                        if lowIncl { return (allowEnd ? [""] : []) + (left > 0 ? ["[0-9]" + free(i + 1)] : []) }
                        // Above the bound: a non-zero digit somewhere.
                        guard left > 0 else { return [] }
                        return [(left > 1 ? zeros(0, left - 1) + " " : "") + "[1-9]" + (left > 1 ? " [0-9]{0,\(left - 1)}" : "")]
                    }
                    if highDone && (!tightLow || (lowDone && lowIncl)) {
                        return (allowEnd ? [""] : []) + (left > 0 ? [zeros(1, left)] : [])
                    }
                    if highDone { return [] }  // both tight, the lower bound needs more and the upper allows only zeros
                }
                var alternatives: [String] = []
                if allowEnd && endAllowed(i, tightLow, tightHigh) { alternatives.append("") }
                guard i < limit else { return alternatives }
                let low = tightLow ? (i < g.count ? g[i] : 0) : 0
                let highDigit = tightHigh ? (i < h.count ? h[i] : 0) : 9
                guard low <= highDigit else { return alternatives }
                func then(_ digit: Int, _ l: Bool, _ u: Bool) {
                    let rest = step(i + 1, l, u, allowEnd: true)
                    if !rest.isEmpty { alternatives.append("\"\(digit)\"" + (rest == [""] ? "" : " " + GBNFText.group(rest))) }
                }
                if tightLow && tightHigh && low == highDigit {
                    then(low, true, true)
                    return alternatives
                }
                var freeLow = low, freeHigh = highDigit
                if tightLow { then(low, true, false); freeLow += 1 }
                if tightHigh { then(highDigit, false, true); freeHigh -= 1 }
                if freeLow <= freeHigh {
                    alternatives.append((freeLow == freeHigh ? "[\(freeLow)]" : "[\(freeLow)-\(freeHigh)]") + free(i + 1))
                }
                return alternatives
            }
            var alternatives: [String] = []
            if endAllowed(0, low != nil, high != nil) { alternatives.append("") }
            let digits = step(0, low != nil, high != nil, allowEnd: false)
            if !digits.isEmpty { alternatives.append(#""." "# + GBNFText.group(digits)) }
            return alternatives.isEmpty ? nil : alternatives
        }
    }

    // MARK: - Regular expressions

    /// A parsed `pattern`.
    indirect enum RegexNode {
        case chars(CharSet)
        case sequence([RegexNode])
        case alternation([RegexNode])
        case repeated(RegexNode, Int, Int?)
        case start, end

        var hasAnchor: Bool {
            switch self {
            case .start, .end: return true
            case .chars: return false
            case .sequence(let items), .alternation(let items): return items.contains { $0.hasAnchor }
            case .repeated(let inner, _, _): return inner.hasAnchor
            }
        }
    }

    /// The subset of ECMA-262 regular expressions (JSON Schema's dialect) that `pattern` may use:
    /// literal characters; escapes \d \D \w \W \s \S (ASCII \d and \w, ECMA's \s), \t \n \r \f \v
    /// \0 \xHH \uHHHH and escaped punctuation; `.` (any character but \n \r \u2028 \u2029);
    /// classes [a-z] [^...] with those escapes; groups (...) (?:...) (?<name>...) (?P<name>...);
    /// alternation |; quantifiers * + ? {m} {m,} {m,n} {,n} (counts up to 1,000; lazy forms
    /// match the same strings); ^ and $ only at the start and end of the pattern or of its
    /// top-level alternatives. Refused with an error naming the construct: lookahead and
    /// lookbehind, backreferences, word boundaries \b \B, \A \Z \z \G, Unicode property escapes,
    /// control escapes, inline flags, atomic groups, possessive quantifiers.
    struct RegexParser {
        let scalars: [UInt32]
        let pattern: String
        let path: String
        var position = 0
        static let maxDepth = 100

        init(pattern: String, path: String) {
            scalars = pattern.unicodeScalars.map(\.value)
            self.pattern = pattern
            self.path = path
        }

        func error(_ message: String) -> GrammarError {
            let shown = pattern.count > 80 ? String(pattern.prefix(80)) + "..." : pattern
            return GrammarError("pattern /\(shown)/ at \(path): \(message) (at character \(position))")
        }

        var current: UInt32? { position < scalars.count ? scalars[position] : nil }
        func peek(_ offset: Int) -> UInt32? { position + offset < scalars.count ? scalars[position + offset] : nil }

        /// The top-level alternatives, each a sequence.
        mutating func parse() throws(GrammarError) -> [[RegexNode]] {
            let alternatives = try parseAlternatives(depth: 0)
            if current == 0x29 { throw error("unbalanced ')'") }
            return alternatives
        }

        mutating func parseAlternatives(depth: Int) throws(GrammarError) -> [[RegexNode]] {
            guard depth <= Self.maxDepth else { throw error("groups nested deeper than \(Self.maxDepth)") }
            var alternatives = [try parseSequence(depth: depth)]
            while current == 0x7C {
                position += 1
                alternatives.append(try parseSequence(depth: depth))
            }
            return alternatives
        }

        mutating func parseSequence(depth: Int) throws(GrammarError) -> [RegexNode] {
            var items: [RegexNode] = []
            while let c = current, c != 0x7C, c != 0x29 {
                var atom: RegexNode
                switch c {
                case 0x5E: position += 1; atom = .start
                case 0x24: position += 1; atom = .end
                case 0x2E: position += 1; atom = .chars(CharSet.dot)
                case 0x28: atom = try parseGroup(depth: depth)
                case 0x5B: atom = .chars(try parseClass())
                case 0x5C: atom = .chars(try parseEscape(inClass: false))
                case 0x2A, 0x2B, 0x3F: throw error("nothing to repeat")
                case 0x7B where quantifierAhead() != nil: throw error("nothing to repeat")
                default: position += 1; atom = .chars(CharSet(scalar: c))
                }
                if let (low, high) = try parseQuantifier() {
                    if case .start = atom { throw error("a quantifier on an anchor") }
                    if case .end = atom { throw error("a quantifier on an anchor") }
                    atom = .repeated(atom, low, high)
                    if current == 0x3F {
                        position += 1  // lazy: matches the same strings
                    } else if current == 0x2B {
                        throw error("possessive quantifiers are not supported")
                    }
                    if let c = current, c == 0x2A || c == 0x2B || c == 0x3F || (c == 0x7B && quantifierAhead() != nil) {
                        throw error("multiple repeat")
                    }
                }
                items.append(atom)
            }
            return items
        }

        /// {m}, {m,}, {m,n} or {,n} at the current position: its bounds and length, or nil.
        func quantifierAhead() -> (Int, Int?, Int)? {
            guard current == 0x7B else { return nil }
            var i = position + 1
            func number() -> Int? {
                let start = i
                var value = 0
                while i < scalars.count, scalars[i] >= 0x30, scalars[i] <= 0x39 {
                    value = min(value * 10 + Int(scalars[i] - 0x30), 1_000_000)
                    i += 1
                }
                return i > start ? value : nil
            }
            let low = number()
            var high: Int? = low
            if i < scalars.count, scalars[i] == 0x2C {
                i += 1
                high = number()
                if low == nil && high == nil { return nil }
            } else if low == nil {
                return nil
            }
            guard i < scalars.count, scalars[i] == 0x7D else { return nil }
            return (low ?? 0, high, i + 1 - position)
        }

        mutating func parseQuantifier() throws(GrammarError) -> (Int, Int?)? {
            switch current {
            case 0x2A: position += 1; return (0, nil)
            case 0x2B: position += 1; return (1, nil)
            case 0x3F: position += 1; return (0, 1)
            case 0x7B:
                guard let (low, high, length) = quantifierAhead() else { return nil }
                if low > JSONSchemaGrammar.maxCount || (high ?? 0) > JSONSchemaGrammar.maxCount {
                    throw error("a repetition count above \(JSONSchemaGrammar.maxCount)")
                }
                if let high, high < low { throw error("a repetition {\(low),\(high)} with its bounds out of order") }
                position += length
                return (low, high)
            default: return nil
            }
        }

        mutating func parseGroup(depth: Int) throws(GrammarError) -> RegexNode {
            position += 1  // (
            if current == 0x3F {
                let next = peek(1), after = peek(2)
                switch next {
                case 0x3A: position += 2  // (?:
                case 0x3D, 0x21: throw error("lookahead is not supported")
                case 0x3C where after == 0x3D || after == 0x21: throw error("lookbehind is not supported")
                case 0x3C: try skipGroupName(from: 2)  // (?<name>
                case 0x50 where after == 0x3C: try skipGroupName(from: 3)  // (?P<name>
                case 0x50 where after == 0x3D: throw error("backreferences are not supported")
                case 0x3E: throw error("atomic groups are not supported")
                case 0x23: throw error("comment groups are not supported")
                default: throw error("inline flags are not supported")
                }
            }
            let alternatives = try parseAlternatives(depth: depth + 1)
            guard current == 0x29 else { throw error("missing ')'") }
            position += 1
            if alternatives.count == 1 { return .sequence(alternatives[0]) }
            return .alternation(alternatives.map { .sequence($0) })
        }

        mutating func skipGroupName(from offset: Int) throws(GrammarError) {
            position += offset
            while let c = current, c != 0x3E { position += 1 }
            guard current == 0x3E else { throw error("unterminated group name") }
            position += 1
        }

        mutating func parseClass() throws(GrammarError) -> CharSet {
            position += 1  // [
            var negated = false
            if current == 0x5E { negated = true; position += 1 }
            var set = CharSet([])
            var first = true
            while true {
                guard let c = current else { throw error("unterminated character class") }
                if c == 0x5D && !first { position += 1; break }
                first = false
                let low: CharSet
                if c == 0x5C {
                    low = try parseEscape(inClass: true)
                } else {
                    position += 1
                    low = CharSet(scalar: c)
                }
                if current == 0x2D, let next = peek(1), next != 0x5D {
                    guard let a = low.single else { throw error("a class escape cannot start a range") }
                    position += 1
                    let high: CharSet
                    if next == 0x5C {
                        high = try parseEscape(inClass: true)
                    } else {
                        position += 1
                        high = CharSet(scalar: next)
                    }
                    guard let b = high.single else { throw error("a class escape cannot end a range") }
                    guard a <= b else { throw error("a character range out of order") }
                    set = set.union(CharSet([a...b]))
                } else {
                    set = set.union(low)
                }
            }
            return negated ? set.complement() : set
        }

        mutating func parseEscape(inClass: Bool) throws(GrammarError) -> CharSet {
            position += 1  // backslash
            guard let e = current else { throw error("a pattern ending in '\\'") }
            position += 1
            switch e {
            case 0x64: return CharSet.digits  // d
            case 0x44: return CharSet.digits.complement()
            case 0x77: return CharSet.word  // w
            case 0x57: return CharSet.word.complement()
            case 0x73: return CharSet.space  // s
            case 0x53: return CharSet.space.complement()
            case 0x74: return CharSet(scalar: 0x09)
            case 0x6E: return CharSet(scalar: 0x0A)
            case 0x72: return CharSet(scalar: 0x0D)
            case 0x66: return CharSet(scalar: 0x0C)
            case 0x76: return CharSet(scalar: 0x0B)
            case 0x30:
                if let c = current, c >= 0x30, c <= 0x39 { throw error("octal escapes are not supported") }
                return CharSet(scalar: 0)
            case 0x78: return CharSet(scalar: try hex(2))  // xHH
            case 0x75: return CharSet(scalar: try hex(4))  // uHHHH
            case 0x62 where inClass: return CharSet(scalar: 0x08)  // [\b] is backspace
            case 0x62, 0x42: throw error("word boundaries (\\b, \\B) are not supported")
            case 0x31...0x39, 0x6B: throw error("backreferences are not supported")
            case 0x70, 0x50: throw error("Unicode property escapes (\\p, \\P) are not supported")
            case 0x41, 0x5A, 0x7A, 0x47: throw error("the anchor \\\(Unicode.Scalar(e).map(String.init) ?? "") is not supported")
            case 0x63: throw error("control escapes (\\c) are not supported")
            case 0x41...0x5A, 0x61...0x7A: throw error("unknown escape '\\\(Unicode.Scalar(e).map(String.init) ?? "")'")
            default: return CharSet(scalar: e)
            }
        }

        mutating func hex(_ digits: Int) throws(GrammarError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<digits {
                guard let c = current, c < 0x80, let scalar = Unicode.Scalar(c), let digit = Int(String(scalar), radix: 16) else {
                    throw error("expected \(digits) hexadecimal digits")
                }
                value = value * 16 + UInt32(digit)
                position += 1
            }
            return value
        }
    }
}

extension String {
    fileprivate func trimmingDashes() -> String {
        var s = Substring(self)
        while s.hasPrefix("-") { s.removeFirst() }
        return String(s)
    }

    /// %XX escapes in a URI fragment, decoded (left as is when malformed).
    fileprivate func removingPercentEncodingIfPossible() -> String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        let utf8 = Array(self.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == 0x25, i + 2 < utf8.count, let value = UInt8(String(decoding: utf8[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                bytes.append(value)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
