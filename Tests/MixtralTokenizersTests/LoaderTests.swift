import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct LoaderTests {
    @Test func folderPrecedenceAndSingleFiles() throws {
        #expect(try TokenizerLoader.load(path: Fixtures.path("v1")) is SentencePieceTokenizer)
        #expect(try TokenizerLoader.load(path: Fixtures.path("v1/tokenizer.model")) is SentencePieceTokenizer)
        #expect(try TokenizerLoader.load(path: Fixtures.path("v3-hf")) is HFTokenizer)
        #expect(try TokenizerLoader.load(path: Fixtures.path("smollm2/tokenizer.json")) is HFTokenizer)

        // A folder with both files uses tokenizer.json (AutoTokenizer's precedence).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: Fixtures.path("v1/tokenizer.model"), toPath: folder + "/tokenizer.model")
        #expect(try TokenizerLoader.load(path: folder) is SentencePieceTokenizer)
        try FileManager.default.copyItem(atPath: Fixtures.path("v1-hf/tokenizer.json"), toPath: folder + "/tokenizer.json")
        #expect(try TokenizerLoader.load(path: folder) is HFTokenizer)

        // mistral-common file names.
        try FileManager.default.copyItem(atPath: Fixtures.path("v3/tokenizer.model"),
                                         toPath: folder + "/mistral_instruct_tokenizer_240323.model.v3")
        let v3 = try TokenizerLoader.load(path: folder + "/mistral_instruct_tokenizer_240323.model.v3")
        #expect(v3.vocabularySize == 32768)
        #expect(TokenizerLoader.isSentencePieceFileName("tokenizer.model.v1"))
        #expect(!TokenizerLoader.isSentencePieceFileName("tokenizer.json"))
    }

    @Test func configurationAndErrors() throws {
        let smol = try TokenizerLoader.loadWithConfiguration(path: Fixtures.path("smollm2"))
        #expect(smol.configuration.chatTemplate?.contains("<|im_start|>") == true)
        #expect(smol.configuration.eosToken == "<|im_end|>")
        #expect(smol.tokenizer.eosTokenIDs == [2])
        #expect(throws: TokenizerError.fileNotFound("/nonexistent")) { try TokenizerLoader.load(path: "/nonexistent") }
        #expect(throws: TokenizerError.self) { try TokenizerLoader.load(path: Fixtures.path("vectors")) }
        #expect(throws: TokenizerError.self) { try HFTokenizer(json: JSONValue.parse(#"{"model": {"type": "Unigram"}}"#)) }
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("broken-\(UUID().uuidString).json").path
        try Data("[1, 2".utf8).write(to: URL(fileURLWithPath: broken))
        defer { try? FileManager.default.removeItem(atPath: broken) }
        #expect(throws: TokenizerError.self) { try HFTokenizer(contentsOf: broken) }
    }

    @Test func ggufLlamaVocabularyMatchesSentencePiece() throws {
        let source = try SentencePieceTokenizer(contentsOf: Fixtures.path("v1/tokenizer.model"))
        let pieces = source.model.pieces
        let tokenizer = try TokenizerLoader.fromGGUF(
            model: "llama", pre: "default", tokens: pieces.map(\.text), scores: pieces.map(\.score),
            tokenTypes: pieces.map { $0.type.rawValue }, merges: nil, bosID: 1, eosID: 2, unkID: 0,
            addBOS: true, addEOS: false)
        let strings = try Fixtures.strings()
        let expected = try Fixtures.Vectors("vectors/v1-sentencepiece.json").idLists("encode")
        var mismatches = 0
        for (text, ids) in zip(strings, expected) where try tokenizer.encode(text, addSpecialTokens: false) != ids {
            mismatches += 1
        }
        #expect(mismatches == 0)
        #expect(try tokenizer.encode("Hi", addSpecialTokens: true).first == 1)
        #expect(tokenizer.bosTokenID == 1 && tokenizer.eosTokenIDs == [2])
    }

    @Test(arguments: ["smollm", "gpt2"])
    func ggufGPT2VocabularyMatchesTokenizers(pre: String) throws {
        // tokenizer.ggml.tokens / merges are the tokenizer.json vocabulary in id order and its
        // merges (make_vectors.py checks this against the GGUF file); control tokens are the added ones.
        let json = try Fixtures.json("smollm2/tokenizer.json")
        let meta = try Fixtures.json("smollm2/gguf-tokenizer-metadata.json")
        let vocab = try #require(json["model"]?["vocab"]?.objectValue)
        var tokens = [String](repeating: "", count: vocab.count)
        for (token, id) in vocab { tokens[try #require(id.intValue)] = token }
        let merges = try #require(json["model"]?["merges"]?.arrayValue).map { pair in
            (pair.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " ")
        }
        let added = Set((json["added_tokens"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue })
        let types: [Int32] = tokens.indices.map { added.contains($0) ? 3 : 1 }
        #expect(meta["tokenizer.ggml.pre"]?.stringValue == "smollm")
        let tokenizer = try TokenizerLoader.fromGGUF(
            model: "gpt2", pre: pre, tokens: tokens, scores: nil, tokenTypes: types, merges: merges,
            bosID: meta["tokenizer.ggml.bos_token_id"]?.intValue, eosID: meta["tokenizer.ggml.eos_token_id"]?.intValue,
            unkID: nil, addBOS: meta["tokenizer.ggml.add_bos_token"]?.boolValue, addEOS: nil)
        let strings = try Fixtures.strings()
        let vectors = try Fixtures.Vectors("vectors/smollm2-tokenizers.json")
        var mismatches = 0
        for (text, ids) in zip(strings, try vectors.idLists("encode")) {
            // llama.cpp's "smollm" pre-tokenizer (like SmolLM2's original tokenizer.json) isolates
            // every \p{N} first; transformers' GGUF conversion (the reference here) does not, so
            // they differ around numbers ("  0": "ĠĠ"+"0" vs "Ġ"+"Ġ0"). Elsewhere they agree.
            if pre == "smollm" && text.unicodeScalars.contains(where: { $0.isNumericForRust }) { continue }
            let got = try tokenizer.encode(text, addSpecialTokens: false)
            if got != ids {
                mismatches += 1
                if mismatches < 4 { Issue.record("\(text.debugDescription): \(got) != \(ids)") }
            }
        }
        #expect(mismatches == 0)
        for (ids, expected) in zip(try vectors.idLists("random_ids"), try vectors.optionalStrings("random_decode_skip")) {
            #expect(tokenizer.decode(ids, skipSpecialTokens: true) == expected ?? "")
        }
    }

    @Test func ggufErrors() throws {
        #expect(throws: TokenizerError.self) {
            try TokenizerLoader.fromGGUF(model: "bert", pre: nil, tokens: ["a"], scores: nil, tokenTypes: nil,
                                         merges: nil, bosID: nil, eosID: nil, unkID: nil, addBOS: nil, addEOS: nil)
        }
        #expect(throws: TokenizerError.self) {
            try TokenizerLoader.fromGGUF(model: "gpt2", pre: "no-such-pre", tokens: ["a"], scores: nil, tokenTypes: nil,
                                         merges: [], bosID: nil, eosID: nil, unkID: nil, addBOS: nil, addEOS: nil)
        }
        #expect(throws: TokenizerError.self) {
            try TokenizerLoader.fromGGUF(model: "llama", pre: nil, tokens: ["a"], scores: [1, 2], tokenTypes: nil,
                                         merges: nil, bosID: nil, eosID: nil, unkID: nil, addBOS: nil, addEOS: nil)
        }
        #expect(throws: TokenizerError.self) {
            try TokenizerLoader.fromGGUF(model: "llama", pre: nil, tokens: ["a"], scores: nil, tokenTypes: nil,
                                         merges: nil, bosID: 5, eosID: nil, unkID: nil, addBOS: nil, addEOS: nil)
        }
    }
}

@Suite struct ConfigurationTests {
    /// tokenizer_config.json's add_bos_token / add_eos_token and chat_template (string and list
    /// forms) apply to a folder with tokenizer.model.
    @Test func tokenizerConfigForSentencePiece() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: Fixtures.path("v1/tokenizer.model"), toPath: folder + "/tokenizer.model")
        let config = #"{"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "chat_template": [{"name": "default", "template": "{{ messages[0].content }}"}, {"name": "tool_use", "template": "T"}]}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"))
        let loaded = try TokenizerLoader.loadWithConfiguration(path: folder)
        #expect(try loaded.tokenizer.encode("Hello", addSpecialTokens: true) == [22557, 2])
        #expect(loaded.configuration.bosToken == "<s>" && loaded.configuration.eosToken == "</s>")
        #expect(loaded.configuration.chatTemplate == "{{ messages[0].content }}")
        #expect(loaded.configuration.namedChatTemplates["tool_use"] == "T")
        #expect(try ChatEncoder(loaded: loaded).render(messages: [.user("hi")]) == "hi")
    }
}
