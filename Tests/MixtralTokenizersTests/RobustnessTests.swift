import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct RobustnessTests {
    /// decode(encode(s)) == s for random strings of any scalars: identity normalisation and byte
    /// fallback lose nothing. (Not SmolLM2: its GGUF vocabulary lacks 21 of the 256 byte tokens,
    /// and tokenizers, like this code, drops those bytes: "\u{16}" encodes to nothing.)
    @Test(arguments: ["v1", "v3", "v1-hf", "v3-hf"])
    func randomRoundTrip(path: String) throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path(path))
        var rng = SplitMix64(state: 0xC0FFEE &+ UInt64(path.utf8.count))
        for _ in 0..<300 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...30, using: &rng) {
                let ranges: [ClosedRange<UInt32>] = [0x20...0x7E, 0x0...0x1F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF]
                let range = ranges[Int.random(in: 0..<ranges.count, using: &rng)]
                if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &rng)) { scalars.append(scalar) }
            }
            let text = String(scalars)
            // Text that spells a special token is encoded as that token in tokenizer.json; skip it.
            if path.hasSuffix("hf"), text.contains("<") || text.contains("[") { continue }
            let ids = try tokenizer.encode(text, addSpecialTokens: false)
            #expect(Array(tokenizer.decode(ids, skipSpecialTokens: false).utf8) == Array(text.utf8), "\(path) \(text.debugDescription)")
        }
    }

    /// Corrupted tokenizer.model bytes end in a typed error or a usable tokenizer, never a trap.
    @Test func corruptedModelFiles() throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path("v1/tokenizer.model"))))
        var rng = SplitMix64(state: 42)
        for trial in 0..<60 {
            var bytes = original
            if trial % 3 == 0 {
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            } else {
                for _ in 0..<Int.random(in: 1...20, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            do {
                let model = try SentencePieceModel(data: Data(bytes), file: "corrupt")
                let tokenizer = try SentencePieceTokenizer(model: model, file: "corrupt")
                _ = try tokenizer.encode("Bonjour le monde 123 日本", addSpecialTokens: true)
                _ = tokenizer.decode(Array(0..<300), skipSpecialTokens: false)
            } catch is TokenizerError {
                // expected for most corruptions
            }
        }
    }

    /// Corrupted JSON / tokenizer.json: typed errors, never a trap.
    @Test func corruptedJSON() throws {
        let original = [UInt8](try #require(FileManager.default.contents(atPath: Fixtures.path("smollm2/tokenizer_config.json"))))
        var rng = SplitMix64(state: 7)
        for _ in 0..<200 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = [UInt8(ascii: "{"), UInt8(ascii: "]"), UInt8(ascii: "\""), UInt8(ascii: "\\"), 0xFF, 0x00, UInt8(ascii: "9")].randomElement(using: &rng) ?? 0
            }
            _ = try? JSONValue.parse(bytes)
        }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(String(repeating: "[", count: 10_000)) }
        #expect(throws: TokenizerError.self) { try HFTokenizer(json: JSONValue.parse(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#)) }
        #expect(throws: TokenizerError.self) { try HFTokenizer(json: JSONValue.parse(#"{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}"#)) }
    }

    @Test func validateIDs() throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path("v1"))
        try tokenizer.validate(ids: [1, 2, 31999])
        #expect(throws: TokenizerError.idOutOfRange(id: 32000, vocabularySize: 32000)) { try tokenizer.validate(ids: [1, 32000]) }
        #expect(throws: TokenizerError.idOutOfRange(id: -1, vocabularySize: 32000)) { try tokenizer.validate(ids: [-1]) }
    }
}

extension RobustnessTests {
    @Test func smolLM2DropsBytesOutsideItsVocabularyLikeTokenizers() throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path("smollm2"))
        #expect(try tokenizer.encode("\u{03}\u{16}w", addSpecialTokens: false) == [193, 103])
    }
}

