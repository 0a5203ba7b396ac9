import Foundation
import Testing
@testable import MixtralTokenizers

/// tokenizer.json variants built by make_vectors.py from the committed files, exercising
/// normalizers, pre-tokenizers, decoders, added-token options and post-processors that the real
/// files do not use, against the `tokenizers` library.
@Suite struct HFVariantTests {
    static let variants = ["v1-hub-2023", "v1-metaspace-first", "v1-normalizers", "v1-nfd-metaspace-first", "v1-split-behaviors", "v1-whitespace-invert",
                           "v1-added-tokens", "smollm2-digits", "smollm2-llama3", "smollm2-prefix-space"]

    static func build(_ variant: JSONValue) throws -> HFTokenizer {
        let baseName = try #require(variant["base"]?.stringValue)
        guard case .object(var members) = try Fixtures.json("\(baseName)/tokenizer.json") else {
            throw Fixtures.LoadError(description: "base is not an object")
        }
        func replace(_ key: String, _ value: JSONValue, in members: inout [(key: String, value: JSONValue)]) {
            if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = value } else { members.append((key, value)) }
        }
        for (key, value) in variant["overrides"]?.objectValue ?? [] { replace(key, value, in: &members) }
        if let extra = variant["added_tokens_extra"]?.arrayValue, let i = members.firstIndex(where: { $0.key == "added_tokens" }) {
            members[i].value = .array((members[i].value.arrayValue ?? []) + extra)
        }
        if let i = members.firstIndex(where: { $0.key == "model" }), case .object(var model) = members[i].value {
            for (key, value) in variant["model"]?.objectValue ?? [] { replace(key, value, in: &model) }
            members[i].value = .object(model)
        }
        return try HFTokenizer(json: .object(members), file: baseName)
    }

    @Test(arguments: variants)
    func variantMatchesTokenizers(name: String) throws {
        let variant = try Fixtures.json("variants/\(name).json")
        let tokenizer = try Self.build(variant)
        let strings = Array(try Fixtures.strings().prefix(try #require(variant["count"]?.intValue)))
        let vectors = Fixtures.Vectors(raw: variant)
        let expected = try vectors.idLists("encode")
        let withSpecial = try vectors.sparseIdLists("encode_special")
        let decoded = try vectors.optionalStrings("decode")
        var mismatches = 0
        for (index, text) in strings.enumerated() {
            let ids = try tokenizer.encode(text, addSpecialTokens: false)
            if ids != expected[index] {
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(name) encode \(text.debugDescription): \(ids) != \(expected[index])") }
            }
            #expect(try tokenizer.encode(text, addSpecialTokens: true) == withSpecial[index] ?? expected[index], "\(name) \(index)")
            let text2 = tokenizer.decode(expected[index], skipSpecialTokens: false)
            if text2 != decoded[index] ?? text {
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(name) decode \(expected[index]): \(text2.debugDescription) != \((decoded[index] ?? text).debugDescription)") }
            }
        }
        for (ids, want) in zip(try vectors.idLists("random_ids"), try vectors.optionalStrings("random_decode_skip")) {
            #expect(tokenizer.decode(ids, skipSpecialTokens: true) == want ?? "", "\(name) \(ids)")
        }
        #expect(mismatches == 0, "\(name): \(mismatches) mismatches")
    }
}

@Suite struct GGUFPreTokenizerTests {
    /// fromGGUF's "llama3" and "smollm" pre-tokenizers against tokenizer.json variants with the
    /// same regex / Digits pipeline, encoded by the `tokenizers` library.
    @Test(arguments: [("llama3", "smollm2-llama3"), ("smollm", "smollm2-digits")])
    func ggufPreMatchesTokenizers(pre: String, variantName: String) throws {
        let json = try Fixtures.json("smollm2/tokenizer.json")
        let vocab = try #require(json["model"]?["vocab"]?.objectValue)
        var tokens = [String](repeating: "", count: vocab.count)
        for (token, id) in vocab { tokens[try #require(id.intValue)] = token }
        let merges = try #require(json["model"]?["merges"]?.arrayValue).map { pair in
            (pair.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " ")
        }
        let added = Set((json["added_tokens"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue })
        let tokenizer = try TokenizerLoader.fromGGUF(
            model: "gpt2", pre: pre, tokens: tokens, scores: nil, tokenTypes: tokens.indices.map { added.contains($0) ? 3 : 1 },
            merges: merges, bosID: 1, eosID: 2, unkID: nil, addBOS: false, addEOS: false)
        let variant = try Fixtures.json("variants/\(variantName).json")
        let strings = try Fixtures.strings().prefix(try #require(variant["count"]?.intValue))
        let expected = try Fixtures.Vectors(raw: variant).idLists("encode")
        var mismatches = 0
        for (text, ids) in zip(strings, expected) where try tokenizer.encode(text, addSpecialTokens: false) != ids {
            mismatches += 1
        }
        #expect(mismatches == 0)
    }
}
