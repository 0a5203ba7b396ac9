import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct HFTokenizerTests {
    @Test(arguments: ["v1-hf", "v3-hf", "smollm2"])
    func encodeMatchesTokenizers(name: String) throws {
        let tokenizer = try HFTokenizer(contentsOf: Fixtures.path("\(name)/tokenizer.json"))
        let strings = try Fixtures.strings()
        let vectors = try Fixtures.Vectors("vectors/\(name)-tokenizers.json")
        let expected = try vectors.idLists("encode")
        let withSpecial = try vectors.sparseIdLists("encode_special")
        #expect(expected.count == strings.count)
        var mismatches = 0
        for (index, (text, ids)) in zip(strings, expected).enumerated() {
            let got = try tokenizer.encode(text, addSpecialTokens: false)
            if got != ids {
                mismatches += 1
                if mismatches <= 5 { Issue.record("encode \(text.debugDescription): got \(got), expected \(ids)") }
            }
            #expect(try tokenizer.encode(text, addSpecialTokens: true) == withSpecial[index] ?? ids)
        }
        #expect(mismatches == 0, "\(mismatches) of \(strings.count) strings encode differently")
    }

    @Test(arguments: ["v1-hf", "v3-hf", "smollm2"])
    func decodeMatchesTokenizers(name: String) throws {
        let tokenizer = try HFTokenizer(contentsOf: Fixtures.path("\(name)/tokenizer.json"))
        let strings = try Fixtures.strings()
        let vectors = try Fixtures.Vectors("vectors/\(name)-tokenizers.json")
        var mismatches = 0
        func check(_ ids: [Int], skip: Bool, _ expected: String) {
            let got = tokenizer.decode(ids, skipSpecialTokens: skip)
            if got != expected {
                mismatches += 1
                if mismatches <= 5 { Issue.record("decode \(ids) skip=\(skip): got \(got.debugDescription), expected \(expected.debugDescription)") }
            }
        }
        for ((text, ids), decoded) in zip(zip(strings, try vectors.idLists("encode")), try vectors.optionalStrings("decode")) {
            check(ids, skip: false, decoded ?? text)
        }
        let randomIDs = try vectors.idLists("random_ids")
        for (ids, expected) in zip(randomIDs, try vectors.optionalStrings("random_decode")) {
            check(ids, skip: false, expected ?? "")
        }
        for (ids, expected) in zip(randomIDs, try vectors.optionalStrings("random_decode_skip")) {
            check(ids, skip: true, expected ?? "")
        }
        #expect(mismatches == 0)
    }
}
