import Testing
@testable import Mixtral

/// GBNF grammars (llama.cpp's notation) parsed and matched a byte at a time.
@Suite("Grammar")
struct GrammarTests {
    static let arithmetic = """
        root  ::= (expr "=" ws term "\\n")+
        expr  ::= term ([-+*/] term)*
        term  ::= ident | num | "(" ws expr ")" ws
        ident ::= [a-z] [a-z0-9_]* ws
        num   ::= [0-9]+ ws
        ws    ::= [ \\t\\n]*
        """

    static let json = """
        # JSON values, in the style of llama.cpp's grammars/json.gbnf
        root   ::= value
        value  ::= object | array | string | number | ("true" | "false" | "null") ws
        object ::=
          "{" ws (
            string ":" ws value
            ("," ws string ":" ws value)*
          )? "}" ws
        array  ::= "[" ws ( value ("," ws value)* )? "]" ws
        string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws
        number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,15})? ws
        ws     ::= | " " | "\\n" [ \\t]{0,20}
        """

    @Test func arithmetic() throws {
        let matcher = try GrammarMatcher(try Grammar(gbnf: Self.arithmetic))
        for good in ["1+2=3\n", "(a1+b)*4 = x\n", "x=1\ny=2\n"] { #expect(matcher.accepts(good), "\(good)") }
        for bad in ["1+=3\n", "1+2=3", "=3\n", "1+2=3\nA=1\n", "", "a + b=1\n"] { #expect(!matcher.accepts(bad), "\(bad)") }
    }

    @Test func json() throws {
        let matcher = try GrammarMatcher(try Grammar(gbnf: Self.json))
        for good in [#"{"a": [1, 2.5, "x\n", -0.5e+3], "b": null}"#, "[]", "true", #"{"é": "日本\u00e9"}"#, "12345"] {
            #expect(matcher.accepts(good), "\(good)")
        }
        for bad in [#"{"a": }"#, "[1,]", "tru", #"{"a" 1}"#, "01", "\"\u{01}\""] { #expect(!matcher.accepts(bad), "\(bad)") }
    }

    @Test func repetitionBoundsAndClasses() throws {
        let matcher = try GrammarMatcher(try Grammar(gbnf: #"root ::= "a"{2,3} [^x-z]? "b"{1,} "c"{2}"#))
        for good in ["aabcc", "aaawbbbcc", "aa.bcc"] { #expect(matcher.accepts(good), "\(good)") }
        for bad in ["abcc", "aaaaabcc", "aaybcc", "aacc", "aabc"] { #expect(!matcher.accepts(bad), "\(bad)") }
    }

    /// Multi-byte characters arrive a byte at a time: a prefix lives while a class could
    /// take a character that starts with it.
    @Test func utf8ByteByByte() throws {
        let matcher = try GrammarMatcher(try Grammar(gbnf: #"root ::= [à-ÿ]+ "日""#))
        var state = matcher.initial
        for byte in "é".utf8 { state = try #require(matcher.advance(state, byte: byte)) }
        #expect(matcher.advance(matcher.initial, byte: 0xE6) == nil)  // 日's lead byte cannot start [à-ÿ]
        #expect(matcher.advance(matcher.initial, byte: 0x80) == nil)  // a continuation byte first
        // E0 starts U+0800 and above only: nothing an ASCII literal could take.
        let ascii = try GrammarMatcher(try Grammar(gbnf: #"root ::= "n""#))
        #expect(ascii.advance(ascii.initial, byte: 0xE0) == nil)
        #expect(ascii.advance(ascii.initial, byte: 0xC1) == nil)
        // Overlong and surrogate encodings are not characters.
        let any = try GrammarMatcher(try Grammar(gbnf: #"root ::= [^x]"#))
        for bytes: [UInt8] in [[0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            var s: GrammarMatcher.State? = any.initial
            for byte in bytes { s = s.flatMap { any.advance($0, byte: byte) } }
            #expect(s == nil, "\(bytes)")
        }
        for byte in "日".utf8 { state = try #require(matcher.advance(state, byte: byte)) }
        #expect(matcher.isAccepting(state))
    }

    /// Limits keep hostile grammars bounded: a chain of 10,000 rules expands without
    /// recursion, and an exponentially ambiguous grammar fails instead of running away.
    @Test func hostileGrammarsStayBounded() throws {
        let chain = (0..<10_000).map { "r\($0) ::= r\($0 + 1)" }.joined(separator: "\n")
        let deep = try GrammarMatcher(try Grammar(gbnf: "root ::= r0\n" + chain + "\nr10000 ::= \"a\""))
        #expect(deep.accepts("a"))
        // 2^40 ways to match nothing before "a": each way leads to the same stack.
        let ambiguous = "root ::= " + String(repeating: "(\"\" | \"\")", count: 40) + " \"a\""
        #expect(try GrammarMatcher(try Grammar(gbnf: ambiguous)).accepts("a"))
        // Distinct stacks without end: refused with a typed error.
        let exploding = "root ::= x\nx ::= " + (0..<5000).map { "\"\" y\($0)" }.joined(separator: " | ") + "\n"
            + (0..<5000).map { "y\($0) ::= \"a\"" }.joined(separator: "\n")
        #expect(throws: GrammarError.self) { try GrammarMatcher(try Grammar(gbnf: exploding)) }
    }

    @Test func errorsNameTheCause() {
        let cases: [(String, String)] = [
            ("expr ::= \"a\"", "no 'root' rule"),
            ("root ::= item", "'item' is used but never defined"),
            ("root ::= root \"a\" | \"b\"", "left-recursive"),
            ("root ::= x\nx ::= \"a\"? root", "left-recursive"),
            ("root ::= \"abc", "unterminated string"),
            ("root ::= [a-", "unterminated character class"),
            ("root ::= \"a\"{5,2}", "out of order"),
            ("root ::= \"a\"{100000}", "above"),
            ("root ::= * \"a\"", "nothing before it"),
            ("root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= " + String(repeating: "(", count: 200) + "\"a\"" + String(repeating: ")", count: 200), "nested deeper"),
        ]
        for (text, expected) in cases {
            #expect {
                _ = try Grammar(gbnf: text)
            } throws: { error in
                (error as? GrammarError)?.description.contains(expected) == true
            }
        }
    }
}