/// Hostile tokenizer.json files (the hostile-input issue's reproducers): typed errors in
/// bounded time, never an abort or a hang.
extension RobustnessTests {
    @Test func vocabularyIdsFarBeyondTheEntriesAreRefused() throws {
        for id in ["2147483648", "4294967296", "9007199254740992"] {
            let json = try JSONValue.parse(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": \#(id)}, "merges": []}}"#)
            #expect(throws: TokenizerError.self) { try HFTokenizer(json: json) }
        }
    }

    /// A pattern that matches nowhere in a long text is cheap (one try per position) and must
    /// not count as backtracking: the added-token alternation of Mistral's tokenizers, say.
    @Test func longTextsWithoutMatchesStayWithinTheBudget() throws {
        let alternation = (0..<20).map { #"\\[DOC_\#($0)\\]"# }.joined(separator: "|")
        let tokenizer = try HFTokenizer(json: JSONValue.parse(#"""
            {"model": {"type": "BPE", "vocab": {"a": 0, "!": 1}, "merges": []},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\#(alternation)"}, "behavior": "Isolated", "invert": false}}
            """#))
        let text = String(repeating: "a!", count: 50_000)
        #expect(try tokenizer.encode(text, addSpecialTokens: false).count == 100_000)
    }

    /// (a+)+$ and (.*a){25} backtrack exponentially on a run of "a" that ends otherwise;
    /// tokenizers stops at Oniguruma's retry limit, this engine at its step budget.
    @Test(arguments: [#"(a+)+$"#, #"(.*a){25}"#])
    func catastrophicPatternsStopWithAnError(pattern: String) throws {
        let escaped = pattern.replacingOccurrences(of: "\\", with: "\\\\")
        let splitting = try HFTokenizer(json: JSONValue.parse(#"""
            {"model": {"type": "BPE", "vocab": {"a": 0, "!": 1}, "merges": []},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\#(escaped)"}, "behavior": "Isolated", "invert": false}}
            """#))
        let replacing = try HFTokenizer(json: JSONValue.parse(#"""
            {"model": {"type": "BPE", "vocab": {"a": 0, "!": 1, "x": 2}, "merges": []},
             "normalizer": {"type": "Replace", "pattern": {"Regex": "\#(escaped)"}, "content": "x"}}
            """#))
        let hostile = String(repeating: "a", count: 70) + "!"
        for tokenizer in [splitting, replacing] {
            #expect(try tokenizer.encode("aa!", addSpecialTokens: false).allSatisfy { $0 <= 2 })
            #expect {
                _ = try tokenizer.encode(hostile, addSpecialTokens: false)
            } throws: { error in
                guard case .patternTooComplex(pattern, _)? = error as? TokenizerError else { return false }
                return true
            }
        }
    }

    @Test func fileTextInMessagesIsEscapedAndCut() {
        #expect(messageText("a\u{1B}[31mb\n") == "a\\u{1b}[31mb\\u{a}")
        let long = messageText(String(repeating: "x", count: 100_000))
        #expect(long.count < 200)
        #expect(long.hasSuffix("(100000 bytes in all)"))
    }
}

extension RobustnessTests {
    /// Tokenizer, config and template files are read only when they are regular files: a
    /// FIFO would block the open for ever, a device would never end.
    @Test func onlyRegularFilesAreRead() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("regular-file-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fifo = folder + "/tokenizer.json"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: RegularFileError.notARegularFile(path: fifo)) { try readRegularFile(fifo) }
        #expect(throws: RegularFileError.notARegularFile(path: folder)) { try readRegularFile(folder) }
        #expect(throws: TokenizerError.self) { try TokenizerLoader.load(path: folder) }
        #expect(try readRegularFile(folder + "/absent.json") == nil)
        FileManager.default.createFile(atPath: folder + "/small.json", contents: Data("{}".utf8))
        #expect(try readRegularFile(folder + "/small.json") == Data("{}".utf8))
        #expect(throws: RegularFileError.tooLarge(path: folder + "/small.json", bytes: 2, limit: 1)) {
            try readRegularFile(folder + "/small.json", limit: 1)
        }
    }
}
